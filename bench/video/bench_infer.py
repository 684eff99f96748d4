"""CPU latency of `vislearn video infer` on one 4 s SSv2-size video, per stage.

The video: the 48 real frames (427x240, 12 fps = 4 s) of sample video 2 in ../shared/fixtures, encoded
to VP9 .webm as SSv2 ships them; its real Something-Else boxes are the given boxes.
Rows (each the median of --reps calls of `actions.infer.infer_video`, after one warm-up call; the
models are loaded once, as in a batch run):
  bare decode                  baseline of the same run: open the .webm and decode all 48 frames
  STIN+OIE+NL, given boxes     C=256, T=8, N=4, 174 classes (the official size)
  + scene r3d_18 8x112         feature fusion with the CPU-sized scene stream (8 frames, 112 px)
  + scene I3D R50 16x224       feature fusion with the paper's scene stream (16 frames stride 2, 224 px)
  detector + tracker + STIN    the default detector (FCOS on MobileNetV2, frames at their own 240 px)
                               on all 48 frames, the tracker and identities, then STIN+OIE+NL; the
                               video is decoded once for the detector and the model
  STIN + overlay (--render)    the first row plus drawing and H.264-encoding the overlay and sheet
Weights are untrained unless --stin/--fusion/--detector name checkpoints: latency does not depend on
them (the detector's class head is set so that it reports boxes, so the tracker has work to do).

  python bench/bench_infer.py [--threads 2] [--reps 5] [--skip-i3d]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av  # noqa: F401  load PyAV's FFmpeg before decord (its bundled libvpx breaks PyAV's VP9 encoder)
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT.parent / "shared" / "fixtures" / "something_else_sample"

from vislearn.common.checkpoint import save_checkpoint  # noqa: E402
from vislearn.video.actions.config import TrainConfig, to_dict  # noqa: E402
from vislearn.video.actions.infer import STAGES, build_parser, infer_video, load_session  # noqa: E402
from vislearn.video.actions.models import create_model  # noqa: E402
from vislearn.common.tables import format_table  # noqa: E402
from vislearn.common.video import open_video  # noqa: E402
from vislearn.video.data.video_writer import write_video  # noqa: E402
from vislearn.common.cli import Parser, run_main  # noqa: E402

NUM_CLASSES = 174


def save_model(path: Path, model_name: str, model_args: dict, **cfg) -> Path:
    """An untrained checkpoint in the layout actions.train writes (what infer reads)."""
    config = TrainConfig(model=model_name, model_args=model_args, **cfg)
    model = create_model(model_name, NUM_CLASSES, **model_args)
    save_checkpoint({"model": model.state_dict(), "model_name": model_name, "model_args": model_args,
                     "class_names": [f"class {i}" for i in range(NUM_CLASSES)], "config": to_dict(config)}, path)
    return path


def save_detector_ckpt(path: Path) -> Path:
    from vislearn.video.tracking.detector import DEFAULT_ARCH, build_detector, default_spec, save_detector

    torch.manual_seed(0)
    spec = default_spec(DEFAULT_ARCH, min_size=240, max_size=427)  # the default detector, frames at their own size
    det = build_detector(spec)
    with torch.no_grad():  # untrained: make the head report hand and object boxes so the tracker works
        det.head.classification_head.cls_logits.bias.copy_(torch.tensor([-6.0, 1.0, 3.0]))
    save_detector(path, det, spec)
    return path


def bare_decode(path: Path) -> float:
    t = time.perf_counter()
    with open_video(path) as reader:
        frames = reader.read_all()
    assert len(frames) == 48
    return time.perf_counter() - t


def run_row(argv: list[str], video: Path, reps: int) -> tuple[dict, float]:
    args = build_parser().parse_args(argv)
    t = time.perf_counter()
    session = load_session(args)
    load = time.perf_counter() - t
    runs = []
    for _ in range(reps + 1):
        res = infer_video(session, "2", video)
        if not res["ok"]:
            raise SystemExit(f"inference failed: {res['error']}")
        runs.append(res["timings"])
    runs = runs[1:]  # the first call warms caches (imports, allocator, decoder)
    keys = [*STAGES, "render", "total"]
    med = {k: statistics.median(r[k] for r in runs) if runs[0].get(k) is not None else None for k in keys}
    return med, load


def main() -> int:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--skip-i3d", action="store_true", help="leave out the ResNet-50 I3D row (slowest)")
    p.add_argument("--stin", help="a trained STIN checkpoint to use instead of an untrained one")
    p.add_argument("--fusion", help="a trained fusion checkpoint for the scene row")
    p.add_argument("--detector", help="a trained detector checkpoint")
    args = p.parse_args()
    if not (SAMPLE / "frames" / "2").is_dir():
        raise SystemExit(f"sample frames not found at {SAMPLE}")
    torch.set_num_threads(args.threads)
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        frames = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in sorted((SAMPLE / "frames" / "2").glob("*.jpg"))])
        video = tmp / "2.webm"
        write_video(video, frames, fps=12)
        boxes = str(SAMPLE / "annotations.json")
        stin = args.stin or str(save_model(tmp / "stin.pt", "stin_oie_nl", {"feature_dim": 256}))
        r3d = args.fusion or str(save_model(
            tmp / "fusion_r3d.pt", "fusion", {"scene": "r3d_18", "stin": "stin_oie_nl", "stin_kwargs": {"feature_dim": 256}},
            num_rgb_frames=8, input_size=112))
        det = args.detector or str(save_detector_ckpt(tmp / "det.pt"))
        common = [str(video), "--threads", str(args.threads), "--device", "cpu", "--quiet"]
        rows_spec = [
            ("STIN+OIE+NL, given boxes", ["--checkpoint", stin, "--boxes", boxes]),
            ("+ scene r3d_18 8x112 (fusion), given boxes", ["--checkpoint", r3d, "--boxes", boxes]),
        ]
        if not args.skip_i3d:
            i3d = str(save_model(tmp / "fusion_i3d.pt", "fusion",
                                 {"scene": "i3d_r50", "stin": "stin_oie_nl", "stin_kwargs": {"feature_dim": 256}},
                                 num_rgb_frames=16, rgb_sampler="strided", input_size=224, crop="multiscale"))
            rows_spec.append(("+ scene I3D R50 16x224 (fusion), given boxes", ["--checkpoint", i3d, "--boxes", boxes]))
        rows_spec += [
            ("detector (MobileNetV2 FCOS, 240 px) + tracker + STIN+OIE+NL", ["--checkpoint", stin, "--detector", det]),
            ("STIN+OIE+NL + overlay (--render)", ["--checkpoint", stin, "--boxes", boxes, "--render", str(tmp / "r")]),
        ]
        bare_decode(video)
        base = statistics.median(bare_decode(video) for _ in range(args.reps))
        fmt = (lambda v: "-" if v is None else f"{v:.3f}")
        rows = [["bare decode of all 48 frames (baseline)", "-", fmt(base), "-", "-", "-", "-", fmt(base), "1.0"]]
        for name, extra in rows_spec:
            med, load = run_row(common + extra, video, args.reps if "detector" not in name else max(2, args.reps // 2))
            rows.append([name, fmt(load), *(fmt(med[k]) for k in (*STAGES, "render", "total")),
                         f"{med['total'] / base:.1f}"])
            print(f"done: {name}", file=sys.stderr, flush=True)
    print(f"vislearn.video.actions.infer on a 4 s 427x240 VP9 video (48 frames at 12 fps), CPU, {args.threads} torch thread(s); "
          f"seconds, median of {args.reps} calls (detector row: {max(2, args.reps // 2)}) after a warm-up; models loaded once")
    print(format_table(rows, ["configuration", "load (once)", "decode", "detect", "track", "model", "render",
                              "total", "x bare decode"]))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
