"""Zero-shot SAM on real video frames: Something-Else's hand and object boxes as box prompts.

The frames have boxes but no masks, so what can be measured is how well each mask fits the box it was asked for:
- **box IoU**: the IoU of the predicted mask's bounding box with the given box (a mask of the whole object inside a
  tight box scores near 1; a mask of a part, or one spilling onto the background, scores low);
- **inside**: the fraction of the mask's pixels inside the given box (spill-over shows as < 1);
- and a contact sheet (frames with the boxes and the masks drawn) to look at.

The data is read directly in the official Something-Else JSON (video id -> per-frame records `name`
"<id>/NNNN.jpg", `labels` [{`box2d` {x1, y1, x2, y2}, `category`, `standard_category` ("hand" or "0000"...)}]) and
frames are decoded with `vislearn.common.video` (a frame folder `<id>/NNNN.jpg` or a `<id>.webm`/`.mp4` at 12 fps;
annotation frame i is decoded frame i). The segment family does not use `vislearn.video` (families never import
each other). Frames named beyond the end of the video are skipped and counted (real data does not always line up).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vislearn.common.errors import UserError
from vislearn.common.jsonio import read_json
from vislearn.common.tables import format_table

_FRAME = re.compile(r"(\d+)\.(?:jpg|jpeg|png)$", re.IGNORECASE)


@dataclass
class RealFrame:
    video_id: str
    index: int  # 0-based frame of the video at 12 fps
    image: np.ndarray  # uint8 HxWx3 RGB
    boxes: np.ndarray  # [N, 4] x1, y1, x2, y2 (pixels, clipped to the image)
    kinds: list[str]  # "hand" or "object" per box
    categories: list[str]


def read_annotations(path: str | os.PathLike) -> dict[str, list[dict]]:
    """The Something-Else JSON: video id -> frame records, checked for the fields used here."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected Something-Else box annotations (video id -> list of frames)")
    for vid, frames in data.items():
        if not isinstance(frames, list) or not all(isinstance(f, dict) and "name" in f for f in frames):
            raise UserError(f"{path}: video {vid}: expected a list of frame records with 'name' and 'labels'")
    return data


def _box(label: dict, path, vid) -> list[float]:
    try:
        b = label["box2d"]
        return [float(b["x1"]), float(b["y1"]), float(b["x2"]), float(b["y2"])]
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{path}: video {vid}: a label without box2d {{x1, y1, x2, y2}}") from None


def video_root(root: Path) -> Path:
    """Where the videos are: `root/frames`, `root/videos`, or `root` itself."""
    for sub in ("frames", "videos"):
        if (root / sub).is_dir():
            return root / sub
    return root


def load_real_frames(root: str | os.PathLike, frames_per_video: int = 2, max_videos: int | None = None
                     ) -> tuple[list[RealFrame], dict]:
    """`frames_per_video` annotated frames per video (spread evenly over its annotated frames that have boxes),
    decoded, with their boxes. Returns the frames and counts of what was skipped."""
    from vislearn.common.video import find_video, open_video

    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: real-frames folder not found" if not root.exists()
                        else f"{root}: is a file, expected the Something-Else sample folder")
    ann_path = root / "annotations.json"
    if not ann_path.is_file():
        raise UserError(f"{ann_path}: Something-Else box annotations not found")
    data = read_annotations(ann_path)
    vroot = video_root(root)
    out, skipped = [], {"videos_missing": 0, "frames_past_end": 0}
    for vid in sorted(data, key=lambda v: (len(v), v))[:max_videos]:
        path = find_video(vroot, vid)
        if path is None:
            skipped["videos_missing"] += 1
            continue
        frames = [f for f in data[vid] if f.get("labels")]
        if not frames:
            continue
        picks = sorted({int(round(x)) for x in np.linspace(0, len(frames) - 1, min(frames_per_video, len(frames)))})
        with open_video(path) as reader:
            for k in picks:
                rec = frames[k]
                m = _FRAME.search(str(rec["name"]))
                if not m:
                    raise UserError(f"{ann_path}: video {vid}: frame name {rec['name']!r} is not <id>/NNNN.jpg")
                index = int(m.group(1)) - 1
                if index >= len(reader):
                    skipped["frames_past_end"] += 1
                    continue
                image = reader.get_frames([index])[0]
                h, w = image.shape[:2]
                boxes = np.array([_box(lb, ann_path, vid) for lb in rec["labels"]], dtype=np.float32).reshape(-1, 4)
                boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
                boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
                keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
                labels = [lb for lb, k2 in zip(rec["labels"], keep) if k2]
                kinds = ["hand" if str(lb.get("standard_category")) == "hand" else "object" for lb in labels]
                out.append(RealFrame(vid, index, image, boxes[keep], kinds, [str(lb.get("category")) for lb in labels]))
    return out, skipped


def box_tightness(mask: np.ndarray, box: np.ndarray) -> tuple[float, float | None]:
    """(IoU of the mask's bounding box with `box`, fraction of mask pixels inside `box`); boxes are continuous
    x1, y1, x2, y2 (a pixel (x, y) covers [x, x+1) x [y, y+1)). An empty mask: (0, None)."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return 0.0, None
    mb = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)
    b = np.asarray(box, dtype=np.float64)
    iw = max(0.0, min(mb[2], b[2]) - max(mb[0], b[0]))
    ih = max(0.0, min(mb[3], b[3]) - max(mb[1], b[1]))
    inter = iw * ih
    union = (mb[2] - mb[0]) * (mb[3] - mb[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    # pixel centres inside the box
    inside = ((xs + 0.5 >= b[0]) & (xs + 0.5 <= b[2]) & (ys + 0.5 >= b[1]) & (ys + 0.5 <= b[3])).mean()
    return float(inter / union) if union > 0 else 0.0, float(inside)


def _stats(values: list[float]) -> dict:
    v = np.asarray([x for x in values if x is not None], dtype=float)
    return {"n": int(v.size), "mean": float(v.mean()) if v.size else None,
            "median": float(np.median(v)) if v.size else None}


@torch.no_grad()
def evaluate_real(model, root: str | os.PathLike, sheet_path: str | os.PathLike | None = None,
                  frames_per_video: int = 2, max_videos: int | None = None, predictor=None) -> dict:
    """Box-prompt every hand/object box of the chosen frames (one embedding per frame, the boxes in one batch);
    box tightness overall and per kind, and the contact sheet at `sheet_path`."""
    from .predictor import SamPredictor

    frames, skipped = load_real_frames(root, frames_per_video, max_videos)
    predictor = predictor or SamPredictor(model)
    rows, panels = [], []
    for fr in frames:
        masks = np.zeros((0, *fr.image.shape[:2]), bool)
        if len(fr.boxes):
            predictor.set_image(fr.image)
            t = predictor.transform.apply_boxes(fr.boxes, predictor.original_size)
            t = torch.as_tensor(t, dtype=torch.float, device=predictor.device)
            m, iou, _ = predictor.predict_torch(None, None, boxes=t, multimask_output=False)
            masks = m[:, 0].cpu().numpy()
            predictor.reset_image()
        for i in range(len(fr.boxes)):
            box_iou, inside = box_tightness(masks[i], fr.boxes[i])
            rows.append({"video_id": fr.video_id, "frame": fr.index, "kind": fr.kinds[i],
                         "category": fr.categories[i], "box": fr.boxes[i].tolist(), "mask_area": int(masks[i].sum()),
                         "box_iou": box_iou, "inside": inside})
        panels.append((fr, masks))
    if sheet_path is not None and panels:
        from .contact_sheet import write_contact_sheet

        write_contact_sheet(sheet_path, [(fr.image, fr.boxes, m, f"{fr.video_id}/{fr.index + 1:04d}")
                                         for fr, m in panels])
    out = {"root": str(root), "frames": len(frames), "boxes": len(rows), "skipped": skipped,
           "empty_masks": sum(r["inside"] is None for r in rows),
           "box_iou": _stats([r["box_iou"] for r in rows]), "inside": _stats([r["inside"] for r in rows]),
           "by_kind": {k: {"box_iou": _stats([r["box_iou"] for r in rows if r["kind"] == k]),
                           "inside": _stats([r["inside"] for r in rows if r["kind"] == k])}
                       for k in ("hand", "object")},
           "contact_sheet": str(sheet_path) if sheet_path is not None and panels else None, "per_box": rows}
    return out


def real_table(real: dict) -> str:
    """Markdown lines for results.md."""
    fmt = lambda s: "-" if s["mean"] is None else f"{s['mean']:.3f} / {s['median']:.3f}"  # noqa: E731
    rows = [["all", real["box_iou"]["n"], fmt(real["box_iou"]), fmt(real["inside"])]]
    rows += [[k, v["box_iou"]["n"], fmt(v["box_iou"]), fmt(v["inside"])] for k, v in real["by_kind"].items()]
    return "\n".join([f"Real frames (Something-Else, {real['frames']} frames, {real['boxes']} boxes, "
                      f"{real['empty_masks']} empty masks; box prompts, no mask labels):", "",
                      format_table(rows, ["boxes", "n", "mask-box IoU (mean / median)",
                                          "mask inside box (mean / median)"])])
