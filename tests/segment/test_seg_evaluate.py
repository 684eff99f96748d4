"""`vislearn segment evaluate`: the metric code proven on a model whose masks are known (the ground truth, or the
ground truth shifted by a known amount), the paper's point protocol, proposal recall on crafted proposals, a real
tiny random SAM end to end, the real Something-Else frames (skipped when the sample is absent), bad input."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from vislearn.segment.evaluate import (best_ious, evaluate, interior_points, matched_ious, recall_summary,
                                       results_table)
from vislearn.segment.masks import interior_point, masks_to_boxes_xyxy, rle_encode
from vislearn.segment.model.build import SamArch, build_sam
from vislearn.segment.predictor import SamPredictor

FIXTURE = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "something_else_sample"
TINY = SamArch("test_tiny", img_size=64, width=32, depth=2, heads=2, window_size=2, global_attn_indexes=(1,),
               prompt_dim=32, decoder_mlp=64, iou_head_hidden=32)
H, W = 40, 56


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return build_sam(TINY).eval()


@dataclass
class Record:
    """SegImage's interface, in memory."""
    image_id: str
    image: np.ndarray
    gt: np.ndarray
    annotations: list

    def load_image(self):
        return self.image

    def masks(self, indices=None):
        return self.gt if indices is None else self.gt[indices]


def rect(y0, y1, x0, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def records():
    rng = np.random.default_rng(0)
    img = lambda: rng.integers(0, 255, (H, W, 3), dtype=np.uint8)  # noqa: E731
    a = [rect(5, 15, 5, 15), rect(20, 35, 30, 50)]
    b = [rect(2, 30, 10, 40), rect(10, 20, 20, 30)]  # a whole and a part inside it
    return [Record("a", img(), np.stack(a), [{"id": 0, "level": "whole"}, {"id": 1, "level": "whole"}]),
            Record("b", img(), np.stack(b), [{"id": 0, "level": "whole"}, {"id": 1, "level": "part", "parent": 0}])]


def shift(m, dx):
    return np.roll(m, dx, axis=1)


class KnownPredictor(SamPredictor):
    """Masks from the ground truth: the prompt (point or box, in the resized frame) is looked up among those of
    the gt masks; multimask gives [gt shifted by `dx`, gt, empty] with predicted IoUs [0.9, 0.5, 0.1], so the
    model's pick is the shifted mask, the oracle the exact one; the single-mask output is the gt itself."""

    def __init__(self, model, gts: dict, dx: int = 2):
        super().__init__(model)
        self.gts, self.dx, self.image_key = gts, dx, None

    def set_image(self, image, image_format="RGB"):
        super().set_image(image, image_format)
        gt = self.gts[image.tobytes()]
        pts = self.transform.apply_coords(interior_points(gt), self.original_size)
        bxs = self.transform.apply_boxes(masks_to_boxes_xyxy(gt).numpy(), self.original_size)
        self.lookup = [(np.round(p, 3).tobytes(), i) for i, p in enumerate(pts)] + \
                      [(np.round(b, 3).astype(np.float64).tobytes(), i) for i, b in enumerate(bxs)]
        self.gt = gt

    def _index(self, key):
        return next(i for k, i in self.lookup if k == key)

    def predict_torch(self, point_coords, point_labels, boxes=None, mask_input=None, multimask_output=True,
                      return_logits=False):
        if point_coords is not None:
            keys = [np.round(p[0].double().numpy(), 3).tobytes() for p in point_coords]
        else:
            keys = [np.round(b.double().numpy(), 3).tobytes() for b in boxes]
        gt = np.stack([self.gt[self._index(k)] for k in keys])
        if not multimask_output:
            return torch.as_tensor(gt)[:, None], torch.full((len(gt), 1), 0.5), None
        trio = np.stack([np.stack([shift(g, self.dx), g, np.zeros_like(g)]) for g in gt])
        return torch.as_tensor(trio), torch.tensor([[0.9, 0.5, 0.1]] * len(gt)), None


def test_metrics_on_known_masks(tiny_model):
    recs = records()
    gts = {r.image.tobytes(): r.gt for r in recs}
    r = evaluate(tiny_model, recs, predictor=KnownPredictor(tiny_model, gts, dx=2))
    assert (r["images"], r["masks"]) == (2, 4)
    # the exact masks: oracle, single output and box all 1
    assert r["miou"]["point_oracle"] == pytest.approx(1.0)
    assert r["miou"]["point_single"] == pytest.approx(1.0)
    assert r["miou"]["box"] == pytest.approx(1.0)
    # the model's pick is the gt shifted 2 px right: a rectangle w wide keeps (w-2)/(w+2) (none touches the border)
    widths = [10, 20, 30, 10]
    assert r["miou"]["point_model"] == pytest.approx(np.mean([(w - 2) / (w + 2) for w in widths]))
    by = r["miou_by_level"]
    assert by["part"]["masks"] == 1 and by["part"]["point_model"] == pytest.approx(8 / 12)
    assert by["whole"]["point_model"] == pytest.approx(np.mean([8 / 12, 18 / 22, 28 / 32]))
    row = r["per_mask"][0]
    assert row["choice"] == 0 and row["pred_iou"] == pytest.approx(0.9)
    assert row["point"] == [float(v) for v in interior_point(recs[0].gt[0])]
    assert "| part " in results_table(r)


def test_interior_point_protocol_is_the_distance_maximum():
    m = np.zeros((20, 30), bool)
    m[2:18, 3:9] = True  # a thin bar joined to a big block: the point lies in the block's centre
    m[4:16, 12:28] = True
    m[8:10, 9:12] = True
    x, y = interior_points(m[None])[0]
    assert 12 + 5 <= x <= 28 - 6 and 4 + 5 <= y <= 16 - 6
    assert m[int(y), int(x)]


def test_proposal_recall_on_crafted_proposals():
    gt = [rect(0, 10, 0, 10), rect(20, 30, 20, 30), rect(0, 10, 40, 50)]
    props = [rect(0, 10, 0, 10),  # exact: 1.0
             rect(20, 30, 22, 30),  # 80 / 100 = 0.8
             rect(0, 10, 40, 44)]  # 40 / 100 = 0.4
    best = best_ious([rle_encode(m) for m in gt], [rle_encode(m) for m in props])
    assert best == pytest.approx([1.0, 0.8, 0.4])
    s = recall_summary(best, n_images=1, n_proposals=len(props))
    assert s["recall@0.5"] == pytest.approx(2 / 3) and s["recall@0.75"] == pytest.approx(2 / 3)
    # thresholds 0.5..0.95: the 1.0 always counts, the 0.8 at 0.5..0.8 (7 of 10)
    assert s["AR"] == pytest.approx((10 + 7) / 30)
    assert s["masks_per_image"] == 3
    assert best_ious([rle_encode(gt[0])], []) == pytest.approx([0.0])
    iou = np.array([[0.9, 0.8], [0.85, 0.1]])
    assert matched_ious(iou, 0.5) == [(0, 0, 0.9)]  # one to one: the 0.85 and the 0.8 share a mask with the 0.9
    assert matched_ious(iou, 0.05) == [(0, 0, 0.9), (1, 1, 0.1)]


def test_tiny_random_sam_end_to_end(tiny_model):
    torch.set_num_threads(1)
    r = evaluate(tiny_model, records(), auto=True,
                 auto_options={"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0})
    for k in ("point_model", "point_oracle", "point_single", "box"):
        assert 0.0 <= r["miou"][k] <= 1.0
    assert r["miou"]["point_oracle"] >= r["miou"]["point_model"] - 1e-6  # the oracle is never worse
    p = r["proposals"]
    assert 0.0 <= p["AR"] <= p["recall@0.5"] <= 1.0 and p["masks_per_image"] > 0
    assert len(r["per_mask"]) == 4 and all("best_proposal_iou" in row for row in r["per_mask"])


@pytest.mark.skipif(not (FIXTURE / "annotations.json").is_file(), reason="Something-Else sample absent")
def test_real_frames_on_the_fixture(tiny_model, tmp_path):
    from vislearn.segment.realframes import box_tightness, evaluate_real

    sheet = tmp_path / "sheet.png"
    r = evaluate_real(tiny_model, FIXTURE, sheet, frames_per_video=1, max_videos=3)
    assert r["frames"] == 3 and r["boxes"] >= 3 and sheet.stat().st_size > 1000
    assert 0 <= r["box_iou"]["mean"] <= 1 and r["by_kind"]["hand"]["box_iou"]["n"] >= 1
    # the measure itself: a mask filling the box exactly, then half of it outside
    m = np.zeros((20, 20), bool)
    m[5:10, 4:12] = True
    assert box_tightness(m, np.array([4, 5, 12, 10])) == pytest.approx((1.0, 1.0))
    assert box_tightness(m, np.array([8, 5, 12, 10])) == pytest.approx((0.5, 0.5))
    assert box_tightness(np.zeros((4, 4), bool), np.array([0, 0, 2, 2])) == (0.0, None)


def _cli(capsys, *args):
    """The command in this process (its `main`, as `vislearn segment evaluate` runs it): exit code and stderr."""
    from vislearn.segment.evaluate import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def test_cli_bad_inputs_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    for args in (["--checkpoint", bad, "--data", tmp_path / "missing", "--out", tmp_path / "o1"],
                 ["--checkpoint", bad, "--real", FIXTURE if FIXTURE.is_dir() else tmp_path, "--out", tmp_path / "o2"],
                 ["--checkpoint", bad, "--out", tmp_path / "o3"]):
        code, err = _cli(capsys, *args)
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1 and err.startswith("error:"), err


def test_cli_end_to_end_writes_its_files(tiny_model, tmp_path, capsys):
    from vislearn.segment.data.generate import main as generate
    from vislearn.segment.model.build import save_sam

    assert generate(["--out", str(tmp_path / "data"), "--train", "0", "--val", "0", "--test", "2", "--size", "64",
                     "--quiet"]) == 0
    save_sam(tmp_path / "sam.pth", tiny_model, TINY)
    args = ["--checkpoint", tmp_path / "sam.pth", "--data", tmp_path / "data", "--out", tmp_path / "ev", "--auto",
            "--points-per-side", "2", "--pred-iou-thresh", "0", "--stability-thresh", "0"]
    real = FIXTURE.is_dir()
    if real:
        args += ["--real", FIXTURE, "--real-frames", "1"]
    code, err = _cli(capsys, *args)
    assert code == 0, err
    res = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert res["images"] == 2 and res["masks"] > 0 and 0 <= res["miou"]["box"] <= 1
    assert 0 <= res["proposals"]["AR"] <= 1
    rows = (tmp_path / "ev" / "per_mask.jsonl").read_text().splitlines()
    assert len(rows) == res["masks"]
    assert {"iou_model", "iou_oracle", "iou_single", "iou_box"} <= json.loads(rows[0]).keys()
    assert "| all " in (tmp_path / "ev" / "results.md").read_text()
    if real:
        assert (tmp_path / "ev" / "contact_sheet.png").is_file() and res["real"]["frames"] == 7
    # a second run into the same folder replaces its own files
    assert _cli(capsys, *args)[0] == 0
