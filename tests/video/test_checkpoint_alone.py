"""A checkpoint alone is enough: a fusion model trained (actions.train, on the real sample) from a scene trunk
file (`backbone_weights`) and a STIN checkpoint (`stin_checkpoint`) runs `actions.infer`, `actions.evaluate`
and `actions.export` after both of those files are deleted."""
import contextlib
import io
import json
import shutil

import pytest
import torch

from vislearn.video.actions.models import create_model
from sample_batch import SAMPLE_IDS

pytestmark = pytest.mark.usefixtures("one_thread")


def test_trained_fusion_model_needs_none_of_its_weight_sources(sample_dir, tmp_path, capsys):
    from vislearn.video.actions.evaluate import main as evaluate
    from vislearn.video.actions.export import main as export
    from vislearn.video.actions.infer import main as infer
    from vislearn.video.actions.train import main as train

    labels = json.loads((sample_dir / "splits" / "compositional" / "labels.json").read_text())
    names = sorted(labels, key=lambda n: int(labels[n]))
    records = [{"id": v, "label": names[i], "template": names[i], "placeholders": []} for i, v in enumerate(SAMPLE_IDS)]
    split = tmp_path / "split"
    split.mkdir()
    shutil.copy(sample_dir / "splits" / "compositional" / "labels.json", split / "labels.json")
    # train on four videos, evaluate on the other three (a video on both sides is refused)
    (split / "train.json").write_text(json.dumps(records[:4]))
    (split / "validation.json").write_text(json.dumps(records[4:]))
    sources = tmp_path / "sources"
    sources.mkdir()
    torch.manual_seed(0)
    trunk, stin = sources / "small3d_trunk.pth", sources / "stin_run_best.pt"
    torch.save(create_model("small3d", 174, width=4).backbone.state_dict(), trunk)
    torch.save({"model": create_model("stin_oie", 174, feature_dim=16).state_dict()}, stin)
    with contextlib.redirect_stdout(io.StringIO()):
        assert train([f"split={split}", f"boxes={sample_dir / 'annotations.json'}", f"videos={sample_dir / 'frames'}",
                      "model=fusion", "model_args.scene=small3d", "model_args.stin=stin_oie",
                      f"model_args.scene_kwargs={{width: 4, backbone_weights: {trunk}}}",
                      "model_args.stin_kwargs={feature_dim: 16}", f"model_args.stin_checkpoint={stin}",
                      "input_size=32", "num_rgb_frames=4", "epochs=1", "batch_size=4", "workers=0", "threads=1",
                      "holdout_fraction=0", "eval_set=", "log_every=0", "device=cpu", f"out={tmp_path / 'run'}"]) == 0
    ckpt = tmp_path / "run" / "best.pt"
    saved = torch.load(ckpt, weights_only=True)
    assert saved["model_args"]["stin_checkpoint"] == str(stin)  # where it started from is kept, as a record
    assert saved["model_args"]["scene_kwargs"]["backbone_weights"] == str(trunk)
    shutil.rmtree(sources)  # the weight sources are gone
    capsys.readouterr()

    rc = infer([str(sample_dir / "frames" / "57082"), "--checkpoint", str(ckpt), "--boxes",
                str(sample_dir / "annotations.json"), "--json", "-", "--device", "cpu"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    res = json.loads(out.out.splitlines()[0])
    assert res["ok"] and res["topk"][0]["label"] in names
    assert evaluate(["--checkpoint", str(ckpt), "--workers", "0", "--device", "cpu"]) == 0
    assert "top-1" in capsys.readouterr().out
    assert export([str(ckpt), "--format", "onnx", "--out", str(tmp_path / "fusion.onnx")]) == 0
