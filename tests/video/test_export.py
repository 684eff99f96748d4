"""Models out (`vislearn video export`): TorchScript run by torch, ONNX run by onnxruntime, on real batches
of the real sample (its boxes and 12-fps frames, several batch sizes: the batch size is dynamic), against the
eager model's logits; `actions.infer --runtime onnx|torchscript` against eager inference."""
import json

import numpy as np
import pytest
import torch

from vislearn.video.actions.checkpoints import model_from_checkpoint
from vislearn.video.actions.config import TrainConfig, apply, to_dict
from vislearn.video.actions.export import load_exported, main
from vislearn.video.actions.models import create_model
from vislearn.common.checkpoint import save_checkpoint
from official_reference import randomise
from sample_batch import sample_batch

pytestmark = pytest.mark.usefixtures("one_thread")
ort = pytest.importorskip("onnxruntime")

PIXELS = {"input_size": 48, "num_rgb_frames": 4}
MODELS = {
    "stin_oie_nl": ("stin_oie_nl", {}, {}),
    "stin_official": ("stin_oie", {"official": True}, {"official_slots": True}),
    "fusion": ("fusion", {"scene": "small3d", "stin": "stin_oie_nl", "scene_kwargs": {"width": 8},
                          "stin_kwargs": {"feature_dim": 64}, "freeze_scene": True}, PIXELS),
    "strg": ("strg", {"scene": "small3d", "scene_kwargs": {"width": 8}, "node_dim": 32, "roi_size": 3}, PIXELS),
    "tsm_mobilenet_v2": ("tsm_mobilenet_v2", {"frozen_blocks": 4}, PIXELS),
}


def make_checkpoint(folder, key: str) -> tuple:
    name, args, cfg = MODELS[key]
    torch.manual_seed(0)
    model = randomise(create_model(name, 174, **args), seed=1)
    config = to_dict(apply(TrainConfig(), {"model": name, "model_args": args, **cfg}, "test"))
    path = folder / f"{key}.pt"
    save_checkpoint({"model": model.state_dict(), "model_name": name, "model_args": args, "config": config,
                     "class_names": [f"class {i}" for i in range(174)], "epoch": 3}, path)
    return path, model_from_checkpoint(torch.load(path, weights_only=True)), config


def export_cli(capsys, ckpt, fmt, out, *extra) -> tuple[int, str]:
    rc = main([str(ckpt), "--format", fmt, "--out", str(out), *extra])
    cap = capsys.readouterr()
    return rc, cap.out + cap.err


def real_batch(sample_dir, model, config, views=(2, 1)) -> dict:
    return sample_batch(sample_dir, config, needs_boxes=model.needs_boxes, needs_frames=model.needs_frames,
                        needs_rgb_boxes=getattr(model, "needs_rgb_boxes", False), views=views)


@pytest.mark.parametrize("key,fmt", [("stin_oie_nl", "onnx"), ("stin_oie_nl", "torchscript"), ("stin_official", "onnx"),
                                     ("fusion", "onnx"), ("fusion", "torchscript"), ("strg", "onnx"),
                                     ("tsm_mobilenet_v2", "torchscript")])
def test_exported_model_gives_the_eager_logits_on_real_batches(key, fmt, sample_dir, tmp_path, capsys):
    ckpt, model, config = make_checkpoint(tmp_path, key)
    out = tmp_path / f"{key}.{'onnx' if fmt == 'onnx' else 'ts'}"
    rc, text = export_cli(capsys, ckpt, fmt, out)
    assert rc == 0, text
    assert f"wrote {out}" in text and "batch size dynamic" in text
    batch = real_batch(sample_dir, model, config)  # 14 real clips (7 videos x 2 clips)
    with torch.no_grad():
        want = model(batch)
    assert want.shape == (14, 174) and want.std() > 0.01
    for rows in (slice(0, 14), slice(3, 4)):  # batch 14 and batch 1; traced at 2
        part = {k: v[rows] for k, v in batch.items() if isinstance(v, torch.Tensor)}
        if fmt == "onnx":  # onnxruntime alone: inputs by name, numpy in and out
            session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
            got = session.run(["logits"], {i.name: part[i.name].numpy() for i in session.get_inputs()})[0]
        else:  # torch alone
            with torch.no_grad():
                got = torch.jit.load(str(out))(*(part[n] for n in load_exported(out, fmt).input_names)).numpy()
        np.testing.assert_allclose(got, want[rows].numpy(), rtol=0, atol=1e-4)


def test_exported_files_carry_what_inference_needs(tmp_path, capsys):
    ckpt, model, config = make_checkpoint(tmp_path, "strg")
    out = tmp_path / "strg.onnx"
    assert export_cli(capsys, ckpt, "onnx", out)[0] == 0
    exported = load_exported(out, "onnx")
    meta = exported.meta
    assert meta["class_names"][5] == "class 5" and meta["model_name"] == "strg" and meta["config"] == config
    assert [i["name"] for i in meta["inputs"]] == ["boxes", "box_ids", "box_mask", "frames", "rgb_boxes", "rgb_box_mask"]
    assert meta["inputs"][3]["shape"] == ["batch", 3, 4, 48, 48]
    assert exported.needs_frames and exported.needs_boxes and exported.needs_rgb_boxes
    (tmp_path / "keep.onnx").write_text("mine")
    rc, text = export_cli(capsys, ckpt, "onnx", tmp_path / "keep.onnx")
    assert rc == 2 and "exists; pass --overwrite" in text and (tmp_path / "keep.onnx").read_text() == "mine"
    rc, text = export_cli(capsys, out, "onnx", tmp_path / "x.onnx")  # an ONNX file is not a checkpoint
    assert rc == 2 and len(text.strip().splitlines()) == 1 and "x.onnx" not in text
    with pytest.raises(SystemExit) as e:  # a usage error, not torch's traceback
        export_cli(capsys, ckpt, "onnx", tmp_path / "y.onnx", "--threads", "0")
    assert e.value.code == 2 and "--threads: must be at least 1" in capsys.readouterr().err


def test_infer_runtime_onnx_and_torchscript_give_the_eager_scores(sample_dir, tmp_path, capsys):
    from vislearn.video.actions.infer import main as infer

    ckpt, model, config = make_checkpoint(tmp_path, "fusion")
    files = {"onnx": tmp_path / "fusion.onnx", "torchscript": tmp_path / "fusion.ts"}
    for fmt, out in files.items():
        assert export_cli(capsys, ckpt, fmt, out)[0] == 0
    video = sample_dir / "frames" / "57082"  # a real frame folder, its real boxes
    results = {}
    for runtime, path in (("eager", ckpt), *files.items()):
        rc = infer([str(video), "--checkpoint", str(path), "--runtime", runtime, "--boxes",
                    str(sample_dir / "annotations.json"), "--views", "2x2", "--json", "-", "--device", "cpu"])
        cap = capsys.readouterr()
        assert rc == 0, cap.err
        results[runtime] = json.loads(cap.out.splitlines()[0])
    eager = results.pop("eager")
    for runtime, res in results.items():
        assert res["ok"] and res["models"][0]["model"] == f"fusion ({runtime})"
        assert [t["label"] for t in res["topk"]] == [t["label"] for t in eager["topk"]]
        np.testing.assert_allclose([t["score"] for t in res["topk"]], [t["score"] for t in eager["topk"]], atol=1e-5)
    rc = infer([str(video), "--checkpoint", str(ckpt), "--runtime", "onnx", "--boxes", str(sample_dir / "annotations.json")])
    err = capsys.readouterr().err
    assert rc == 2 and "not an ONNX model onnxruntime can load" in err and len(err.strip().splitlines()) == 1


SCENE_TRUNKS = ["i3d_r50", "r3d_18", "mc3_18", "r2plus1d_18", "s3d", "swin3d_t", "small3d", "tsm_mobilenet_v2",
                "i3d_mobilenet_v2"]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("name", SCENE_TRUNKS)
def test_every_scene_trunk_exports(name, fmt, sample_dir, tmp_path, capsys):
    MODELS[name] = (name, {"official": True} if name == "i3d_r50" else {}, {"input_size": 64, "num_rgb_frames": 8})
    ckpt, model, config = make_checkpoint(tmp_path, name)
    out = tmp_path / f"{name}.{fmt}"
    rc, text = export_cli(capsys, ckpt, fmt, out)
    assert rc == 0, text
    batch = real_batch(sample_dir, model, config, views=(1, 1))
    with torch.no_grad():
        want = model(batch)
    np.testing.assert_allclose(load_exported(out, fmt)(batch).numpy(), want.numpy(), rtol=0, atol=1e-4)
