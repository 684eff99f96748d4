"""`vislearn segment predict`: masks of images for point / box prompts, or all of an image's masks (--auto).

For each IMAGE, into `--out/<stem>/`: `mask_<k>.png` (0 outside, 255 inside), `masks.json` (the image, the
prompts, and SA-1B annotations: COCO RLE, box, area, predicted IoU, stability score) and `overlay.png` (masks,
points and box drawn over the image). One prompt applies to every image: points `x,y[,label]` (label 1
foreground, the default; 0 background) and/or one box `x1,y1,x2,y2`, in the image's pixels. Without
--multimask one mask per image (the usual choice with several points or a box); with it three (a single click
is ambiguous: part, object, group), best first in `masks.json`'s "best". --auto runs the automatic mask
generator with the official defaults (`vislearn segment auto` offers its options and resumes).

Every input is checked before the model runs: a prompt outside an image, an image that does not decode, a
file that is not a SAM checkpoint are one line and exit code 2.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from vislearn.common.cli import Parser, command
from vislearn.common.errors import UserError
from vislearn.common.files import input_file
from vislearn.common.jsonio import write_json
from vislearn.common.outputs import claim_folder, ours

KIND = "segment predict"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".gif")


# ----------------------------------------------------------------------------- inputs shared with `auto`
def probe_image(path: Path) -> tuple[int, int]:
    """(h, w) of an image file from its header; a file that is not an image is a one-line UserError."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise UserError(f"{path}: not a readable image ({type(e).__name__})") from None
    return h, w


def read_rgb(path: Path) -> np.ndarray:
    """The image as uint8 HxWx3 RGB; one line when it does not decode (damaged, truncated)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise UserError(f"{path}: not a readable image ({type(e).__name__}: {e})") from None


def unique_stems(paths: list[Path]) -> list[str]:
    """Each image's output name (its file stem); two images with one stem are refused (their outputs collide)."""
    seen: dict[str, Path] = {}
    for p in paths:
        if p.stem in seen:
            raise UserError(f"{p}: has the same name as {seen[p.stem]} (outputs are named by the file's stem); "
                            "rename one or run them apart")
        seen[p.stem] = p
    return list(seen)


def load_model(path: str):
    """The SAM of a checkpoint file (ours or an official .pth), in eval mode, and its size."""
    from vislearn.segment.model.build import load_sam

    input_file(path, "checkpoint", "a SAM checkpoint file")
    return load_sam(path)


# ----------------------------------------------------------------------------- prompts
def parse_point(text: str) -> tuple[float, float, int]:
    parts = text.split(",")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        x, y = float(parts[0]), float(parts[1])
        label = int(parts[2]) if len(parts) == 3 else 1
    except ValueError:
        raise UserError(f"--points: {text!r} is not x,y or x,y,label (label 1 foreground, 0 background)") from None
    if not (np.isfinite(x) and np.isfinite(y)):
        raise UserError(f"--points: {text!r}: coordinates must be finite numbers")
    if label not in (0, 1):
        raise UserError(f"--points: {text!r}: label {label} is not 1 (foreground) or 0 (background)")
    return x, y, label


def parse_box(text: str) -> list[float]:
    try:
        box = [float(v) for v in text.split(",")]
        if len(box) != 4 or not all(np.isfinite(box)):
            raise ValueError
    except ValueError:
        raise UserError(f"--box: {text!r} is not x1,y1,x2,y2") from None
    if box[2] < box[0] or box[3] < box[1]:
        raise UserError(f"--box: {text!r}: x2 < x1 or y2 < y1 (expected x1,y1,x2,y2)")
    return box


def check_prompt_fits(path: Path, size: tuple[int, int], points, box) -> None:
    """The prompt lies inside the image of `size` (h, w), else one line naming the image."""
    from .predictor import check_box, check_points

    try:
        if points is not None:
            check_points(points[:, :2], points[:, 2], size)
        if box is not None:
            check_box(box, size)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None


# ----------------------------------------------------------------------------- outputs
def annotation(mask: np.ndarray, k: int, iou: float, stability: float, points: list) -> dict:
    """One SA-1B annotation of a prompted mask (its crop box: the whole image)."""
    from .masks import box_xyxy_to_xywh, mask_to_box_xyxy, rle_encode

    h, w = mask.shape
    return {"id": k, "segmentation": rle_encode(mask), "bbox": [int(v) for v in box_xyxy_to_xywh(mask_to_box_xyxy(mask))],
            "area": int(mask.sum()), "predicted_iou": float(iou), "stability_score": float(stability),
            "point_coords": points, "crop_box": [0, 0, w, h]}


def remove_stale_masks(folder: Path, keep: int) -> None:
    """`mask_<k>.png` for k >= keep left by an earlier run of ours (with more masks); a user's file stays."""
    if not folder.is_dir():
        return
    for p in folder.glob("mask_*.png"):
        k = p.stem[len("mask_"):]
        if k.isdigit() and int(k) >= keep and ours(p):
            p.unlink()


def write_outputs(folder: Path, image: np.ndarray, masks: list[np.ndarray], record: dict, points=None, box=None) -> None:
    from .overlay import draw_overlay, save_mask_png, save_png

    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_masks(folder, len(masks))
    for k, m in enumerate(masks):
        save_mask_png(folder / f"mask_{k}.png", m)
    labels = None if points is None else points[:, 2]
    save_png(folder / "overlay.png", draw_overlay(image, masks, None if points is None else points[:, :2], labels,
                                                  None if box is None else [box]))
    write_json(folder / "masks.json", record, indent=1)


def prompted_masks(predictor, image: np.ndarray, points, box, multimask: bool):
    """(masks [C, H, W] bool, predicted IoUs [C], stability scores [C]) for one prompt."""
    import torch

    from .automatic import stability_score

    predictor.set_image(image)
    logits, iou, _ = predictor.predict(
        point_coords=None if points is None else points[:, :2], point_labels=None if points is None else points[:, 2],
        box=None if box is None else np.asarray(box), multimask_output=multimask, return_logits=True)
    thr = predictor.model.mask_threshold
    stab = stability_score(torch.as_tensor(logits), thr, 1.0).nan_to_num(0.0).numpy()
    return logits > thr, iou, stab


# ----------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn segment predict",
               description="Masks of images for point / box prompts (or all masks, --auto): per image "
                           "OUT/<stem>/mask_<k>.png (0/255), masks.json (SA-1B annotations, the prompts, predicted "
                           "IoUs) and overlay.png.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    p.add_argument("--checkpoint", required=True, help="a SAM checkpoint: ours (vislearn segment train) or an "
                   "official sam_vit_*.pth")
    p.add_argument("--points", nargs="+", metavar="X,Y[,LABEL]",
                   help="point prompts in image pixels; LABEL 1 foreground (default) or 0 background")
    p.add_argument("--box", metavar="X1,Y1,X2,Y2", help="a box prompt in image pixels (with or without --points)")
    p.add_argument("--auto", action="store_true", help="no prompt: all masks, by the automatic mask generator "
                   "(official defaults; `vislearn segment auto` has its options)")
    p.add_argument("--multimask", action="store_true", help="three masks per prompt (for an ambiguous single click) "
                   "instead of one")
    p.add_argument("--out", required=True, help="output folder (one subfolder per image)")
    p.add_argument("--overwrite", action="store_true", help="replace outputs in --out that vislearn did not write")
    return p


def run(args: argparse.Namespace) -> int:
    import torch

    if args.auto and (args.points or args.box):
        raise UserError("--auto: finds every mask without prompts; leave out --points and --box")
    if not (args.auto or args.points or args.box):
        raise UserError("no prompt: give --points, --box or --auto (see --help)")
    points = np.array([parse_point(t) for t in args.points], dtype=float) if args.points else None
    box = parse_box(args.box) if args.box else None
    paths = [input_file(p, "image", "an image file") for p in args.images]
    stems = unique_stems(paths)
    sizes = [probe_image(p) for p in paths]
    for p, size in zip(paths, sizes):
        check_prompt_fits(p, size, points, box)
    out = Path(args.out)
    names = [f"{s}/{n}" for s in stems for n in ("masks.json", "overlay.png")]
    if not args.auto:
        names += [f"{s}/mask_{k}.png" for s in stems for k in range(3 if args.multimask else 1)]
    claim_folder(out, names, kind=KIND, lock=True, overwrite=args.overwrite, flag="--out",
                 inputs=[*paths, args.checkpoint])
    model, arch = load_model(args.checkpoint)
    if args.auto:
        from .automatic import AutomaticMaskGenerator

        generator = AutomaticMaskGenerator(model)
    else:
        from .predictor import SamPredictor

        predictor = SamPredictor(model)
    from tqdm import tqdm

    with torch.inference_mode():
        for path, stem in tqdm(list(zip(paths, stems)), desc="images", unit="image", disable=None, leave=False):
            image = read_rgb(path)
            h, w = image.shape[:2]
            record = {"image": {"file_name": path.name, "height": h, "width": w},
                      "checkpoint": os.fspath(args.checkpoint), "arch": arch.name}
            if args.auto:
                anns = generator.generate(image)
                masks = [np.asarray(_decode(a["segmentation"])) for a in anns]
                record["prompts"] = {"auto": True}
                drawn_points, drawn_box = None, None
            else:
                check_prompt_fits(path, (h, w), points, box)  # the decoded size (EXIF-free formats agree)
                masks, iou, stab = prompted_masks(predictor, image, points, box, args.multimask)
                pts = [] if points is None else points[:, :2].tolist()
                anns = [annotation(m, k, iou[k], stab[k], pts) for k, m in enumerate(masks)]
                record["prompts"] = {"points": pts, "point_labels": [] if points is None else points[:, 2].astype(int).tolist(),
                                     "box": box, "multimask": bool(args.multimask)}
                record["best"] = int(np.argmax(iou))
                drawn_points, drawn_box = points, box
            for k, a in enumerate(anns):
                a["file"] = f"mask_{k}.png"
            record["predicted_ious"] = [a["predicted_iou"] for a in anns]
            record["annotations"] = anns
            write_outputs(out / stem, image, list(masks), record, drawn_points, drawn_box)
            print(f"{path}: {len(anns)} mask(s) -> {out / stem}")
    return 0


def _decode(seg: dict) -> np.ndarray:
    from .masks import rle_decode

    return rle_decode(seg)


main = command(build_parser, run)
