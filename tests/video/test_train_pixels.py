"""Pixel models through the training CLI on real synthetic videos: the scene stream, then its fusion
with STIN (scene loaded from the scene run's checkpoint and frozen), then score-level evaluation."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vislearn.video.data.synthetic.generate import generate

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def video_split(tmp_path_factory):
    root = tmp_path_factory.mktemp("pix")
    data = root / "data"
    generate(data, videos=24, seed=3, width=128, height=96)
    split = root / "split"
    split.mkdir()
    (split / "labels.json").write_text((data / "something-something-v2-labels.json").read_text())
    (split / "train.json").write_text((data / "something-something-v2-train.json").read_text())
    (split / "validation.json").write_text((data / "something-something-v2-validation.json").read_text())
    return data, split


def train(out, data, split, *extra):
    args = [f"split={split}", f"boxes={data / 'annotations.json'}", f"videos={data / 'videos'}",
            "frame_size=[128,96]", "input_size=48", "num_rgb_frames=4", "epochs=1", "batch_size=4", "workers=0",
            "holdout_fraction=0", "lr=0.01", f"out={out}", "device=cpu", *extra]
    return subprocess.run([sys.executable, "-m", "vislearn.video.actions.train", *args], capture_output=True, text=True, env=ENV,
                          cwd=ROOT, timeout=600)


def test_scene_then_frozen_fusion(video_split, tmp_path):
    data, split = video_split
    scene = tmp_path / "scene"
    r = train(scene, data, split, "model=small3d", "model_args.width=8")
    assert r.returncode == 0, r.stderr
    assert "reads frames" in r.stdout
    fusion = tmp_path / "fusion"
    r = train(fusion, data, split, "model=fusion", "model_args.scene=small3d", "model_args.stin=stin_oie",
              "model_args.scene_kwargs={width: 8}", "model_args.stin_kwargs={feature_dim: 32}",
              f"model_args.scene_checkpoint={scene / 'last.pt'}", "model_args.freeze_scene=true")
    assert r.returncode == 0, r.stderr
    assert "reads boxes + frames" in r.stdout
    s = torch.load(scene / "last.pt", weights_only=True)["model"]
    f = torch.load(fusion / "last.pt", weights_only=True)["model"]
    trunk = {k: v for k, v in s.items() if not k.startswith("classifier.")}
    assert trunk, "scene checkpoint has no trunk weights"
    for k, v in trunk.items():  # the frozen scene stream is exactly the scene run's, after training
        assert torch.equal(f["scene." + k], v), k
    res = json.loads((fusion / "results.json").read_text())
    assert res["evaluation"]["videos"] == len(json.loads((split / "validation.json").read_text()))


@pytest.mark.slow  # 28 s; STRG's model, loading and export are in test_strg_stride16 / test_export_all_models
def test_strg_from_scene_run_then_fused_with_stin(video_split, tmp_path):
    """STRG through the CLI: its trunk starts from a scene run, its boxes are those of the RGB frames;
    then STRG (frozen) + STIN under the fusion head, STIN reading its own box frames in the same batch."""
    data, split = video_split
    scene = tmp_path / "scene"
    assert train(scene, data, split, "model=small3d", "model_args.width=8").returncode == 0
    strg = tmp_path / "strg"
    r = train(strg, data, split, "model=strg", "model_args.scene=small3d", "model_args.scene_kwargs={width: 8}",
              "model_args.node_dim=16", "model_args.roi_size=2", f"model_args.scene_checkpoint={scene / 'last.pt'}")
    assert r.returncode == 0, r.stderr
    assert "reads boxes + frames + boxes on the frames" in r.stdout
    fusion = tmp_path / "fusion"
    r = train(fusion, data, split, "model=fusion", "model_args.scene=strg", "model_args.stin=stin_oie",
              "model_args.scene_kwargs={scene: small3d, scene_kwargs: {width: 8}, node_dim: 16, roi_size: 2}",
              "model_args.stin_kwargs={feature_dim: 32, num_frames: 6}", "num_box_frames=6",
              f"model_args.scene_checkpoint={strg / 'last.pt'}", "model_args.freeze_scene=true")
    assert r.returncode == 0, r.stderr
    s = torch.load(strg / "last.pt", weights_only=True)["model"]
    f = torch.load(fusion / "last.pt", weights_only=True)["model"]
    assert any(k.startswith("graph_layers.") for k in s)
    for k, v in s.items():
        if not k.startswith("classifier."):
            assert torch.equal(f["scene." + k], v), k
    res = json.loads((fusion / "results.json").read_text())
    assert res["evaluation"]["videos"] == len(json.loads((split / "validation.json").read_text()))
