"""CPU cost of the detector heads on the ImageNet MobileNetV2 (`tracking.detector.ARCHS`), per frame size.

For each architecture and frame size: detection frames/s (eval mode, batches of 8 frames of a real
synthetic video, boxes kept from score 0.05 as `tracking detect` keeps them) and the seconds of one
training step (8 frames with their boxes, forward + backward + SGD step, backbone as train-detector
sets it: pretrained, BatchNorm frozen, last 3 stages training; and FCOS with every stage training, the
`--trainable-layers 6` of the recipe in the README). Baseline of the same run: torchvision's
MobileNetV2 `features` alone on the same frames (eval). Rounds are interleaved (every model once per
round, --rounds rounds, the median kept) so that load from other processes hits all rows alike.

  python bench/bench_detector_heads.py [--threads 1] [--rounds 5] [--sizes 96x128 240x320]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av  # noqa: F401  load PyAV's FFmpeg before decord
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]

from vislearn.common.tables import format_table  # noqa: E402
from vislearn.video.data.annotations import AnnotationFile  # noqa: E402
from vislearn.common.video import open_video  # noqa: E402
from vislearn.video.tracking.detector import (ARCHS, box_targets, build_detector, default_spec, frames_to_tensors,  # noqa: E402
                               load_backbone_from_classifier)
from vislearn.common.cli import Parser, run_main  # noqa: E402

HEADS = [a for a in ARCHS if a.startswith("mobilenet_v2")] + ["mobilenet_v3"]


def frames_and_targets(width: int, height: int, tmp: Path):
    from vislearn.video.data.synthetic.generate import generate

    generate(tmp / f"d{width}", videos=1, seed=0, width=width, height=height)
    boxes = AnnotationFile.load(tmp / f"d{width}" / "annotations.json")
    vid = boxes.video_ids()[0]
    with open_video(tmp / f"d{width}" / "videos" / f"{vid}.webm") as r:
        frames = r.get_frames(np.arange(8) * 2)
    targets = []
    for f in np.arange(8) * 2:
        b, lab = box_targets(boxes.get(vid), int(f), width, height)
        targets.append({"boxes": torch.from_numpy(b).reshape(-1, 4), "labels": torch.from_numpy(lab + 1)})
    return frames_to_tensors(frames), targets


def main() -> None:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--sizes", nargs="+", default=["96x128", "240x320"], help="HxW frame sizes")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            h, w = (int(v) for v in size.split("x"))
            images, targets = frames_and_targets(w, h, Path(tmp))
            from torchvision.models import mobilenet_v2

            models = {"MobileNetV2 features (baseline)": mobilenet_v2(weights=None).features.eval()}
            variants = [(arch, arch, None) for arch in HEADS]
            variants.append((f"{HEADS[0]}, every stage training", HEADS[0], 6))  # train-detector --trainable-layers 6
            for name, arch, layers in variants:
                spec = default_spec(arch, min_size=h, max_size=w, frozen_bn=True, trainable_layers=layers)
                m = build_detector(spec)
                if arch.startswith("mobilenet_v2"):
                    load_backbone_from_classifier(m, "mobilenet_v2_imagenet", arch)
                models[name] = m
            detectors = {name for name, _, _ in variants}
            evals: dict[str, list[float]] = {k: [] for k in models}
            steps: dict[str, list[float]] = {k: [] for k in detectors}
            opts = {k: torch.optim.SGD([q for q in models[k].parameters() if q.requires_grad], lr=1e-4) for k in detectors}
            batch = torch.stack(images)
            for r in range(args.rounds + 1):  # round 0: warm-up
                for name, m in models.items():
                    m.eval()
                    with torch.no_grad():
                        t = time.perf_counter()
                        m(batch) if name not in detectors else m(images)
                        dt = time.perf_counter() - t
                    if r:
                        evals[name].append(dt)
                    if name in detectors:
                        m.train()
                        t = time.perf_counter()
                        loss = sum(m(images, targets).values())
                        opts[name].zero_grad()
                        loss.backward()
                        opts[name].step()
                        if r:
                            steps[name].append(time.perf_counter() - t)
            base = statistics.median(evals["MobileNetV2 features (baseline)"])
            for name in models:
                e = statistics.median(evals[name])
                params = sum(q.numel() for q in models[name].parameters()) / 1e6
                s = f"{statistics.median(steps[name]):.3f}" if name in steps else "-"
                rows.append([f"{w}x{h}", name, f"{params:.2f}M", f"{len(images) / e:.1f}", f"x{e / base:.2f}", s])
            print(f"{w}x{h} done", file=sys.stderr, flush=True)
    print(format_table(rows, ["frames", "architecture", "params", "detect frames/s", "time vs baseline",
                              "train step (8 frames) s"]))
    print(f"{args.threads} torch thread(s); median of {args.rounds} interleaved rounds; baseline: MobileNetV2 "
          f"features alone on the same 8 frames")


if __name__ == "__main__":
    sys.exit(run_main(main))
