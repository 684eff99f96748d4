"""`python -m tracking` / `se-tracking`: hand/object detection, tracking into Something-Else boxes,
and MOT evaluation.

  train-detector --boxes FILE_OR_STORE --videos DIR --out RUN    train the Faster R-CNN hand/object detector
  detect VIDEO... --detector CKPT --out DETS.json                per-frame detections with scores
  track --detections DETS.json --out TRACKS.json                 detections -> Something-Else tracks
  track VIDEO... --detector CKPT --out TRACKS.json               video -> detections -> tracks
  evaluate --gt GT.json --pred PRED.json [--json]                MOTA, IDF1, ID switches, precision, recall

VIDEO is a .webm/.mp4 file, a folder of 12-fps frames (0001.jpg ...), or a folder of videos.
Every output is an ordinary Something-Else box JSON, so the other tools read it unchanged.
Exit codes: 0 success, 2 bad input or usage (one line on stderr), 1 unexpected failure.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from common.cli import Parser, run_main
from common.errors import UserError
from common.files import output_file, refuse_input_overwrite
from datasets.video import expand_videos

IDENTITY_RULE = """identity rule: tracks with fewer than --min-detections detected frames are dropped; a track's
strength is the sum of its detection scores (length x confidence). The strongest hand track becomes
`hand`; weaker hand tracks that share no frame with it are merged in (one hand id per video, as in
Something-Else), others dropped. Object tracks, strongest first, continue an object identity when
they follow it in time (gap <= --stitch-gap frames, end boxes overlapping), else open a new one
while fewer than --max-objects exist (default 3: the models' 4 slots minus the hand), else are
dropped. Objects are numbered 0000, 0001, ... by decreasing strength."""


TRAIN_HELP = """Train the Faster R-CNN hand/object detector (classes: hand = standard_category "hand", object =
anything else) on Something-Else boxes and the videos (or frame folders) they belong to. Frames are
decoded at 12 fps; decoded frame i carries the boxes of annotation frame <id>/{i+1:04d}.jpg. Each
epoch samples --frames-per-video annotated frames of every training video; box AP is computed on
held-out videos (the --split validation list, else a seeded --val-fraction) after every epoch.
Weights only from local files (--backbone-weights, --init); nothing is downloaded.

Run folder (--out RUN):
  config.json    resolved options and detector spec
  last.pt        checkpoint after every epoch (atomic); --resume continues from it with the
                 run's own options (only --epochs, --workers, --device, --amp may change)
  best.pt        model with the best held-out mAP@0.5 (what `detect --detector RUN` loads)
  metrics.jsonl  one line per epoch: losses, lr, held-out AP per class
  results.json   final figures"""


DETECT_HELP = """Detect hands and objects on every 12-fps frame of each video (decoded frame i is annotation
frame <id>/{i+1:04d}.jpg). Output: a Something-Else box JSON whose labels have category "hand" or
"object", a `score`, and an empty standard_category (no track id yet); one record per decoded frame,
`labels: []` where nothing was found. The video id is the file name without extension (or the
frame folder's name)."""

TRACK_HELP = """Track hands and objects. Input: --detections DETS.json (from `detect`, or any Something-Else
box file: nouns count as objects), or VIDEO... with --detector (detect, then track). Output: a
Something-Else box JSON with ids hand, 0000, 0001, ... (category hand/object, a score per box), one
record per frame; a video without any detection gets empty records.
Bad detections (NaN or inverted box, unknown class, score outside [0, 1]) stop with a one-line error
naming the file, video, frame and label; zero-width/height boxes are ignored.

"""

EVALUATE_HELP = """MOTA, IDF1, ID switches, precision and recall, per video and overall (py-motmetrics). Both
files are Something-Else box JSON (or box stores). A predicted box matches a ground-truth box at
IoU >= --iou and of the same class (hand/object). Only annotated ground-truth frames are scored; a
video missing from the prediction counts as all misses. Overall figures are summed over videos:
MOTA = 1 - (FN + FP + IDSW) / GT, IDF1 = 2 IDTP / (2 IDTP + IDFP + IDFN)."""




def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {v}")
    return v


def _count(minimum: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {v}")
        return v
    return parse


def _add_tracker_options(p: argparse.ArgumentParser) -> None:
    from .identities import IdentityConfig
    from .tracker import TrackerConfig

    t, i = TrackerConfig(), IdentityConfig()
    g = p.add_argument_group("tracker (ByteTrack-style; defaults suit 12-fps SSv2 video)")
    g.add_argument("--high-score", type=_fraction, default=t.high_score, help=f"first-stage detections (default {t.high_score})")
    g.add_argument("--low-score", type=_fraction, default=t.low_score,
                   help=f"second-stage detections score in [low, high); lower ones are ignored (default {t.low_score})")
    g.add_argument("--new-track-score", type=_fraction, default=t.new_track_score,
                   help=f"score a detection needs to start a track (default {t.new_track_score})")
    g.add_argument("--match-iou", type=_fraction, default=t.match_iou, help=f"first-stage IoU gate (default {t.match_iou})")
    g.add_argument("--similarity", choices=("iou", "diou"), default=t.similarity,
                   help="association similarity: iou, or diou (IoU minus normalised centre distance: still "
                        "ranks boxes that stopped overlapping, e.g. fast hands; try it with --match-iou 0) "
                        "(default iou)")
    g.add_argument("--min-hits", type=_count(1), default=t.min_hits,
                   help=f"consecutive hits before a track is born (default {t.min_hits})")
    g.add_argument("--max-gap", type=_count(0), default=t.max_gap,
                   help=f"frames a lost track waits before it ends (default {t.max_gap} = 1 s)")
    g.add_argument("--fill-gaps", type=_count(0), default=t.fill_gaps,
                   help=f"interpolate a track over gaps up to this many frames, 0 = off (default {t.fill_gaps})")
    g.add_argument("--output-boxes", choices=("filtered", "detection"), default=t.output,
                   help="write Kalman-filtered boxes or the matched detection boxes (default filtered)")
    g = p.add_argument_group("identities (Something-Else ids)", IDENTITY_RULE)
    g.add_argument("--max-objects", type=_count(0), default=i.max_objects,
                   help=f"object identities kept per video (default {i.max_objects})")
    g.add_argument("--min-detections", type=_count(1), default=i.min_detections,
                   help=f"detected frames a track needs to be kept (default {i.min_detections})")
    g.add_argument("--stitch-gap", type=_count(0), default=i.stitch_gap,
                   help=f"largest gap (frames) over which two object tracks may be joined (default {i.stitch_gap})")
    g.add_argument("--raw", action="store_true",
                   help="write every track under its tracker id (h<id>/o<id>) instead of Something-Else ids "
                        "(for evaluating the tracker itself; the models expect the default)")


def _add_detector_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("detector")
    g.add_argument("--detector", metavar="CKPT", help="detector checkpoint (best.pt/last.pt) or its training run folder")
    g.add_argument("--batch-size", type=_count(1), default=4, help="frames per forward pass (default 4)")
    g.add_argument("--score-threshold", type=_fraction, default=0.05,
                   help="drop detections scoring below this (default 0.05: keep low ones for the tracker)")
    g.add_argument("--device", default="auto", help="auto (GPU if there is one), cpu, cuda, cuda:1 ... (default auto)")
    g.add_argument("--threads", type=_count(1), help="CPU threads for torch (default: torch's choice)")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m tracking", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    fmt = argparse.RawDescriptionHelpFormatter

    t = sub.add_parser("train-detector", help="train the hand/object detector on Something-Else boxes + videos",
                       description=TRAIN_HELP, formatter_class=fmt)
    t.add_argument("--boxes", required=True, help="Something-Else box JSON or box store (index-boxes)")
    t.add_argument("--videos", required=True, help="folder of <id>.webm/.mp4 videos or <id>/ frame folders")
    t.add_argument("--split", help="split folder whose validation list is held out (train.json + validation.json); "
                                   "default: a seeded --val-fraction of the videos")
    t.add_argument("--val-fraction", type=_fraction, default=0.2, help="held-out fraction without --split (default 0.2)")
    t.add_argument("--out", required=True, help="run folder (checkpoints, metrics.jsonl, results.json)")
    t.add_argument("--arch", default="mobilenet_v3", choices=("mobilenet_v3", "resnet50_v2"),
                   help="mobilenet_v3 = fasterrcnn_mobilenet_v3_large_fpn (CPU), resnet50_v2 = fasterrcnn_resnet50_fpn_v2 (GPU)")
    t.add_argument("--min-size", type=_count(32), help="shorter image side for the network (default 320 / 480)")
    t.add_argument("--max-size", type=_count(32), help="longer image side cap (default 640 / 864)")
    t.add_argument("--backbone-weights", metavar="FILE",
                   help="local ImageNet weights of the backbone (torchvision mobilenet_v3_large / resnet50 .pth)")
    t.add_argument("--init", metavar="FILE", help="local detector weights to start from (e.g. torchvision's COCO "
                                                  "fasterrcnn file for the same --arch; the class head is not loaded)")
    t.add_argument("--trainable-layers", type=_count(0), help="backbone stages to train (default: all from scratch, 3 when pretrained)")
    t.add_argument("--epochs", type=_count(1), help="epochs (default 12; with --resume: the run's own)")
    t.add_argument("--frames-per-video", type=_count(1), default=4, help="random annotated frames per video per epoch (default 4)")
    t.add_argument("--eval-frames-per-video", type=_count(1), default=8,
                   help="evenly spaced frames per held-out video for AP (default 8)")
    t.add_argument("--batch-size", type=_count(1), default=8, help="images per step (default 8)")
    t.add_argument("--lr", type=float, default=0.01, help="SGD learning rate, warm-up then cosine (default 0.01)")
    t.add_argument("--weight-decay", type=float, default=1e-4)
    t.add_argument("--warmup-iters", type=_count(0), default=100)
    t.add_argument("--workers", type=_count(0), default=0, help="data-loader worker processes (default 0)")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda, ... (default auto)")
    t.add_argument("--amp", action="store_true", help="mixed precision on a GPU")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--max-videos", type=_count(1), help="use at most this many training videos (quick runs)")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out from last.pt, with the options it was started with "
                        "(only --epochs, --workers, --device, --amp may change)")
    t.add_argument("--threads", type=_count(1), help="CPU threads for torch")
    t.add_argument("--quiet", action="store_true", help="no progress bars")

    d = sub.add_parser("detect", help="run the detector on videos -> per-frame detections (Something-Else layout + score)",
                       description=DETECT_HELP, formatter_class=fmt)
    d.add_argument("videos", nargs="+", metavar="VIDEO", help="video files, frame folders or folders of videos")
    d.add_argument("--out", required=True, help="detections JSON to write")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_detector_options(d)

    k = sub.add_parser("track", help="track detections into Something-Else box tracks (from DETS.json or end to end)",
                       description=TRACK_HELP + IDENTITY_RULE,
                       formatter_class=fmt)
    k.add_argument("videos", nargs="*", metavar="VIDEO", help="videos to detect on first (needs --detector)")
    k.add_argument("--detections", help="detections JSON (from `detect`, or any Something-Else box file)")
    k.add_argument("--out", required=True, help="tracks JSON to write")
    k.add_argument("--save-detections", metavar="FILE", help="end to end: also write the detections")
    k.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_detector_options(k)
    _add_tracker_options(k)

    e = sub.add_parser("evaluate", help="MOT metrics of predicted tracks against ground truth (py-motmetrics)",
                       description=EVALUATE_HELP, formatter_class=fmt)
    e.add_argument("--gt", required=True, help="ground-truth boxes")
    e.add_argument("--pred", required=True, help="predicted tracks")
    e.add_argument("--iou", type=_fraction, default=0.5, help="IoU needed for a match (default 0.5)")
    e.add_argument("--class-agnostic", action="store_true", help="let a hand match an object box")
    e.add_argument("--json", action="store_true",
                   help="per-video JSON lines, then the overall figures as one JSON object on the last line")
    return p


# ----------------------------------------------------------------------------------- helpers

def _progress_bar(total: int, desc: str, quiet: bool):
    if quiet:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, leave=False)


def _set_threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(n)


def _check_outputs(outputs: list, args) -> None:
    """Before any work: output files are file names, and none of them is an input."""
    outputs = [output_file(o, "--out") for o in outputs if o]
    inputs = [*(args.videos or []), getattr(args, "detections", None), args.detector]
    refuse_input_overwrite(outputs, inputs, "--out")


def run_detection(args, videos: dict[str, Path]) -> dict:
    from .detector import detect_video, load_detector
    from .train_detector import resolve_device

    if not args.detector:
        raise UserError("--detector CKPT is needed to detect on videos")
    _set_threads(args.threads)
    device = resolve_device(args.device)
    model, spec = load_detector(args.detector, device)
    out = {}
    bar = _progress_bar(None, "detecting", args.quiet)
    t0 = time.perf_counter()
    frames = 0
    for vid, path in videos.items():
        det = detect_video(model, path, device, vid, args.batch_size, args.score_threshold,
                           progress=bar.update if bar is not None else None)
        frames += det.num_frames
        out[vid] = det
    if bar is not None:
        bar.close()
    dt = time.perf_counter() - t0
    print(f"detected {sum(len(d) for d in out.values())} boxes on {frames} frames of {len(out)} video(s) "
          f"in {dt:.1f}s ({frames / max(dt, 1e-9):.1f} frames/s, {spec.arch} on {device})", file=sys.stderr)
    return out


def cmd_detect(args) -> int:
    from .detections import save_detections

    _check_outputs([args.out], args)
    dets = run_detection(args, expand_videos(args.videos))
    save_detections(args.out, dets)
    print(f"wrote {args.out}: {len(dets)} video(s), {sum(len(d) for d in dets.values())} detections")
    return 0


def cmd_track(args) -> int:
    from common.jsonio import write_json
    from .detections import load_detections, save_detections
    from .identities import IdentityConfig, assign_identities, identities_to_records, tracks_to_records
    from .tracker import TrackerConfig, track_video

    if bool(args.videos) == bool(args.detections):
        raise UserError("give either --detections DETS.json or VIDEO... with --detector (not both, not neither)")
    _check_outputs([args.out, args.save_detections], args)
    if args.detections:
        dets = load_detections(args.detections)
    else:
        dets = run_detection(args, expand_videos(args.videos))
        if args.save_detections:
            save_detections(args.save_detections, dets)
    cfg = TrackerConfig(high_score=args.high_score, low_score=min(args.low_score, args.high_score),
                        new_track_score=args.new_track_score, match_iou=args.match_iou, min_hits=args.min_hits,
                        max_gap=args.max_gap, fill_gaps=args.fill_gaps, output=args.output_boxes,
                        similarity=args.similarity)
    ident_cfg = IdentityConfig(max_objects=args.max_objects, min_detections=args.min_detections,
                               stitch_gap=args.stitch_gap)
    out: dict[str, list] = {}
    n_hand = n_obj = 0
    empty: list[str] = []
    t0 = time.perf_counter()
    for vid, det in dets.items():
        if len(det) == 0:
            empty.append(vid)
        tracks = track_video(det, cfg)
        if args.raw:
            out[vid] = tracks_to_records(vid, tracks, det.num_frames)
            continue
        idents = assign_identities(tracks, ident_cfg)
        n_hand += any(i.name == "hand" for i in idents)
        n_obj += sum(i.name != "hand" for i in idents)
        out[vid] = identities_to_records(vid, idents, det.num_frames)
    dt = time.perf_counter() - t0
    write_json(args.out, out)
    if empty:
        print(f"note: {len(empty)} video(s) without any detection (written with empty frames): "
              f"{', '.join(empty[:10])}", file=sys.stderr)
    frames = sum(d.num_frames for d in dets.values())
    print(f"wrote {args.out}: {len(out)} video(s), {frames} frames tracked in {dt:.2f}s"
          + ("" if args.raw else f"; hand in {n_hand}, {n_obj / max(1, len(out)):.2f} objects per video"))
    return 0


def cmd_evaluate(args) -> int:
    from datasets.annotations import open_boxes
    from .mot_eval import evaluate, format_table

    result = evaluate(open_boxes(args.gt), open_boxes(args.pred), iou_threshold=args.iou,
                      class_aware=not args.class_agnostic)
    if not result.per_video:
        raise UserError(f"{args.gt}: no ground-truth videos to evaluate")
    if args.json:
        clean = (lambda d: {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()})
        for vid, r in result.per_video.items():
            print(json.dumps({"video_id": vid, **clean(r)}))
        overall = clean(result.overall) | {"missing_videos": result.missing, "ignored_videos": result.extra}
        print(json.dumps(overall))
    else:
        print(format_table(result))
    return 0


COMMANDS = {"train-detector": None, "detect": cmd_detect, "track": cmd_track, "evaluate": cmd_evaluate}


def cmd_train(args) -> int:
    from .detector import TrainOptions
    from .train_detector import tqdm_progress, train

    _set_threads(args.threads)
    opts = TrainOptions(out=args.out, boxes=args.boxes, videos=args.videos, split=args.split,
                        val_fraction=args.val_fraction, arch=args.arch, min_size=args.min_size, max_size=args.max_size,
                        backbone_weights=args.backbone_weights, init=args.init, trainable_layers=args.trainable_layers,
                        epochs=args.epochs, frames_per_video=args.frames_per_video,
                        eval_frames_per_video=args.eval_frames_per_video, batch_size=args.batch_size, lr=args.lr,
                        weight_decay=args.weight_decay, warmup_iters=args.warmup_iters, workers=args.workers,
                        device=args.device, amp=args.amp, seed=args.seed, max_videos=args.max_videos)
    res = train(opts, resume=args.resume, progress=tqdm_progress(args.quiet))
    best = res["best_map50"]
    print(f"done: best held-out mAP@0.5 {best:.3f} at epoch {res['best_epoch']}; detector {res['checkpoint']}"
          if best is not None and best >= 0 else f"done: detector {res['checkpoint']} (no held-out AP)")
    return 0


COMMANDS["train-detector"] = cmd_train


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_main(lambda: COMMANDS[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
