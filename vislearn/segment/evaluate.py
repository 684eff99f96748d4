"""`vislearn segment evaluate`: how good are a SAM's masks, by the paper's protocols.

- **Single-point mIoU.** Each ground-truth mask is prompted with one foreground point at the centre of its interior
  (`masks.interior_point`, the paper's evaluation point). Three numbers: the model's own pick (three masks, the one
  with the highest predicted IoU: the paper's default for an ambiguous single point), the oracle (the best of the
  three by IoU with the ground truth: how much ambiguity costs), and the single-mask output token. Split by the
  annotation's `level` ("whole" objects vs "part"s) where the data says it: a point on a part is ambiguous.
- **Box mIoU.** The ground-truth box (the mask's tight box), one mask.
- **Proposal recall** (`--auto`, slower): the automatic generator's masks against the ground truth; recall at IoU
  0.5 and 0.75, AR averaged over 0.5:0.05:0.95 (COCO's thresholds), masks per image.
- **Real frames** (`--real DIR`): zero-shot on Something-Else frames with their hand/object boxes
  (`realframes.py`): no masks there, so box tightness and a contact sheet.

One image embedding per image; all prompts of an image go through the decoder as one batch. mIoU is the mean over
masks (every mask counts once, as in the paper). Outputs: `results.json`, `results.md` (a table), `per_mask.jsonl`.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from vislearn.common.cli import Parser, command, positive_int
from vislearn.common.errors import UserError
from vislearn.common.files import write_text
from vislearn.common.jsonio import write_json, write_jsonl
from vislearn.common.outputs import claim_folder
from vislearn.common.tables import format_table

from .masks import interior_point, masks_iou, masks_to_boxes_xyxy

AR_THRESHOLDS = tuple(np.round(np.arange(0.5, 0.951, 0.05), 2).tolist())
PROMPT_BATCH = 64  # prompts per decoder call (bounds the memory of 3 full-size masks per prompt)
OUTPUTS = ("results.json", "results.md", "per_mask.jsonl")


# ----------------------------------------------------------------------------- the pieces
def interior_points(gt: np.ndarray) -> np.ndarray:
    """The evaluation point (x, y) of each mask [K, H, W] -> [K, 2] float."""
    return np.array([interior_point(m) for m in gt], dtype=np.float64).reshape(-1, 2)


def _chunks(n: int, size: int = PROMPT_BATCH) -> Iterable[slice]:
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))


@torch.no_grad()
def point_ious(predictor, gt: torch.Tensor, points: np.ndarray) -> dict[str, np.ndarray]:
    """IoUs with the ground truth [K] for one point per mask: `model` (highest predicted IoU of three), `oracle`
    (best of three), `single` (single-mask output); plus `pred_iou` (the model's score of its pick) and `choice`.
    The image must be set on `predictor`."""
    size = predictor.original_size
    coords = torch.as_tensor(predictor.transform.apply_coords(points, size), dtype=torch.float,
                             device=predictor.device)[:, None]
    labels = torch.ones(len(points), 1, dtype=torch.int, device=predictor.device)
    out = {k: [] for k in ("model", "oracle", "single", "pred_iou", "choice")}
    for s in _chunks(len(points)):
        g = gt[s]
        masks, iou_pred, _ = predictor.predict_torch(coords[s], labels[s], multimask_output=True)
        k = masks.shape[1]
        ious = masks_iou(masks.flatten(0, 1), g.repeat_interleave(k, 0)).view(-1, k)
        pick = iou_pred.argmax(1)
        out["model"].append(ious.gather(1, pick[:, None])[:, 0])
        out["oracle"].append(ious.amax(1))
        out["pred_iou"].append(iou_pred.gather(1, pick[:, None])[:, 0])
        out["choice"].append(pick)
        single, _, _ = predictor.predict_torch(coords[s], labels[s], multimask_output=False)
        out["single"].append(masks_iou(single[:, 0], g))
    return {k: torch.cat(v).float().cpu().numpy() if k != "choice" else torch.cat(v).cpu().numpy()
            for k, v in out.items()}


@torch.no_grad()
def box_ious(predictor, gt: torch.Tensor, boxes: torch.Tensor | None = None) -> np.ndarray:
    """IoU [K] of the single mask a box prompt gives (default: each mask's tight box) with its ground truth."""
    boxes = masks_to_boxes_xyxy(gt) if boxes is None else boxes
    t = predictor.transform.apply_boxes(boxes.cpu().numpy(), predictor.original_size)
    t = torch.as_tensor(t, dtype=torch.float, device=predictor.device)
    out = []
    for s in _chunks(len(t)):
        masks, _, _ = predictor.predict_torch(None, None, boxes=t[s], multimask_output=False)
        out.append(masks_iou(masks[:, 0], gt[s]))
    return torch.cat(out).float().cpu().numpy() if out else np.zeros(0, np.float32)


def rles_iou(gt_rles: Sequence[dict], pred_rles: Sequence[dict]) -> np.ndarray:
    """IoU matrix [G, P] of SA-1B RLEs (str or bytes counts), by pycocotools (no decoding)."""
    from pycocotools import mask as coco_mask

    if not gt_rles or not pred_rles:
        return np.zeros((len(gt_rles), len(pred_rles)))
    enc = lambda r: {"size": list(r["size"]), "counts": r["counts"].encode("ascii") if isinstance(r["counts"], str)
                     else r["counts"]}  # noqa: E731
    return np.asarray(coco_mask.iou([enc(r) for r in pred_rles], [enc(r) for r in gt_rles],
                                    [0] * len(gt_rles))).T.reshape(len(gt_rles), len(pred_rles))


def best_ious(gt_rles: Sequence[dict], pred_rles: Sequence[dict]) -> np.ndarray:
    """For each ground-truth mask the IoU of its best proposal [G] (0 when there are none). Proposal recall counts
    a gt mask as found when this reaches the threshold (COCO's AR matches one to one; SAM's proposal numbers on
    LVIS go through COCO's evaluator, but with hundreds of proposals per image the difference is small; the
    one-to-one version is `matched_ious`)."""
    m = rles_iou(gt_rles, pred_rles)
    return m.max(1) if m.shape[1] else np.zeros(len(gt_rles))


def matched_ious(iou: np.ndarray, thresh: float) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching of a [G, P] IoU matrix (highest IoU first) keeping pairs with IoU >= thresh:
    [(gt, pred, iou)]."""
    pairs = []
    if iou.size:
        order = np.dstack(np.unravel_index(np.argsort(-iou, axis=None), iou.shape))[0]
        used_g, used_p = set(), set()
        for g, p in order:
            if iou[g, p] < thresh:
                break
            if g in used_g or p in used_p:
                continue
            used_g.add(g)
            used_p.add(p)
            pairs.append((int(g), int(p), float(iou[g, p])))
    return pairs


def recall_summary(best: np.ndarray, n_images: int, n_proposals: int) -> dict:
    """Recall at 0.5 and 0.75, AR over 0.5:0.95 of per-gt best IoUs, and proposals per image."""
    best = np.asarray(best, dtype=float)
    rec = {f"{t:.2f}": float((best >= t).mean()) if best.size else 0.0 for t in AR_THRESHOLDS}
    return {"recall@0.5": rec["0.50"], "recall@0.75": rec["0.75"], "AR": float(np.mean(list(rec.values()))),
            "recall_by_threshold": rec, "masks_per_image": n_proposals / max(n_images, 1), "gt_masks": int(best.size)}


# ----------------------------------------------------------------------------- the whole evaluation
def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _gt_of(record) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """(image uint8 HxWx3, bool masks [K, H, W] without empty ones, their annotations)."""
    image = record.load_image()
    masks = np.asarray(record.masks(), dtype=bool).reshape(-1, *image.shape[:2])
    keep = [i for i in range(len(masks)) if masks[i].any()]
    return image, masks[keep], [record.annotations[i] for i in keep]


def evaluate(model, records: Sequence, *, auto: bool = False, auto_options: dict | None = None,
             predictor=None, progress: bool = False) -> dict:
    """Point/box mIoU (and with `auto` proposal recall) of `model` on `records` (SegImage-like: `image_id`,
    `annotations`, `load_image()`, `masks()`). Returns the summary dict; its `per_mask` holds one row per mask
    (image, annotation index, level, point, IoUs) and `per_image` the proposal counts."""
    from .predictor import SamPredictor

    predictor = predictor or SamPredictor(model)
    device = predictor.device
    rows, per_image, best_all, n_props = [], [], [], 0
    generator = None
    tty = sys.stderr.isatty()
    if auto:
        from .automatic import AutomaticMaskGenerator
        from .masks import rle_encode

        generator = AutomaticMaskGenerator(model, **(auto_options or {}))
    t0 = time.perf_counter()
    for n, rec in enumerate(records):
        image, gt_np, anns = _gt_of(rec)
        if len(gt_np) == 0:
            continue
        gt = torch.as_tensor(gt_np, device=device)
        predictor.set_image(image)
        points = interior_points(gt_np)
        pt = point_ious(predictor, gt, points)
        bx = box_ious(predictor, gt)
        predictor.reset_image()
        for i, ann in enumerate(anns):
            rows.append({"image_id": rec.image_id, "ann_id": ann.get("id", i), "level": ann.get("level"),
                         "category": ann.get("category"), "area": int(gt_np[i].sum()),
                         "point": [float(points[i][0]), float(points[i][1])],
                         "iou_model": float(pt["model"][i]), "iou_oracle": float(pt["oracle"][i]),
                         "iou_single": float(pt["single"][i]), "iou_box": float(bx[i]),
                         "pred_iou": float(pt["pred_iou"][i]), "choice": int(pt["choice"][i])})
        if generator is not None:
            props = generator.generate(image)
            gt_rles = [rle_encode(m) for m in gt_np]
            best = best_ious(gt_rles, [p["segmentation"] for p in props])
            best_all.append(best)
            n_props += len(props)
            per_image.append({"image_id": rec.image_id, "gt": len(gt_np), "proposals": len(props),
                              "recall@0.5": float((best >= 0.5).mean())})
            for i, b in enumerate(best):
                rows[len(rows) - len(anns) + i]["best_proposal_iou"] = float(b)
        if progress and (tty or (n + 1) % 10 == 0 or n + 1 == len(records)):
            print(f"{n + 1}/{len(records)} images, {len(rows)} masks, {time.perf_counter() - t0:.0f} s",
                  end="\r" if tty else "\n", file=sys.stderr, flush=True)
    if progress and tty:
        print(file=sys.stderr)
    return summarise(rows, per_image, best_all, n_images=len({r["image_id"] for r in rows}), auto=auto,
                     seconds=time.perf_counter() - t0)


def _block(rows: list[dict]) -> dict:
    return {"masks": len(rows), "point_model": _mean(r["iou_model"] for r in rows),
            "point_oracle": _mean(r["iou_oracle"] for r in rows), "point_single": _mean(r["iou_single"] for r in rows),
            "box": _mean(r["iou_box"] for r in rows)}


def summarise(rows: list[dict], per_image: list[dict], best_all: list[np.ndarray], n_images: int, auto: bool,
              seconds: float) -> dict:
    """The summary of per-mask rows: mIoUs overall and by level, proposal recall."""
    out = {"images": n_images, "masks": len(rows), "miou": _block(rows), "seconds": seconds}
    levels = sorted({r["level"] for r in rows if r["level"] is not None})
    if levels:
        out["miou_by_level"] = {lv: _block([r for r in rows if r["level"] == lv]) for lv in levels}
    if auto:
        best = np.concatenate(best_all) if best_all else np.zeros(0)
        out["proposals"] = recall_summary(best, len(per_image), sum(p["proposals"] for p in per_image))
    out["per_mask"] = rows
    out["per_image"] = per_image
    return out


def results_table(results: dict) -> str:
    """results.md: one row per group (all, each level), one column per protocol; proposal recall and real frames
    below."""
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    groups = [("all", results["miou"])] + list(results.get("miou_by_level", {}).items())
    rows = [[name, b["masks"], fmt(b["point_model"]), fmt(b["point_oracle"]), fmt(b["point_single"]), fmt(b["box"])]
            for name, b in groups]
    text = [f"# SAM evaluation: {results.get('checkpoint', '')}", "",
            f"{results['images']} images, {results['masks']} masks (data: {results.get('data', '')}).", "",
            "mIoU (one point at the mask's interior centre; the gt box):", "",
            format_table(rows, ["masks", "n", "1 point (model pick)", "1 point (oracle of 3)", "1 point (single)",
                                "box"])]
    if "proposals" in results:
        p = results["proposals"]
        text += ["", "Automatic masks (proposal recall against the gt masks):", "",
                 format_table([[fmt(p["recall@0.5"]), fmt(p["recall@0.75"]), fmt(p["AR"]),
                                f"{p['masks_per_image']:.1f}"]],
                              ["recall@0.5", "recall@0.75", "AR@0.5:0.95", "masks/image"])]
    if "real" in results:
        from .realframes import real_table

        text += ["", real_table(results["real"])]
    return "\n".join(text) + "\n"


# ----------------------------------------------------------------------------- data and the command
def load_records(data: str | os.PathLike, split: str, max_images: int | None = None) -> list:
    """The images of `data`: its `split` subfolder when it has split folders, else the SA-1B folder itself."""
    from .data.sa1b import load_dataset, split_folders

    records = load_dataset(data, split=split if Path(data).is_dir() and split_folders(data) else None)
    return records[:max_images] if max_images else records


def load_model(path: str | os.PathLike, device: str = "cpu"):
    from .model.build import load_sam

    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: SAM checkpoint not found")
    if p.is_dir():
        raise UserError(f"{p}: is a folder, expected a SAM checkpoint file")
    model, arch = load_sam(p)
    return model.to(device).eval(), arch


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn segment evaluate",
               description="Evaluate a SAM checkpoint: single-point mIoU (model pick, oracle of 3, single output; by "
               "whole/part), box mIoU, optional automatic-mask recall (--auto) and zero-shot box prompts on real "
               "Something-Else frames (--real). Writes OUT/results.json, results.md, per_mask.jsonl.")
    p.add_argument("--checkpoint", required=True, help="SAM checkpoint (vislearn's or an official sam_vit_*.pth)")
    p.add_argument("--data", help="data folder from `vislearn segment generate-data`, or one of its splits")
    p.add_argument("--split", default="test", help="split subfolder of --data (default test)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--max-images", type=positive_int, help="evaluate the first N images only")
    p.add_argument("--auto", action="store_true", help="also the automatic mask generator's proposal recall (slower)")
    p.add_argument("--points-per-side", type=positive_int, default=32, help="automatic masks: grid (default 32)")
    p.add_argument("--pred-iou-thresh", type=float, default=0.88, help="automatic masks: predicted IoU filter "
                   "(official 0.88)")
    p.add_argument("--stability-thresh", type=float, default=0.95, help="automatic masks: stability filter "
                   "(official 0.95)")
    p.add_argument("--real", help="folder of the Something-Else sample (annotations.json and frames/ or videos)")
    p.add_argument("--real-frames", type=positive_int, default=2, help="frames per real video (default 2)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace files in --out that vislearn did not write")
    return p


def run(args: argparse.Namespace) -> int:
    if not args.data and not args.real:
        raise UserError("--data or --real: nothing to evaluate")
    for name in ("pred_iou_thresh", "stability_thresh"):
        v = getattr(args, name)
        if not 0.0 <= v <= 1.0:
            raise UserError(f"--{name.replace('_', '-')}: expected a number in [0, 1], got {v}")
    inputs = [args.checkpoint, args.data, args.real]
    claim_folder(args.out, OUTPUTS + ("contact_sheet.png",), kind="segment evaluate", overwrite=args.overwrite,
                 inputs=[i for i in inputs if i], lock=True)
    records = load_records(args.data, args.split, args.max_images) if args.data else []
    model, arch = load_model(args.checkpoint, args.device)
    torch.manual_seed(0)
    results: dict = {"checkpoint": str(args.checkpoint), "arch": arch.name, "data": str(args.data or ""),
                     "split": args.split, "images": 0, "masks": 0, "miou": _block([])}
    rows: list[dict] = []
    if records:
        opts = {"points_per_side": args.points_per_side, "pred_iou_thresh": args.pred_iou_thresh,
                "stability_score_thresh": args.stability_thresh}
        r = evaluate(model, records, auto=args.auto, auto_options=opts, progress=True)
        rows = r.pop("per_mask")
        r.pop("per_image")
        results.update(r)
        if args.auto:
            results["proposals"]["options"] = opts
    if args.real:
        from .realframes import evaluate_real

        results["real"] = evaluate_real(model, args.real, Path(args.out) / "contact_sheet.png",
                                        frames_per_video=args.real_frames)
    out = Path(args.out)
    write_jsonl(out / "per_mask.jsonl", rows)
    write_json(out / "results.json", results, indent=1)
    write_text(out / "results.md", results_table(results))
    print(results_table(results), end="")
    return 0


main = command(build_parser, run)
