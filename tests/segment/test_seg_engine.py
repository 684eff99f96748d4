"""`vislearn segment engine`: the simulated annotator on crafted masks (a perfect model needs one click; a model
that predicts nothing runs out of clicks; clicks land on the largest error), then a tiny engine run end to end on
generated images (short retraining), its resume, and bad input."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from vislearn.common.jsonio import read_json
from vislearn.segment.engine import (Engine, EngineSettings, annotate_objects, clicks_summary, next_click)
from vislearn.segment.masks import interior_point
from vislearn.segment.model.build import SamArch, build_sam, save_sam
from vislearn.segment.predictor import SamPredictor

TINY = SamArch("test_tiny", img_size=64, width=32, depth=2, heads=2, window_size=2, global_attn_indexes=(1,),
               prompt_dim=32, decoder_mlp=64, iou_head_hidden=32)
H, W = 40, 48


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return build_sam(TINY).eval()


def rect(y0, y1, x0, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


class ScriptedPredictor(SamPredictor):
    """`mode` "perfect": the gt mask whose interior point is the prompt's first click; "empty": nothing;
    "grow": the gt clipped to the bounding box of the positive clicks grown by 3 px (each click helps)."""

    def __init__(self, model, gt, mode):
        super().__init__(model)
        self.gt, self.mode, self.calls = gt, mode, []

    def predict_torch(self, point_coords, point_labels, boxes=None, mask_input=None, multimask_output=True,
                      return_logits=False):
        self.calls.append((tuple(point_coords.shape), multimask_output, mask_input is not None))
        (h, w), (nh, nw) = self.original_size, self.input_size  # back from the resized frame to pixels
        px = point_coords.double().numpy() * np.array([w / nw, h / nh])
        masks = []
        for p, lab in zip(px, point_labels.numpy()):
            first = tuple(np.round(p[0]).astype(int))
            i = next(j for j, g in enumerate(self.gt) if interior_point(g) == first)
            if self.mode == "perfect":
                m = self.gt[i]
            elif self.mode == "empty":
                m = np.zeros_like(self.gt[i])
            else:
                pos = p[lab == 1]
                x0, y0 = np.floor(pos.min(0)).astype(int) - 3
                x1, y1 = np.ceil(pos.max(0)).astype(int) + 3
                m = self.gt[i] & rect(max(y0, 0), y1 + 1, max(x0, 0), x1 + 1)
            masks.append(m)
        masks = torch.as_tensor(np.stack(masks))[:, None]
        c = 3 if multimask_output else 1
        low = torch.zeros(len(masks), c, 16, 16)
        return masks.repeat(1, c, 1, 1), torch.rand(len(masks), c), low


def scene():
    return np.stack([rect(5, 15, 5, 15), rect(20, 38, 10, 46), rect(2, 12, 30, 44)])


def image():
    return np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)


def test_perfect_model_needs_one_click(tiny_model):
    gt = scene()
    p = ScriptedPredictor(tiny_model, gt, "perfect")
    res = annotate_objects(p, image(), gt, budget=20, target=0.9)
    assert [r.clicks for r in res] == [1, 1, 1] and all(r.reached and r.iou == 1.0 for r in res)
    assert len(p.calls) == 1 and p.calls[0] == ((3, 1, 2), True, False)  # one batch, three masks out
    s = clicks_summary(res, click_seconds=2.0)
    assert s["clicks_per_mask"] == 1 and s["reached"] == 1 and s["seconds_per_mask"] >= 2.0


def test_empty_model_runs_out_of_budget(tiny_model):
    gt = scene()
    p = ScriptedPredictor(tiny_model, gt, "empty")
    res = annotate_objects(p, image(), gt, budget=5, target=0.9)
    assert [r.clicks for r in res] == [5, 5, 5] and not any(r.reached for r in res)
    assert [c[0] for c in p.calls] == [(3, k, 2) for k in range(1, 6)]  # one more click per round, all objects
    assert all(mask for _, multi, mask in p.calls[1:]) and not p.calls[1][1]  # later: mask prompt, one mask


def test_growing_model_needs_a_few_clicks(tiny_model):
    gt = scene()[1:2]  # a wide bar: the first click covers the middle, the next ones land on the missed ends
    res = annotate_objects(ScriptedPredictor(tiny_model, gt, "grow"), image(), gt, budget=20, target=0.9)
    assert 1 < res[0].clicks < 20 and res[0].reached


def test_next_click_is_at_the_largest_error():
    gt = rect(0, 20, 0, 40)
    pred = rect(0, 20, 0, 10)  # misses a 20x30 block: a positive click in its middle
    x, y, label = next_click(pred, gt)
    assert label == 1 and 19 <= x <= 30 and 7 <= y <= 12
    spill = gt | rect(20, 40, 0, 48)  # spills over a 20x48 block below: a negative click there
    x, y, label = next_click(spill, gt)
    assert label == 0 and y >= 20


def _settings(data, ckpt, **kw):
    base = dict(rounds=1, images_per_round=1, auto_images=1, eval_images=1, click_budget=2, iou_target=0.05,
                points_per_side=2, pred_iou_thresh=0.0, stability_thresh=0.0, train_steps=1, train_batch=1)
    base.update(kw)
    return EngineSettings(str(data), str(ckpt), **base)


@pytest.fixture(scope="module")
def engine_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("engine")
    p = subprocess.run([sys.executable, "-m", "vislearn.segment", "generate-data", "--out", str(root / "data"),
                        "--train", "3", "--val", "1", "--test", "0", "--size", "64", "--quiet"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    torch.manual_seed(0)
    save_sam(root / "init.pth", build_sam(TINY), TINY)
    return root


def _records(data):
    from vislearn.segment.data.sa1b import load_dataset

    return load_dataset(data, split="train"), load_dataset(data, split="val")


def test_tiny_engine_end_to_end_and_resume(engine_data, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    data = engine_data / "data"
    s = _settings(data, engine_data / "init.pth")
    out = tmp_path / "run"
    state = Engine(out, s, progress=False).run(*_records(data))
    steps = state["steps"]
    assert list(steps) == ["heldout_model0", "stage1_round0", "retrain0", "heldout_model1", "stage2", "stage3"]
    assert len(state["checkpoints"]) == 2 and (out / "stage1_round0" / "sa_1.json").is_file()
    for k in ("heldout_model0", "heldout_model1", "stage1_round0"):
        assert 1 <= steps[k]["clicks_per_mask"] <= 2 and 0 <= steps[k]["miou_1click"] <= 1
    assert 0 <= steps["stage3"]["precision@0.5"] <= 1 and steps["stage2"]["images"] == 1
    saved = read_json(out / "engine.json")
    assert saved["steps"].keys() == steps.keys()
    assert "Stage 3" in (out / "engine.md").read_text() and "Retraining" in (out / "engine.md").read_text()
    # every annotation file is SA-1B (loads back) and holds only accepted masks
    from vislearn.segment.data.sa1b import load_dataset

    for folder in ("stage1_round0", "stage2", "stage3"):
        assert len(load_dataset(out / folder)) == 1

    # resume: a run killed before stage 3 does only stage 3 again
    del saved["steps"]["stage3"]
    (out / "engine.json").write_text(json.dumps(saved))
    import vislearn.segment.engine as engine_mod

    def boom(*a, **k):
        raise AssertionError("a finished step ran again")

    monkeypatch.setattr(engine_mod, "assisted_manual", boom)
    monkeypatch.setattr(engine_mod, "retrain", boom)
    monkeypatch.setattr(engine_mod, "semi_automatic", boom)
    state2 = Engine(out, s, progress=False).run(*_records(data))
    assert "stage3" in state2["steps"] and state2["steps"]["stage1_round0"] == steps["stage1_round0"]
    # other settings in the same folder: refused in one line
    from vislearn.common.errors import UserError

    with pytest.raises(UserError, match="other settings"):
        Engine(out, _settings(data, engine_data / "init.pth", click_budget=3), progress=False)


def _cli(capsys, *args):
    """The command in this process (its `main`, as `vislearn segment engine` runs it): exit code and stderr."""
    from vislearn.segment.engine import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def test_cli_bad_inputs_are_one_line(engine_data, tmp_path, capsys):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    data = engine_data / "data"
    for args in (["--data", data, "--out", tmp_path / "o1", "--checkpoint", bad],
                 ["--data", data, "--out", tmp_path / "o2", "--checkpoint", tmp_path / "missing.pth"],
                 ["--data", tmp_path / "nodata", "--out", tmp_path / "o3", "--checkpoint", engine_data / "init.pth"],
                 ["--data", data, "--out", tmp_path / "o4", "--checkpoint", engine_data / "init.pth",
                  "--images-per-round", "5"]):
        code, err = _cli(capsys, *args)
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1 and err.startswith("error:"), err
