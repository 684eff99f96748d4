"""The paper's detected-box setting on the synthetic benchmark (rows of `make table-full`).

The paper trains and tests its box models on boxes from a detector and tracker as well as on the
ground-truth boxes. Here, for one split:
1. the hand/object detector (`vislearn video tracking train-detector`, ImageNet MobileNetV2 + FCOS) trained on the
   frames of the split's training videos only, with the generator's exact boxes; its held-out AP on the split's
   validation videos (also with the generator's unannotated distractor objects ignored);
2. its detections on every video of the split (`detect`, two processes at once, merged with
   `datasets merge-boxes`);
3. out-of-fold detections of the training videos (`detector_folds`, 2 by default): the training list cut into
   video folds (`crossfit.fold_splits`), and a detector of the same recipe trained on the other folds detects each
   fold. They are what the track-context model is fitted on: the detector is surer of the frames it trained
   on, and a rescoring fitted on those learns to trust its scores and tracks more than new videos allow (held-out
   object AP@0.5 0.767 fitted in-sample, 0.814 out of fold, seed 2027; docs/video.md);
4. the track-context rescoring (`fit-context`, `vislearn.video.tracking.context`) fitted on the training videos'
   detections, and the held-out AP of the stored detections with and without it (`evaluate-detections`);
5. tracks and identities from the rescored detections of the detector of every training video (`track
   --context`), one Something-Else box JSON, and their MOT figures against the ground truth of the validation
   videos and, for comparison, of the training ones, all named by a digest of the tracking defaults that made
   them (`tracking_defaults`, written beside): a version with other defaults tracks into new files and replaces
   none, and a box model trained on older tracks is refused by name. The box model's training tracks stay the
   ones of the detector that trained on them: trained on out-of-fold tracks, as noisy as the validation ones, STIN+OIE+NL
   came out lower (38.5 ± 3.0 against 41.0 ± 1.8, 10 seeds, seed 2027).
The box model then trains and is evaluated on the tracked boxes exactly as on the ground-truth ones (`boxes=` of
its config).

Every step is the user's command, resumable, and skipped when its output exists.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from vislearn.common.jsonio import read_json, write_json

# The detector recipe (README, "Tracked boxes"): 12 minutes on the 2 CPU cores at the demo's 128x96
# (torch on 2 threads, the decoding in 1 worker process); every backbone stage trains
DETECTOR_OPTIONS = ["--epochs", "30", "--frames-per-video", "2", "--batch-size", "8", "--eval-frames-per-video", "8",
                    "--eval-every", "0", "--lr", "0.02", "--trainable-layers", "6", "--warmup-iters", "200",
                    "--threads", "2", "--workers", "1"]
SHARDS = 2  # detect processes at once, one torch thread each (the demo's 2 cores)
DETECTOR_FOLDS = 2  # out-of-fold detectors for the training videos (0: the one detector detects every video)
FOLD_SEED = 0  # the detector folds are the same for every box-model seed


def detect_in_shards(videos: list[Path], detector: Path, detections: Path, shards: int, extra: list[str]) -> None:
    """`detect` over N slices of the videos in N processes at once (each part kept until all are done, so a
    killed run redoes only the missing parts), then `datasets merge-boxes` of the parts."""
    import subprocess
    import sys

    from vislearn.video.data.__main__ import main as datasets

    shards = max(1, min(shards, len(videos)))  # no empty slice (`detect` needs a video)
    parts = [detections.with_name(f"{detections.stem}.part{k}of{shards}.json") for k in range(shards)]
    procs = [subprocess.Popen([sys.executable, "-m", "vislearn.video.tracking", "detect", *map(str, videos[k::shards]),
                               "--detector", str(detector), "--out", str(part), "--batch-size", "8", "--threads", "1",
                               *extra])
             for k, part in enumerate(parts) if not part.exists()]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(max(codes))
    code = datasets(["merge-boxes", *map(str, parts), "--out", str(detections)])
    if code:
        raise SystemExit(code)


def tracking_defaults() -> dict:
    """The tracker's and the identity rule's settings the front end tracks with (their defaults), as JSON."""
    from dataclasses import asdict

    from vislearn.video.tracking.identities import IdentityConfig
    from vislearn.video.tracking.tracker import TrackerConfig

    return json.loads(json.dumps({"tracker": asdict(TrackerConfig()), "identities": asdict(IdentityConfig())}))


def front_end(data: Path, out: Path, split: str, quiet: bool = True, detector_folds: int = DETECTOR_FOLDS) -> dict:
    """Detector, detections of every video of `data/splits/<split>`, the track-context model fitted on the
    training videos' detections (with `detector_folds`, those of detectors that did not train on them), tracks
    from the rescored detections, and their figures; returns {"tracks": path, "detector": held-out AP of the
    detector alone, "context": held-out AP of the stored detections with and without their context, "mot":
    figures on the validation videos, "mot_train": the same on the training videos, "detector_folds": K}."""
    from vislearn.common.video import list_videos
    from vislearn.video.data.synthetic.distractors import distractor_records
    from vislearn.video.tracking.__main__ import main as tracking
    from vislearn.video.tracking.track_split import split_video_ids

    def run(argv: list[str]) -> None:
        code = tracking(argv)
        if code:
            raise SystemExit(code)

    split_dir = data / "splits" / split
    folder = out / split / "front_end"
    folder.mkdir(parents=True, exist_ok=True)
    distractors = folder / "distractors.json"
    if not distractors.exists():
        write_json(distractors, distractor_records(data))
    common = ["--quiet"] if quiet else []

    def train_detector(split_folder: Path, detector: Path) -> None:
        if not (detector / "results.json").exists():
            resume = ["--resume"] if (detector / "last.pt").exists() else []
            run(["train-detector", "--boxes", str(data / "annotations.json"), "--videos", str(data / "videos"),
                 "--split", str(split_folder), "--out", str(detector), "--ignore-boxes", str(distractors),
                 *DETECTOR_OPTIONS, *resume, *common])

    detector = folder / "detector"
    train_detector(split_dir, detector)
    found = list_videos(data / "videos")
    detections = folder / "detections.json"
    if not detections.exists():
        detect_in_shards([found[v] for v in split_video_ids(split_dir) if v in found], detector, detections, SHARDS,
                         common)
    suffix, fit_on = "", detections
    if detector_folds:
        from .crossfit import fold_splits

        parts = []
        for fold_split in fold_splits(split_dir, folder / "detector_folds", detector_folds, FOLD_SEED, by="video"):
            fold_detector = fold_split.parent / "detector"
            train_detector(fold_split, fold_detector)
            part = fold_split.parent / "detections.json"
            if not part.exists():
                ids = split_video_ids(fold_split, ["validation"])  # the fold, in the training list's order
                detect_in_shards([found[v] for v in ids if v in found], fold_detector, part, SHARDS, common)
            parts.append(part)
        suffix, fit_on = "_crossfit", folder / "detections_out_of_fold.json"
        if not fit_on.exists():
            write_json(fit_on, out_of_fold_detections(detections, parts, split_video_ids(split_dir, ["validation"])))
    boxes = ["--boxes", str(data / "annotations.json"), "--split", str(split_dir)]
    context = folder / f"context{suffix}.json"
    if not context.exists():
        run(["fit-context", "--detections", str(fit_on), *boxes, "--out", str(context)])
    ap_file = folder / f"detections_ap{suffix}.json"
    if not ap_file.exists():
        write_json(ap_file, detections_ap_figures(detections, data, split_dir, distractors, context), indent=1)
    # named by the tracking defaults that make them: a version with other defaults tracks into a new file, so
    # nothing is replaced and a box model trained on the old tracks is refused by name (train.data_diff)
    settings = tracking_defaults()
    name = f"context{suffix}_{hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]}"
    tracks = folder / f"tracks_{name}.json"
    if not tracks.exists():
        run(["track", "--detections", str(detections), "--context", str(context), "--out", str(tracks)])
    if not (folder / f"tracks_{name}.settings.json").exists():
        write_json(folder / f"tracks_{name}.settings.json", settings, indent=1)
    mot = {}
    for side, mot_name in (("validation", f"mot_{name}.json"), ("train", f"mot_{name}_train.json")):
        mot_file = folder / mot_name
        if not mot_file.exists():
            from vislearn.video.data.box_store import open_boxes
            from vislearn.video.tracking.mot_eval import evaluate

            gt = open_boxes(data / "annotations.json")
            ids = [v for v in split_video_ids(split_dir, [side]) if v in gt]
            write_json(mot_file, evaluate(gt, open_boxes(tracks), videos=ids).overall, indent=1)
        mot[side] = read_json(mot_file)
    results = read_json(detector / "results.json")
    return {"tracks": tracks, "detector": results["final"], "context": read_json(ap_file), "mot": mot["validation"],
            "mot_train": mot["train"], "detector_folds": detector_folds}


def out_of_fold_detections(everything: Path, fold_parts: list[Path], keep: list[str]) -> dict:
    """The detections of `keep` (the validation videos) from `everything`, and every other video's from the fold
    part that holds it: one detections JSON in which no training video was detected by a detector trained on it.
    A video in two parts, or a kept one in a part, is a fold mix-up and stops here."""
    all_dets = read_json(everything)
    merged = {v: all_dets[v] for v in keep if v in all_dets}
    for part in fold_parts:
        for v, frames in read_json(part).items():
            if v in merged:
                raise ValueError(f"{part}: video {v} is also in another fold or on the validation side")
            merged[v] = frames
    return merged


def detections_ap_figures(detections: Path, data: Path, split_dir: Path, distractors: Path, context: Path) -> dict:
    """Held-out AP@0.5 of the stored detections as they are ("alone") and rescored with `context` ("context"),
    each plain and with the distractors ignored: {name: {"hand", "object", "object_ignoring"}}."""
    from vislearn.video.data.box_store import open_boxes
    from vislearn.video.tracking.context import detections_ap, load_rescorer
    from vislearn.video.tracking.detections import load_detections
    from vislearn.video.tracking.track_split import split_video_ids

    gt, ignore = open_boxes(data / "annotations.json"), open_boxes(distractors)
    ids = [v for v in split_video_ids(split_dir, ["validation"]) if v in gt]
    alone = load_detections(detections)
    model = load_rescorer(context)
    rescored = {v: model.rescore(alone[v]) for v in ids if v in alone}  # a missing one: detections_ap says so
    out = {}
    for name, dets in (("alone", alone), ("context", rescored)):
        ap = detections_ap(dets, gt, ids, ignore=ignore)
        out[name] = {"hand": ap["ap50"]["hand"], "object": ap["ap50"]["object"],
                     "object_ignoring": ap["ignoring"]["ap50"]["object"]}
    return out


def summary(fe: dict) -> str:
    """One paragraph under the table: what the tracked boxes are worth."""
    d, c, m = fe["detector"], fe["context"], fe["mot"]
    fit = (f"out-of-fold detections of the training videos ({fe['detector_folds']} detectors, each trained on the "
           f"other folds)" if fe["detector_folds"] else "the training videos' detections")
    return (f"Tracked boxes: detector (MobileNetV2 + FCOS, trained on the training videos) held-out AP@0.5 hand "
            f"{d['ap50_hand']:.3f}, object {d['ap50_object']:.3f} ({d.get('ap50_object_ignoring', float('nan')):.3f} "
            f"with the unannotated distractors ignored); object {c['context']['object']:.3f} "
            f"({c['context']['object_ignoring']:.3f}) with the track-context rescoring fitted on {fit}; "
            f"tracks of the rescored detections on the validation videos: MOTA "
            f"{100 * m['mota']:.1f}, IDF1 {100 * m['idf1']:.1f}, {m['id_switches']} ID switches, identities right "
            f"in {100 * m['identities_right']:.1f}% of videos (of the training videos, which the detector trained on "
            f"and the box model learns from, {100 * fe['mot_train']['identities_right']:.1f}%).")
