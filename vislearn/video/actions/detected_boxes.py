"""The paper's detected-box setting on the synthetic benchmark (rows of `make table-full`).

The paper trains and tests its box models on boxes from a detector and tracker as well as on the
ground-truth boxes. Here, for one split:
1. the hand/object detector (`vislearn video tracking train-detector`, ImageNet MobileNetV2 + FCOS) trained on the
   frames of the split's training videos only, with the generator's exact boxes; its held-out AP on the split's
   validation videos (also with the generator's unannotated distractor objects ignored);
2. its detections on every video of the split (`detect`, two processes at once, merged with
   `datasets merge-boxes`);
3. the track-context rescoring (`fit-context`, `vislearn.video.tracking.context`) fitted on the training videos'
   detections, and the held-out AP of the stored detections with and without it (`evaluate-detections`);
4. tracks and identities from the rescored detections (`track --context`), one Something-Else box JSON, and
   their MOT figures against the ground truth of the validation videos.
The box model then trains and is evaluated on the tracked boxes exactly as on the ground-truth ones (`boxes=` of
its config).

Every step is the user's command, resumable, and skipped when its output exists.
"""
from __future__ import annotations

from pathlib import Path

from vislearn.common.jsonio import read_json, write_json

# The detector recipe (README, "Tracked boxes"): 12 minutes on the 2 CPU cores at the demo's 128x96
# (torch on 2 threads, the decoding in 1 worker process); every backbone stage trains
DETECTOR_OPTIONS = ["--epochs", "30", "--frames-per-video", "2", "--batch-size", "8", "--eval-frames-per-video", "8",
                    "--eval-every", "0", "--lr", "0.02", "--trainable-layers", "6", "--warmup-iters", "200",
                    "--threads", "2", "--workers", "1"]
SHARDS = 2  # detect processes at once, one torch thread each (the demo's 2 cores)


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


def front_end(data: Path, out: Path, split: str, quiet: bool = True) -> dict:
    """Detector, detections of every video of `data/splits/<split>`, the track-context model fitted on its training
    videos, tracks from the rescored detections, and their figures; returns {"tracks": path, "detector": held-out
    AP of the detector alone, "context": held-out AP of the stored detections with and without their context,
    "mot": figures on the validation videos}."""
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
    detector = folder / "detector"
    common = ["--quiet"] if quiet else []
    if not (detector / "results.json").exists():
        resume = ["--resume"] if (detector / "last.pt").exists() else []
        run(["train-detector", "--boxes", str(data / "annotations.json"), "--videos", str(data / "videos"),
             "--split", str(split_dir), "--out", str(detector), "--ignore-boxes", str(distractors),
             *DETECTOR_OPTIONS, *resume, *common])
    detections = folder / "detections.json"
    if not detections.exists():
        found = list_videos(data / "videos")
        detect_in_shards([found[v] for v in split_video_ids(split_dir) if v in found], detector, detections, SHARDS,
                         common)
    boxes = ["--boxes", str(data / "annotations.json"), "--split", str(split_dir)]
    context = folder / "context.json"
    if not context.exists():
        run(["fit-context", "--detections", str(detections), *boxes, "--out", str(context)])
    ap_file = folder / "detections_ap.json"
    if not ap_file.exists():
        write_json(ap_file, detections_ap_figures(detections, data, split_dir, distractors, context), indent=1)
    tracks = folder / "tracks_context.json"
    if not tracks.exists():
        run(["track", "--detections", str(detections), "--context", str(context), "--out", str(tracks)])
    mot_file = folder / "mot_context.json"
    if not mot_file.exists():
        from vislearn.video.data.box_store import open_boxes
        from vislearn.video.tracking.mot_eval import evaluate

        gt = open_boxes(data / "annotations.json")
        held_out = [v for v in split_video_ids(split_dir, ["validation"]) if v in gt]
        write_json(mot_file, evaluate(gt, open_boxes(tracks), videos=held_out).overall, indent=1)
    results = read_json(detector / "results.json")
    return {"tracks": tracks, "detector": results["final"], "context": read_json(ap_file), "mot": read_json(mot_file)}


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
    return (f"Tracked boxes: detector (MobileNetV2 + FCOS, trained on the training videos) held-out AP@0.5 hand "
            f"{d['ap50_hand']:.3f}, object {d['ap50_object']:.3f} ({d.get('ap50_object_ignoring', float('nan')):.3f} "
            f"with the unannotated distractors ignored); object {c['context']['object']:.3f} "
            f"({c['context']['object_ignoring']:.3f}) with the track-context rescoring fitted on the training videos; "
            f"tracks of the rescored detections on the validation videos: MOTA "
            f"{100 * m['mota']:.1f}, IDF1 {100 * m['idf1']:.1f}, {m['id_switches']} ID switches, identities right "
            f"in {100 * m['identities_right']:.1f}% of videos.")
