"""SAM training: the loss on crafted inputs, the simulated interaction (points in the error region with the right
labels, 11 rounds, the previous logits as the mask prompt), a tiny run that lowers the loss and writes a loadable
sam.pth, exact resume after SIGKILL, and one-line errors for bad input. Data: `vislearn segment generate-data` at
64 px; model: a tiny SamArch (64 px, width 32) saved with save_sam and given as --init."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vislearn.common.errors import UserError
from vislearn.segment.data.sa1b import load_dataset
from vislearn.segment.interactive import error_points, round_plan, simulate
from vislearn.segment.losses import dice_loss, focal_loss, sam_loss
from vislearn.segment.model.build import SamArch, build_sam, load_sam, save_sam
from vislearn.segment.samples import SegSamples
from vislearn.segment.train import SegTrainConfig, load_config, main, train

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]
TINY = SamArch("test_tiny", img_size=64, width=32, depth=2, heads=2, window_size=2, global_attn_indexes=(1,),
               prompt_dim=32, decoder_mlp=64, decoder_heads=2, iou_head_hidden=32)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("segdata")
    out = root / "gen"
    proc = subprocess.run([sys.executable, "-m", "vislearn.segment", "generate-data", "--out", str(out), "--train",
                           "12", "--val", "3", "--test", "0", "--size", "64", "--seed", "0", "--quiet"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    torch.manual_seed(0)
    save_sam(root / "tiny.pth", build_sam(TINY), TINY)
    return out, root / "tiny.pth"


def tiny_cfg(init, **kw) -> SegTrainConfig:
    base = dict(init=str(init), steps=6, batch_images=2, masks_per_image=4, rounds=3, lr=2e-3, warmup_steps=1,
                ckpt_every=2, val_images=3, val_masks=4, min_area=4, threads=1)
    return SegTrainConfig(**{**base, **kw})


# ------------------------------------------------------------------------------------------------------- losses
def test_perfect_logits_have_near_zero_focal_and_dice():
    target = torch.zeros(2, 16, 16, dtype=torch.bool)
    target[0, 4:10, 3:12] = True
    target[1, :, :5] = True
    logits = torch.where(target, 20.0, -20.0)
    assert focal_loss(logits, target).max() < 1e-6
    assert dice_loss(logits, target).max() < 1e-6
    assert focal_loss(-logits, target).min() > 0.1 and dice_loss(-logits, target).min() > 0.9


def test_min_of_three_backpropagates_only_the_best_mask_and_iou_target_is_right():
    target = torch.zeros(1, 8, 8, dtype=torch.bool)
    target[0, :, :4] = True  # the left half
    good = torch.where(target[0], 10.0, -10.0)
    half = torch.full((8, 8), -10.0)
    half[:, :2] = 10.0  # a quarter of the image: IoU 0.5 with the left half
    logits = torch.stack([half, good, -good])[None].clone().requires_grad_(True)  # [1, 3, 8, 8]
    iou_pred = torch.tensor([[0.5, 0.2, 0.0]], requires_grad=True)
    parts = sam_loss(logits, iou_pred, target)
    assert int(parts.choice[0]) == 1
    # actual IoUs: 0.5, 1.0, 0.0 -> MSE over all three: ((0)^2 + (0.8)^2 + 0) / 3
    assert parts.iou_mse == pytest.approx(0.64 / 3, abs=1e-6)
    assert parts.iou == pytest.approx(1.0)
    parts.total.backward()
    assert logits.grad[0, 1].abs().sum() > 0
    assert logits.grad[0, 0].abs().sum() == 0 and logits.grad[0, 2].abs().sum() == 0
    assert torch.all(iou_pred.grad != 0) or iou_pred.grad[0, 0] == 0  # MSE on all three (the first is exact)
    assert iou_pred.grad[0, 1] != 0


# --------------------------------------------------------------------------------------------------- interaction
def test_round_plan_is_the_papers():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        plan = round_plan(11, g)
        assert len(plan) == 10 and sum(plan) == 8 and plan[-1] is False


def test_error_points_lie_in_the_error_region_with_their_labels():
    g = torch.Generator().manual_seed(0)
    gt = torch.zeros(3, 10, 10, dtype=torch.bool)
    pred = torch.zeros_like(gt)
    gt[0, 2:5, 2:5] = True  # mask 0: nothing predicted -> a positive click in the mask
    pred[1, 0, :] = True  # mask 1: predicted where nothing is -> a negative click on row 0
    gt[2, 5:, 5:] = pred[2, 5:, 5:] = True  # mask 2: perfect -> a padding point
    for _ in range(10):
        xy, labels = error_points(pred, gt, g)
        assert labels.tolist() == [1, 0, -1]
        assert gt[0, xy[0, 1], xy[0, 0]] and xy[1, 1] == 0


def test_simulation_clicks_labels_rounds_and_mask_prompts(data):
    gen, init = data
    model, arch = load_sam(init)
    ds = SegSamples(load_dataset(gen, split="train"), 64, masks_per_image=6, seed=0, low_size=16, min_area=4)
    s = [ds.get(0, 0), ds.get(1, 0)]
    masks = torch.cat([x["masks"] for x in s])
    low = torch.cat([x["low"] for x in s])
    index = torch.cat([torch.full((len(x["masks"]),), i) for i, x in enumerate(s)])
    sizes = torch.tensor([[64, 64]]).expand(len(masks), 2)
    emb = model.image_encoder(torch.stack([model.preprocess(x["image"]) for x in s]))
    out = simulate(model, emb, index, masks, low, sizes, torch.Generator().manual_seed(3), rounds=11,
                   keep_prompts=True)
    assert len(out.rounds) == len(out.prompts) == 11
    assert out.loss.requires_grad and torch.isfinite(out.loss)
    first = out.prompts[0]
    use_box = first["use_box"]
    assert 0 < int(use_box.sum()) < len(masks) or len(masks) < 4  # both kinds of first prompt (seeded)
    pts = first["coords"][:, 0].long()
    assert all(masks[i, pts[i, 1], pts[i, 0]] for i in range(len(masks)) if not use_box[i])  # in the mask
    assert sum(p["new_point"] for p in out.prompts) == 8
    for r in range(11):
        rec = out.prompts[r]
        for grp in rec["groups"]:
            assert (grp["mask_input"] is None) == (r == 0)
            if r > 0:  # the previous round's logits, as given
                assert torch.equal(grp["mask_input"], out.prompts[r - 1]["logits"][grp["index"]])
            assert grp["multimask"] == (r == 0 and grp["boxes"] is None)
        if r > 0 and rec["new_point"]:
            prev, xy, lab = out.prompts[r - 1]["pred"], rec["coords"][:, -1].long(), rec["labels"][:, -1]
            for i in range(len(masks)):
                fn = bool(masks[i, xy[i, 1], xy[i, 0]] and not prev[i, xy[i, 1], xy[i, 0]])
                fp = bool(prev[i, xy[i, 1], xy[i, 0]] and not masks[i, xy[i, 1], xy[i, 0]])
                assert (lab[i] == 1 and fn) or (lab[i] == 0 and fp) or (lab[i] == -1 and not (prev[i] ^ masks[i]).any())
        elif r > 0:
            assert rec["coords"].shape[1] == out.prompts[r - 1]["coords"].shape[1]


# -------------------------------------------------------------------------------------------------------- runs
def test_tiny_training_lowers_the_loss_and_writes_a_loadable_sam(data, tmp_path):
    gen, init = data
    res = train(tiny_cfg(init, steps=40, ckpt_every=40, rounds=2, masks_per_image=8), gen, tmp_path / "run",
                log=lambda *a: None)
    rows = [r for r in map(eval_json, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert len(rows) == 40
    first, last = np.mean([r["loss"] for r in rows[:8]]), np.mean([r["loss"] for r in rows[-8:]])
    assert last < 0.8 * first, (first, last)
    model, arch = load_sam(tmp_path / "run" / "sam.pth")
    assert arch == TINY
    assert {"point_miou", "point_oracle_miou", "box_miou"} <= set(res["val"]) and res["val"]["val_masks"] > 0
    assert res["val"]["point_oracle_miou"] >= res["val"]["point_confident_miou"] - 1e-9


def eval_json(line):
    import json

    return json.loads(line)


def test_records_list_api_for_the_data_engine(data, tmp_path):
    gen, init = data
    records = load_dataset(gen, split="train")[:4]
    res = train(tiny_cfg(init, steps=2, val_images=0), records, tmp_path / "r", log=lambda *a: None)
    assert res["steps"] == 2 and "val" not in res
    assert (tmp_path / "r" / "sam.pth").is_file()


KILLED = """
import os, signal, sys, torch
torch.set_num_threads(1)
sys.path.insert(0, {tests!r})
from test_seg_train import tiny_cfg
from vislearn.segment.train import train

def log(msg, *a, **k):
    if msg.startswith("checkpoint step 2/"):  # logged after the checkpoint is written: die like a killed job
        os.kill(os.getpid(), signal.SIGKILL)

train(tiny_cfg({init!r}), {gen!r}, {out!r}, log=log)
"""


def test_resume_after_sigkill_gives_the_same_weights(data, tmp_path):
    gen, init = data
    killed = tmp_path / "killed"
    script = KILLED.format(tests=str(Path(__file__).parent), init=str(init), gen=str(gen), out=str(killed))
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=180)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert (killed / "last.pt").is_file() and not (killed / "sam.pth").exists()
    train(tiny_cfg(init), gen, killed, resume=True, log=lambda *a: None)
    train(tiny_cfg(init), gen, tmp_path / "whole", log=lambda *a: None)
    a = torch.load(killed / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == 5
    for k in b["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert [r.get("loss") for r in a["metrics"]] == [r.get("loss") for r in b["metrics"]]


# --------------------------------------------------------------------------------------------------- bad input
def one_line_error(capsys, argv, pattern):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert pattern in err, err


def test_bad_inputs_are_one_line(data, tmp_path, capsys):
    gen, init = data
    one_line_error(capsys, ["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o1"), "--init", str(init)],
                   "missing")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "junk.pth")
    one_line_error(capsys, ["--data", str(gen), "--out", str(tmp_path / "o2"), "--encoder", str(tmp_path / "junk.pth")],
                   "not a ViT encoder checkpoint")
    one_line_error(capsys, ["--data", str(gen), "--out", str(tmp_path / "o3"), "no_such_key=3"],
                   "unknown config key 'no_such_key'")
    one_line_error(capsys, ["--data", str(gen), "--out", str(tmp_path / "o4"), "--init", str(tmp_path / "junk.pth")],
                   "not a SAM checkpoint")
    with pytest.raises(UserError, match="steps=0"):
        load_config(None, ["steps=0"])


def test_cli_run_with_the_quick_config(data, tmp_path, capsys):
    gen, init = data
    out = tmp_path / "cli"
    assert main(["--data", str(gen), "--out", str(out), "--config", str(REPO / "configs/segment/quick.yaml"),
                 "--init", str(init), "steps=2", "min_area=4", "threads=1"]) == 0
    saved = eval_json((out / "config.json").read_text())
    assert saved["steps"] == 2 and saved["rounds"] == 3 and saved["init"] == str(init)
    assert (out / "results.json").is_file() and (out / "sam.pth").is_file()
    # a second start without --resume is refused; with --resume the finished run is left as it is
    assert main(["--data", str(gen), "--out", str(out), "--init", str(init), "steps=2"]) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_freeze_encoder_trains_the_decoder_only(data, tmp_path):
    gen, init = data
    train(tiny_cfg(init, steps=2, val_images=0, freeze_encoder=True), gen, tmp_path / "f", log=lambda *a: None)
    before, _ = load_sam(init)
    after, _ = load_sam(tmp_path / "f" / "sam.pth")
    a, b = before.state_dict(), after.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("image_encoder."))
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("mask_decoder."))
