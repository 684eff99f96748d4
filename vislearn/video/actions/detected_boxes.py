"""The paper's detected-box setting on the synthetic benchmark (rows of `make table-full`).

The paper trains and tests its box models on boxes from a detector and tracker as well as on the
ground-truth boxes. Here, for one split: the hand/object detector (`vislearn video tracking train-detector`,
ImageNet MobileNetV2 + FCOS) trained on the frames of the split's training videos only, with the
generator's exact boxes; its held-out AP on the split's validation videos (also with the generator's
unannotated distractor objects ignored); then detect -> track -> identities on every video of the
split (`vislearn video tracking track-split`, two shards at once, merged with `datasets merge-boxes`) into
one Something-Else box JSON; and the MOT figures of those tracks against the ground truth of the
validation videos. The box model then trains and is evaluated
on the tracked boxes exactly as on the ground-truth ones (`boxes=` of its config).

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
SHARDS = 2  # track-split processes at once, one torch thread each (the demo's 2 cores)


def track_split_in_shards(split_dir: Path, videos: Path, detector: Path, tracks: Path, shards: int,
                          extra: list[str]) -> None:
    """`track-split --shard K/N` in N processes at once, then `datasets merge-boxes` of their parts."""
    import subprocess
    import sys

    from vislearn.video.data.__main__ import main as datasets
    from vislearn.video.tracking.track_split import part_path

    procs = [subprocess.Popen([sys.executable, "-m", "vislearn.video.tracking", "track-split", "--split", str(split_dir),
                               "--videos", str(videos), "--detector", str(detector), "--out", str(tracks),
                               "--shard", f"{k}/{shards}", "--batch-size", "8", "--threads", "1", *extra])
             for k in range(shards)]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(max(codes))
    parts = [str(part_path(tracks, (k, shards))) for k in range(shards)]
    code = datasets(["merge-boxes", *parts, "--out", str(tracks)]) if shards > 1 else 0
    if code:
        raise SystemExit(code)


def front_end(data: Path, out: Path, split: str, quiet: bool = True) -> dict:
    """Detector, tracks of every video of `data/splits/<split>`, and their figures; returns
    {"tracks": path, "detector": held-out AP, "mot": figures on the validation videos}."""
    from vislearn.video.data.synthetic.distractors import distractor_records
    from vislearn.video.tracking.__main__ import main as tracking

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
        code = tracking(["train-detector", "--boxes", str(data / "annotations.json"), "--videos", str(data / "videos"),
                         "--split", str(split_dir), "--out", str(detector), "--ignore-boxes", str(distractors),
                         *DETECTOR_OPTIONS, *resume, *common])
        if code:
            raise SystemExit(code)
    tracks = folder / "tracks.json"
    if not tracks.exists():
        track_split_in_shards(split_dir, data / "videos", detector, tracks, SHARDS, common)
    mot_file = folder / "mot.json"
    if not mot_file.exists():
        from vislearn.video.data.box_store import open_boxes
        from vislearn.video.tracking.mot_eval import evaluate
        from vislearn.video.tracking.track_split import split_video_ids

        gt = open_boxes(data / "annotations.json")
        held_out = [v for v in split_video_ids(split_dir, ["validation"]) if v in gt]
        write_json(mot_file, evaluate(gt, open_boxes(tracks), videos=held_out).overall, indent=1)
    results = read_json(detector / "results.json")
    return {"tracks": tracks, "detector": results["final"], "mot": read_json(mot_file)}


def summary(fe: dict) -> str:
    """One paragraph under the table: what the tracked boxes are worth."""
    d, m = fe["detector"], fe["mot"]
    return (f"Tracked boxes: detector (MobileNetV2 + FCOS, trained on the training videos) held-out AP@0.5 hand "
            f"{d['ap50_hand']:.3f}, object {d['ap50_object']:.3f} ({d.get('ap50_object_ignoring', float('nan')):.3f} "
            f"with the unannotated distractors ignored); tracks on the validation videos: MOTA "
            f"{100 * m['mota']:.1f}, IDF1 {100 * m['idf1']:.1f}, {m['id_switches']} ID switches, identities right "
            f"in {100 * m['identities_right']:.1f}% of videos.")
