"""Tracking front end: tracker accuracy and speed, detector speed, end-to-end time.

1. Tracker, on real Something-Else tracks (the 7-video sample in ../shared/fixtures): the ground-truth
   boxes are perturbed into detections (jitter, missed boxes, occlusion bursts, false positives,
   duplicates, class flips, score noise; `tracking.simulate`), for --seeds seeds (default 10, seeds
   100.. : not the seeds the defaults were chosen on). Every method tracks the SAME detections, hand
   and object apart, at 12 fps:
     ours            tracking.tracker (ByteTrack-style) as `track` runs it (gap filling on)
     ours online     the same without the offline gap filling
     greedy          frame-to-frame IoU linker (the floor)
     trackers BT     ByteTrackTracker of the `trackers` package (Roboflow, Apache-2.0), one per class
     trackers BT+fill  the same + our offline gap filling (same post-processing as `ours`)
     trackers SORT   SORTTracker of `trackers`, one per class
   MOTA / IDF1 / ID switches (py-motmetrics through tracking.mot_eval), for the raw tracks and after
   the Something-Else identity rule (hand, 0000.. capped at 3 objects), and association frames/s
   (tracking only; for `trackers` this includes building its sv.Detections per frame, its API).
   `trackers` is a bench-only extra: pip install trackers (rows are skipped without it).
2. Detector frames/s on the CPU (random weights; speed does not depend on them much), 427x240
   frames as SSv2, batch 4, for mobilenet_v3 at its default 320 px (and 240 px) and resnet50_v2.
3. End to end: `vislearn video tracking track VIDEO.webm --detector CKPT --out TRACKS.json` on a 4 s
   (48-frame) real SSv2 clip encoded to VP9, wall time of the whole command in-process.

  python bench/bench_tracking.py [--seeds 10] [--threads 2] [--skip-detector]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av  # load PyAV's FFmpeg before decord (its bundled libvpx breaks PyAV's VP9 encoder)
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT.parent / "shared" / "fixtures" / "something_else_sample"

from vislearn.video.data.annotations import AnnotationFile, parse_video  # noqa: E402
from vislearn.video.tracking.identities import assign_identities, identities_to_records, tracks_to_records  # noqa: E402
from vislearn.video.tracking.mot_eval import evaluate  # noqa: E402
from vislearn.video.tracking.simulate import greedy_link, perturb_video  # noqa: E402
from vislearn.video.tracking.tracker import Track, TrackerConfig, fill_gaps, track_video  # noqa: E402
from vislearn.common.cli import Parser, run_main  # noqa: E402


def trackers_runner(kind: str):
    """A function detections -> tracks using the `trackers` package, one tracker per class; None if
    the package is not installed."""
    try:
        import supervision as sv
        from trackers import ByteTrackTracker, SORTTracker
    except ImportError:
        return None
    cls = ByteTrackTracker if kind == "bytetrack" else SORTTracker

    def run(det) -> list[Track]:
        per_class = {c: cls(frame_rate=12.0) for c in (0, 1)}
        out: dict[tuple[int, int], Track] = {}
        for f, xyxy, score, label in det.frames():
            for c, tracker in per_class.items():
                m = label == c
                d = sv.Detections(xyxy=xyxy[m].astype(np.float32).reshape(-1, 4),
                                  confidence=score[m].astype(np.float32), class_id=label[m].astype(int))
                r = tracker.update(d)
                for box, s, tid in zip(r.xyxy, r.confidence, r.tracker_id):
                    if tid < 0:
                        continue
                    t = out.get((c, int(tid)))
                    if t is None:
                        t = out[(c, int(tid))] = Track(len(out) + 1, c, state="tracked")
                    t.frames.append(f), t.boxes.append(np.asarray(box, float)), t.scores.append(float(s))
                    t.detected.append(True)
        return list(out.values())
    return run


def bench_tracker(seeds: list[int]) -> dict:
    gt = AnnotationFile.load(SAMPLE / "annotations.json")
    vids = gt.video_ids()
    dets = {s: [perturb_video(gt.get(v), np.random.default_rng([s, i])) for i, v in enumerate(vids)] for s in seeds}
    frames_per_seed = sum(d.num_frames for d in dets[seeds[0]])
    online = TrackerConfig(fill_gaps=0)
    methods = {"ours": lambda d: track_video(d), "ours online": lambda d: track_video(d, online),
               "greedy": greedy_link}
    bt, sort = trackers_runner("bytetrack"), trackers_runner("sort")
    if bt is not None:
        methods["trackers BT"] = bt
        methods["trackers BT+fill"] = lambda d: fill_gaps(bt(d), TrackerConfig().fill_gaps)
        methods["trackers SORT"] = sort
    else:
        print("note: `trackers` not installed (pip install trackers): its ByteTrack/SORT rows are skipped")
    rows = {}
    for name, fn in methods.items():
        raw, ident, seconds = [], [], 0.0
        for s in seeds:
            t0 = time.perf_counter()
            tracks = [fn(d) for d in dets[s]]
            seconds += time.perf_counter() - t0
            pr = {v: parse_video(v, tracks_to_records(v, t, d.num_frames)) for v, t, d in zip(vids, tracks, dets[s])}
            pi = {v: parse_video(v, identities_to_records(v, assign_identities(t), d.num_frames))
                  for v, t, d in zip(vids, tracks, dets[s])}
            raw.append(evaluate(gt, pr).overall)
            ident.append(evaluate(gt, pi).overall)
        agg = lambda rs, k: (float(np.mean([r[k] for r in rs])), float(np.std([r[k] for r in rs])))  # noqa: E731
        rows[name] = {"raw": {k: agg(raw, k) for k in ("mota", "idf1", "id_switches")},
                      "ids": {k: agg(ident, k) for k in ("mota", "idf1", "id_switches")},
                      "fps": frames_per_seed * len(seeds) / seconds}
    print(f"\n1. tracker on the real sample ({len(vids)} videos, {frames_per_seed} frames, "
          f"{sum(len(d) for d in dets[seeds[0]])} detections per seed), {len(seeds)} seeds, mean (std)")
    print(f"{'method':>18} | {'raw MOTA':>13} {'raw IDF1':>13} {'IDsw':>5} | {'SE-ids MOTA':>13} {'SE-ids IDF1':>13} "
          f"{'IDsw':>5} | {'frames/s':>9}")
    for name, r in rows.items():
        f = lambda m: f"{100 * m[0]:6.1f} ({100 * m[1]:4.1f})"  # noqa: E731
        print(f"{name:>18} | {f(r['raw']['mota'])} {f(r['raw']['idf1'])} {r['raw']['id_switches'][0]:5.1f} | "
              f"{f(r['ids']['mota'])} {f(r['ids']['idf1'])} {r['ids']['id_switches'][0]:5.1f} | {r['fps']:9.0f}")
    return rows


def bench_detector(threads: int) -> dict:
    import torch

    from vislearn.video.tracking.detector import build_detector, default_spec

    torch.set_num_threads(threads)
    frames = [torch.rand(3, 240, 427) for _ in range(4)]
    out = {}
    print(f"\n2. detector on the CPU ({threads} threads), 427x240 frames, batch 4, random weights")
    for arch, size in [("mobilenet_v3", None), ("mobilenet_v3", 240), ("resnet50_v2", None)]:
        spec = default_spec(arch, min_size=size, max_size=None if size is None else 2 * size)
        model = build_detector(spec).eval()
        with torch.no_grad():
            model(frames)
            times = []
            for _ in range(3 if arch == "mobilenet_v3" else 1):
                t0 = time.perf_counter()
                model(frames)
                times.append(time.perf_counter() - t0)
        fps = len(frames) / min(times)
        out[f"{arch}@{spec.min_size}"] = fps
        print(f"{arch:>14} at {spec.min_size}-{spec.max_size}px: {fps:6.2f} frames/s")
    return out


def encode_webm(path: Path, frames: np.ndarray, fps: int = 12) -> None:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libvpx-vp9", rate=Fraction(fps, 1))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "32", "b": "0", "deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def bench_end_to_end(threads: int) -> dict:
    import torch
    from PIL import Image

    from vislearn.video.tracking.__main__ import main
    from vislearn.video.tracking.detector import build_detector, default_spec, save_detector

    files = sorted((SAMPLE / "frames" / "2").glob("*.jpg"))[:48]
    frames = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        video = tmp / "2.webm"
        encode_webm(video, frames)
        spec = default_spec("mobilenet_v3")
        torch.manual_seed(0)
        save_detector(tmp / "det.pt", build_detector(spec), spec)
        print(f"\n3. end to end: `track 2.webm --detector CKPT` on a {len(frames)}-frame ({len(frames) / 12:.0f} s) "
              f"{frames.shape[2]}x{frames.shape[1]} VP9 clip, mobilenet_v3 at {spec.min_size}px, {threads} threads")
        t0 = time.perf_counter()
        rc = main(["track", str(video), "--detector", str(tmp / "det.pt"), "--out", str(tmp / "t.json"), "--quiet",
                   "--threads", str(threads), "--save-detections", str(tmp / "d.json")])
        dt = time.perf_counter() - t0
        assert rc == 0
        n_det = sum(len(r["labels"]) for r in json.loads((tmp / "d.json").read_text())["2"])
        print(f"video -> tracks: {dt:.1f} s ({len(frames) / dt:.1f} frames/s; {n_det} detections from the untrained "
              f"detector, so tracking load is realistic-to-high)")
        out = {"seconds": dt, "frames": len(frames)}
    return out


def main() -> int:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-detector", action="store_true", help="tracker figures only")
    args = p.parse_args()
    if not (SAMPLE / "annotations.json").exists():
        print(f"real sample not found at {SAMPLE}")
        return 1
    results = {"tracker": bench_tracker(list(range(100, 100 + args.seeds)))}
    if not args.skip_detector:
        results["detector_fps"] = bench_detector(args.threads)
        results["end_to_end"] = bench_end_to_end(args.threads)
    print("\n" + json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
