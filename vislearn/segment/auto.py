"""`vislearn segment auto`: all masks of images (SAM's automatic mask generator), in SA-1B's format.

Inputs are image files and folders of images (not recursive). For each image `--out` gets `sa_<stem>.json`
(`{"image": {image_id, file_name, height, width}, "annotations": [...]}`, SA-1B's layout: COCO RLE masks,
XYWH boxes, area, predicted IoU, stability score, the prompt point and the crop) and `sa_<stem>_overlay.png`.
The generator's options and their defaults are the official ones (see `vislearn.segment.automatic`).

A killed run resumes: images whose JSON is already there (written by this command, with the same options and
checkpoint, kept in `auto.json`) are skipped. Other options need another --out, or --overwrite to redo all.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

from vislearn.common.cli import Parser, command, positive_int
from vislearn.common.errors import UserError
from vislearn.common.files import input_file
from vislearn.common.jsonio import read_json, write_json
from vislearn.common.outputs import claim_folder, ours

from .predict import IMAGE_SUFFIXES, load_model, probe_image, read_rgb, unique_stems

KIND = "segment auto"
CONFIG = "auto.json"


@dataclasses.dataclass(frozen=True)
class Options:
    """The generator's options (official defaults); the names are `AutomaticMaskGenerator`'s."""

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    min_mask_region_area: int = 0


HELP = {
    "points_per_side": "grid points per image side (points_per_side^2 prompts per crop)",
    "points_per_batch": "prompts run at once (memory vs. speed; the masks do not change)",
    "pred_iou_thresh": "keep masks whose predicted IoU is above this",
    "stability_score_thresh": "keep masks whose stability score (IoU of the masks at +-offset) is at least this",
    "stability_score_offset": "logit offset of the stability score",
    "box_nms_thresh": "box IoU above which a mask with lower predicted IoU is dropped (within a crop)",
    "crop_n_layers": "crop layers: layer i adds (2^i)^2 overlapping crops run again at full resolution",
    "crop_nms_thresh": "box IoU for the NMS across crops (the mask of the smaller crop wins)",
    "crop_overlap_ratio": "overlap of neighbouring crops, as a fraction of the image's short side",
    "crop_n_points_downscale_factor": "points per side in crop layer i: points_per_side / factor^i",
    "min_mask_region_area": "fill holes and drop islands smaller than this many pixels (0: off)",
}


def image_files(inputs: list[str]) -> list[Path]:
    """The images named, folders expanded to their image files (sorted); one line for a missing input or a
    folder without images."""
    files = []
    for text in inputs:
        p = Path(text)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file()
                           and not q.name.startswith("."))
            if not found:
                raise UserError(f"{p}: no images in this folder ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        else:
            files.append(input_file(p, "image", "an image file or a folder of images"))
    return files


def checkpoint_id(path: str) -> dict:
    st = os.stat(path)
    return {"path": os.path.realpath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def check_resume(out: Path, config: dict, overwrite: bool) -> None:
    """An earlier run's `auto.json` in --out must match (same options and checkpoint), or --overwrite."""
    path = out / CONFIG
    if overwrite or not path.is_file() or not ours(path):
        return
    old = read_json(path)
    if old != config:
        diff = [k for k in config["options"] if old.get("options", {}).get(k) != config["options"][k]]
        what = f"options {', '.join(diff)}" if diff else "checkpoint"
        raise UserError(f"{out}: holds masks made with other {what} ({path}); choose another --out, or pass "
                        "--overwrite to redo every image")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn segment auto",
               description="All masks of images (point grid, IoU and stability filters, NMS within and across "
                           "crops) as SA-1B JSON, sa_<stem>.json, plus an overlay per image. Resumes: images "
                           "already done are skipped.")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER", help="image files and folders of images")
    p.add_argument("--checkpoint", required=True, help="a SAM checkpoint: ours or an official sam_vit_*.pth")
    p.add_argument("--out", required=True, help="output folder")
    for f in dataclasses.fields(Options):
        kind = positive_int if f.type in (int, "int") and f.name != "crop_n_layers" and f.name != "min_mask_region_area" \
            else (int if f.type in (int, "int") else float)
        p.add_argument("--" + f.name.replace("_", "-"), type=kind, default=f.default,
                       help=f"{HELP[f.name]} (default {f.default:.4g})")
    p.add_argument("--overwrite", action="store_true", help="redo every image; replace files vislearn did not write")
    return p


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from .automatic import AutomaticMaskGenerator
    from .overlay import draw_overlay, save_png
    from .masks import rle_decode

    opts = Options(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Options)})
    if opts.crop_n_layers < 0 or opts.min_mask_region_area < 0:
        raise UserError("--crop-n-layers and --min-mask-region-area must be at least 0")
    paths = image_files(args.inputs)
    stems = unique_stems(paths)
    for p in paths:
        probe_image(p)
    out = Path(args.out)
    names = [CONFIG] + [n for s in stems for n in (f"sa_{s}.json", f"sa_{s}_overlay.png")]
    input_file(args.checkpoint, "checkpoint", "a SAM checkpoint file")
    claim_folder(out, names, kind=KIND, lock=True, overwrite=args.overwrite, flag="--out",
                 inputs=[*paths, args.checkpoint])
    config = {"checkpoint": checkpoint_id(args.checkpoint), "options": dataclasses.asdict(opts)}
    check_resume(out, config, args.overwrite)
    todo = [(i, p, s) for i, (p, s) in enumerate(zip(paths, stems))
            if args.overwrite or not (ours(out / f"sa_{s}.json") and (out / f"sa_{s}_overlay.png").is_file())]
    if len(todo) < len(paths):
        print(f"{len(paths) - len(todo)} of {len(paths)} images already done in {out}: skipped")
    if not todo:
        write_json(out / CONFIG, config, indent=1)
        return 0
    model, arch = load_model(args.checkpoint)
    generator = AutomaticMaskGenerator(model, **dataclasses.asdict(opts))
    write_json(out / CONFIG, config, indent=1)
    with torch.inference_mode():
        for i, path, stem in tqdm(todo, desc="images", unit="image", disable=None, leave=False):
            image = read_rgb(path)
            h, w = image.shape[:2]
            t0 = time.perf_counter()
            anns = generator.generate(image)
            seconds = time.perf_counter() - t0
            masks = [rle_decode(a["segmentation"]) for a in anns]
            save_png(out / f"sa_{stem}_overlay.png", draw_overlay(image, masks))
            write_json(out / f"sa_{stem}.json", {"image": {"image_id": i, "file_name": path.name, "height": h,
                                                           "width": w}, "annotations": anns})
            print(f"{path}: {len(anns)} masks in {seconds:.1f} s -> {out / f'sa_{stem}.json'}")
    return 0


main = command(build_parser, run)
