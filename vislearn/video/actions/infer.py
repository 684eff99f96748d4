"""`vislearn video infer VIDEO... --checkpoint MODEL.pt`: from raw videos to the action.

VIDEO: .webm/.mp4 files (any length and size), folders of 12-fps frames (0001.jpg ...), folders of
videos, or globs. Videos are decoded at 12 fps, the rate the models were trained on (SSv2 is 12 fps);
other rates are resampled (the output says so: native fps -> 12).

Boxes, for the checkpoints that read them (a scene-only checkpoint needs none):
  --boxes FILE       a Something-Else box JSON or box store (ground truth, or `vislearn video tracking track`
                     output); the video id is the file name without extension
  --detector DET.pt  the hand/object detector + tracker of `tracking` make them from the pixels (the
                     tracker: any `video.tracking.tracker.Tracker`, `Session.new_tracker`; ByteTracker by default)
What the models see is built exactly as in evaluation: one record through `ClipDataset` (same frame
sampling, crop and slot filling), with the checkpoint's own configuration; the checkpoint alone
gives the model, its class names and that configuration.

Exported models: `--runtime onnx` (onnxruntime) or `--runtime torchscript` with `--checkpoint MODEL.onnx`
(or .pt) written by `vislearn video export`; the file carries the class names and configuration.

Ensembles (the paper's score-fusion rows): several checkpoints (`--checkpoint A.pt B.pt`, or the
option repeated) with `--weights`; scores are the weighted mean of their softmax outputs.

Output per video: the top-k classes with probabilities, the models used, the frame count and rate,
where the boxes came from, and the time per stage:
  decode  open the video, decode it (every frame, once, when the detector or the overlay reads them;
          a pixel model then reads those frames too; alone it decodes only the frames it samples; a
          video too large to hold, over 2 GiB of frames, is decoded by each stage instead) and build
          the model input
  detect  detector on every 12-fps frame; track: tracker + identities
  model   forward passes;  render: drawing and encoding the overlay (with --render)
A table on the terminal; `--json OUT.jsonl` one JSON object per video (`-` for stdout, no table).
`--render DIR` writes DIR/<id>.mp4 (boxes coloured by identity, slot ids, predicted label) and
DIR/<id>_sheet.png (see `video.actions.render`).

Many videos run in one call with the models loaded once. A video that fails (unreadable or corrupt,
truncated: fewer frames than its header declares, no boxes where boxes are needed) is reported with its
reason and the others go on.
Exit codes: 0 every video done, 1 some video failed, 2 bad arguments (one line on stderr).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from vislearn.common.cli import EXIT_FAILED, EXIT_OK, Parser, positive_int, run_main
from vislearn.common.errors import UserError
from vislearn.common.text import printable
from vislearn.common.outputs import claim_file, claim_folder, record
from vislearn.common.jsonio import write_json
from vislearn.video.data.annotations import AnnotationFile, BoxSource, VideoBoxes
from vislearn.video.data.box_store import open_boxes
from vislearn.video.data.clip_dataset import collate
from vislearn.video.data.ssv2 import Record
from vislearn.common.video import SSV2_FPS, DecodedVideo, VideoReader, decoding_problem, expand_videos, open_video

from .config import TrainConfig
from .data import make_dataset, model_inputs
from .distributed import pick_device
from .engine import autocast, to_device
from .checkpoints import config_of, load_model_checkpoint, model_from_checkpoint
from .evaluate import parse_views
from .models import fuse_scores
from vislearn.common.tables import format_table

STAGES = ("decode", "detect", "track", "model")
# a video whose 12-fps frames take up to this much memory (5 minutes at SSv2's 427x240 is 1.1 GB) is decoded
# once for every stage; a larger one is decoded by each stage itself. Where the frame size is known only by
# decoding (decord), a frame count stands in for it (5 minutes).
MAX_DECODED_BYTES = 2 << 30
MAX_DECODED_FRAMES = 3600


@dataclass
class Member:
    """One checkpoint of the ensemble, loaded once."""

    path: str
    model: nn.Module
    cfg: TrainConfig
    name: str
    weight: float

    @property
    def inputs(self) -> dict:
        return model_inputs(self.model)


@dataclass
class Session:
    """Everything loaded once for a batch of videos."""

    members: list[Member]
    class_names: list[str]
    device: torch.device
    views: tuple[int, int] = (1, 1)
    topk: int = 5
    boxes: BoxSource | None = None
    boxes_name: str = ""
    detector: nn.Module | None = None
    detector_name: str = ""
    detector_batch: int = 4
    score_threshold: float = 0.05
    context: object | None = None  # a `video.tracking.context.ContextRescorer`: object detections rescored first
    render_dir: Path | None = None
    progress: bool = False  # a progress bar over the detector's frames
    tracks: dict = field(default_factory=dict)  # video id -> Something-Else records (detector path)
    # a fresh tracker per video (any `video.tracking.tracker.Tracker`); None: ByteTracker with its defaults
    new_tracker: Callable[[], object] | None = None

    @property
    def needs_boxes(self) -> bool:
        return any(m.inputs["needs_boxes"] for m in self.members)

    @property
    def needs_frames(self) -> bool:
        return any(m.inputs["needs_frames"] for m in self.members)

    @property
    def num_slots(self) -> int:
        return max(m.cfg.num_slots for m in self.members)


# ------------------------------------------------------------------------------------- loading

def load_member(path: str, weight: float, device: torch.device, runtime: str = "eager") -> tuple[Member, list[str]]:
    if runtime != "eager":  # a file of `video.actions.export`: its metadata holds what the checkpoint would
        from .export import load_exported

        model = load_exported(path, runtime, device)
        return (Member(str(path), model, config_of(model.meta, {}, path), f"{model.meta['model_name']} ({runtime})", weight),
                list(model.meta["class_names"]))
    ckpt = load_model_checkpoint(path)
    for key in ("model_name", "class_names"):
        if key not in ckpt:
            raise UserError(f"{path}: checkpoint has no '{key}' (not written by vislearn video train?)")
    try:
        model = model_from_checkpoint(ckpt, device, path)
        cfg = config_of(ckpt, {}, path)
    except UserError:
        raise
    except (RuntimeError, ValueError, TypeError, KeyError) as e:
        raise UserError(f"{path}: cannot rebuild model {ckpt.get('model_name')!r} from it ({str(e)[:300]})") from None
    return Member(str(path), model, cfg, str(ckpt["model_name"]), weight), list(ckpt["class_names"])


def load_session(args) -> Session:
    paths = [p for group in args.checkpoint for p in group]
    weights = args.weights or [1.0] * len(paths)
    if len(weights) != len(paths):
        raise UserError(f"--weights: {len(weights)} weight(s) for {len(paths)} checkpoint(s)")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise UserError(f"--weights must be >= 0 with a positive sum, got {weights}")
    try:
        device = pick_device(args.device)
    except ValueError as e:
        raise UserError(f"--device: {e}") from None
    members, names = [], None
    for path, w in zip(paths, weights):
        member, member_names = load_member(path, w, device, args.runtime)
        if names is not None and member_names != names:
            raise UserError(f"{path}: its classes differ from those of {paths[0]}: an ensemble needs one label space")
        names = member_names
        members.append(member)
    if args.topk < 1:
        raise UserError(f"--topk must be at least 1, got {args.topk}")
    s = Session(members, names, device, views=parse_views(args.views), topk=min(args.topk, len(names)),
                detector_batch=args.detector_batch, score_threshold=args.score_threshold,
                render_dir=Path(args.render) if args.render else None,
                progress=not args.quiet and sys.stderr.isatty())
    if args.boxes and args.detector:
        raise UserError("give --boxes or --detector, not both")
    if args.context and not args.detector:
        raise UserError("--context rescores the detector's boxes: give it with --detector")
    if args.boxes:
        s.boxes, s.boxes_name = open_boxes(args.boxes), str(args.boxes)
    elif args.detector:
        from vislearn.video.tracking.detector import load_detector

        s.detector, spec = load_detector(args.detector, device)
        s.detector_name = f"{args.detector} ({spec.arch}, {spec.min_size} px) + tracker"
        if args.context:
            from vislearn.video.tracking.context import load_rescorer

            s.context = load_rescorer(args.context)
            s.detector_name += f" (track context {args.context})"
    elif s.needs_boxes:
        needy = ", ".join(m.path for m in members if m.inputs["needs_boxes"])
        raise UserError(f"{needy}: this model reads boxes: give --boxes BOXES.json or --detector DET.pt")
    return s


# ---------------------------------------------------------------------------------- one video

class Clock:
    """Seconds per stage; waits for the GPU so that its work is counted where it happens."""

    def __init__(self, device: torch.device):
        self.device = device
        self.t: dict[str, float | None] = {k: None for k in STAGES}

    def add(self, stage: str, start: float) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.t[stage] = (self.t.get(stage) or 0.0) + now - start
        return now


def fps_note(reader) -> str:
    if reader.backend == "jpeg":
        return f"frame folder, taken to be {SSV2_FPS} fps"
    if reader.resampled:
        return (f"resampled {reader.native_fps:g} -> {reader.fps:g} fps (the models' rate): "
                f"{reader.native_len} -> {len(reader)} frames")
    return f"{reader.fps:g} fps, as the models were trained"


def tracked_boxes(s: Session, vid: str, path: Path, clock: Clock, video: VideoReader | None = None) -> AnnotationFile:
    """Detector on every frame -> tracker -> Something-Else identities (hand, 0000, ...)."""
    from vislearn.video.tracking.detector import detect_video
    from vislearn.video.tracking.identities import IdentityConfig, assign_identities, identities_to_records
    from vislearn.video.tracking.tracker import TrackerConfig, track_video

    start = time.perf_counter()
    bar = None
    if s.progress:
        from tqdm import tqdm

        bar = tqdm(desc=f"detecting {path.name}", unit="frame", file=sys.stderr, leave=False)
    try:
        det = detect_video(s.detector, video if video is not None else path, s.device, vid, s.detector_batch,
                           s.score_threshold, progress=bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    start = clock.add("detect", start)
    if s.context is not None:
        det = s.context.rescore(det)
    tracker = s.new_tracker() if s.new_tracker is not None else None
    tracks = track_video(det, TrackerConfig(), tracker)
    idents = assign_identities(tracks, IdentityConfig(max_objects=s.num_slots - 1), det)
    records = identities_to_records(vid, idents, det.num_frames)
    s.tracks[vid] = records
    boxes = AnnotationFile({vid: records}, f"tracks of {path}")
    clock.add("track", start)
    return boxes


def box_notes(vb: VideoBoxes, num_frames: int, size: tuple[int, int]) -> list[str]:
    """What looks wrong with the boxes of this video (they are still used)."""
    notes = []
    if vb.num_frames > num_frames:
        notes.append(f"boxes annotate frames up to {vb.num_frames}, the video has {num_frames} at 12 fps")
    w, h = size
    if len(vb.xyxy):
        x1, y1, x2, y2 = (float(v) for v in (vb.xyxy[:, 0].min(), vb.xyxy[:, 1].min(), vb.xyxy[:, 2].max(),
                                              vb.xyxy[:, 3].max()))
        if x1 < -0.1 * w or y1 < -0.1 * h or x2 > 1.1 * w or y2 > 1.1 * h:
            notes.append(f"boxes reach beyond the {w}x{h} frame (x {x1:g}..{x2:g}, y {y1:g}..{y2:g}; boxes of "
                         f"another resolution or another video?)")
    return notes


def score(s: Session, vid: str, path: Path, boxes: BoxSource | None, size: tuple[int, int],
          clock: Clock, video: VideoReader | None = None) -> torch.Tensor:
    """Fused probabilities [K]: each checkpoint sees one record through ClipDataset, as in evaluation."""
    logits = []
    for m in s.members:
        start = time.perf_counter()
        cfg = dataclasses.replace(m.cfg, frame_size=[size[0], size[1]])  # boxes are pixels of THIS video
        ds = make_dataset(cfg, [Record(vid)], None, **m.inputs, train=False,
                          boxes=boxes if m.inputs["needs_boxes"] else None, views=s.views, source=str(path),
                          video_paths={vid: path}, video_opener=None if video is None else (lambda _p: video))
        if len(ds) == 0:
            raise UserError(f"{path}: cannot be scored by {m.path} ({', '.join(r for _, r in ds.skipped)})")
        batch = to_device(collate([ds[i] for i in range(len(ds))]), s.device)
        start = clock.add("decode", start)
        with torch.no_grad(), autocast(s.device, m.cfg.amp):
            logits.append(m.model(batch).float())
        clock.add("model", start)
    return fuse_scores(logits, [m.weight for m in s.members]).mean(0).cpu()


def infer_video(s: Session, vid: str, path: Path) -> dict:
    """One video end to end. Never raises for a bad video: the reason goes into `error`."""
    t0 = time.perf_counter()
    clock = Clock(s.device)
    res: dict = {"video": str(path), "video_id": vid, "ok": False, "error": None, "topk": [],
                 "models": [{"checkpoint": m.path, "model": m.name, "weight": m.weight} for m in s.members],
                 "views": f"{s.views[0]}x{s.views[1]}", "notes": []}
    try:
        start = time.perf_counter()
        video = None  # the decoded frames, when a stage reads pixels: decoded once, read by every stage
        with open_video(path) as reader:
            n = len(reader)
            # the detector and the overlay read every frame; a pixel model alone reads its sampled few
            if s.detector is not None or s.render_dir is not None:
                dims = reader.known_size
                if (n * dims[0] * dims[1] * 3 <= MAX_DECODED_BYTES) if dims else n <= MAX_DECODED_FRAMES:
                    video = DecodedVideo(reader.read_all(), reader)
                else:
                    res["notes"].append(f"{n} frames are too many to hold in memory: each stage decodes the video "
                                        "itself")
            size = video.size if video is not None else reader.size
            res.update(num_frames=n, fps=reader.fps, native_fps=reader.native_fps, native_frames=reader.native_len,
                       resampled=reader.resampled, fps_note=fps_note(reader), size=list(size))
            if (problem := decoding_problem(reader)) is not None:  # truncated: fewer frames than the file declares
                raise UserError(problem)
        clock.add("decode", start)
        boxes, source = s.boxes, s.boxes_name or None
        if s.detector is not None:
            boxes, source = tracked_boxes(s, vid, path, clock, video), s.detector_name
        vb = boxes.get(vid) if boxes is not None and vid in boxes else None
        if vb is None and s.needs_boxes:
            raise UserError(f"{path}: no boxes for video {vid} in {s.boxes_name}")
        if vb is not None:
            if s.needs_boxes and len(vb.track) == 0:
                raise UserError(f"{path}: no hand or object box in {source}" if s.boxes is not None
                                else f"{path}: the detector found no hand or object to track")
            res["notes"] += box_notes(vb, n, size)
        res["boxes"] = {"source": source, "tracks": vb.track_ids() if vb is not None else []}
        probs = score(s, vid, path, boxes, size, clock, video)
        top = probs.topk(s.topk)
        res["topk"] = [{"label": s.class_names[int(i)], "score": round(float(p), 6), "index": int(i)}
                       for p, i in zip(top.values, top.indices)]
        if s.render_dir is not None:
            from .render import FrameBoxes, render_video

            start = time.perf_counter()
            best = res["topk"][0]
            with (contextlib.nullcontext(video) if video is not None else open_video(path)) as reader:
                out = render_video(reader, FrameBoxes.from_video_boxes(vb, s.num_slots),
                                   f"{best['label']} {100 * best['score']:.0f}%", s.render_dir, vid)
            res["render"] = {"video": str(out.video), "sheet": str(out.sheet), "frames": out.frames}
            clock.t["render"] = time.perf_counter() - start
        res["ok"] = True
    except UserError as e:
        res["error"] = str(e)
    except Exception as e:  # a decoder or model failure on this video: report it, go on with the others
        res["error"] = f"{path}: {type(e).__name__}: {e}"
    res["timings"] = {k: (None if v is None else round(v, 4)) for k, v in clock.t.items()}
    res["timings"]["total"] = round(time.perf_counter() - t0, 4)
    return res


# ---------------------------------------------------------------------------------- reporting

def _seconds(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}s"


def format_result(res: dict) -> str:
    # names, labels, paths come from files: `printable` (no terminal escapes)
    name = printable(Path(res["video"]).name)
    if not res["ok"]:
        return f"== {name}: FAILED: {printable(res['error'])}"
    best = res["topk"][0]
    lines = [f"== {name}: {printable(best['label'])} ({100 * best['score']:.1f}%)",
             format_table([[k + 1, printable(t["label"]), f"{t['score']:.4f}"] for k, t in enumerate(res["topk"])],
                          ["#", "label", "score"])]
    boxes = res["boxes"]
    src = printable(f"{boxes['source']} ({', '.join(boxes['tracks']) or 'none'})") if boxes["source"] else "none"
    models = printable(", ".join(f"{m['model']}" + (f" x{m['weight']:g}" if len(res["models"]) > 1 else "")
                                 for m in res["models"]))
    lines.append(f"{res['num_frames']} frames, {res['size'][0]}x{res['size'][1]}, {res['fps_note']}; "
                 f"boxes: {src}; model: {models}; views {res['views']}")
    t = res["timings"]
    lines.append("time: " + ", ".join(f"{k} {_seconds(t.get(k))}" for k in (*STAGES, "render") if k in t)
                 + f", total {_seconds(t['total'])}")
    if res.get("render"):
        lines.append(printable(f"overlay: {res['render']['video']}, {res['render']['sheet']}"))
    return "\n".join(lines)


def summary_table(results: list[dict]) -> str:
    rows = [[printable(Path(r["video"]).name), printable(r["topk"][0]["label"]) if r["ok"] else "FAILED",
             f"{r['topk'][0]['score']:.3f}" if r["ok"] else "-", r.get("num_frames", "-"),
             _seconds(r["timings"]["total"])] for r in results]
    return format_table(rows, ["video", "top-1", "score", "frames", "time"])


def check_outputs(args, videos: dict[str, Path]) -> None:
    """Before any work: outputs are of the right kind, in writable folders, none of them would replace an
    input, and an existing file vislearn did not write is replaced only with --overwrite
    (`vislearn.common.outputs`: a re-run replaces its own renders)."""
    inputs = [*videos.values(), *(p for group in args.checkpoint for p in group), args.boxes, args.detector, args.context]
    if args.json and args.json != "-":
        claim_file(args.json, overwrite=args.overwrite, inputs=inputs, flag="--json")
    if args.save_tracks:
        claim_file(args.save_tracks, overwrite=args.overwrite, inputs=inputs, flag="--save-tracks")
    if args.render:
        claim_folder(args.render, [f"{vid}{suffix}" for vid in videos for suffix in (".mp4", "_sheet.png")],
                     overwrite=args.overwrite, inputs=inputs, flag="--render")


def infer(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    videos = expand_videos(args.videos)
    check_outputs(args, videos)
    s = load_session(args)
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    to_stdout = args.json == "-"
    show = (lambda *a: None) if to_stdout else functools.partial(print, flush=True)  # a video's result as soon as it is done
    log(f"{len(videos)} video(s), decoded at {SSV2_FPS} fps (the models' frame rate; other rates are resampled); "
        f"model: {printable(' + '.join(m.name for m in s.members))} on {s.device}")
    json_out = partial = None
    if args.json and not to_stdout:  # streamed to OUT.partial; OUT appears only when every video is done
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        json_out = open(partial, "w")
    results = []
    try:
        for vid, path in videos.items():
            res = infer_video(s, vid, path)
            results.append(res)
            if res["ok"] and res.get("resampled"):
                log(printable(f"note: {path}: {res['fps_note']}"))
            for note in res["notes"]:
                log(printable(f"note: {path}: {note}"))
            line = json.dumps(res)
            if to_stdout:
                print(line, flush=True)
            elif json_out is not None:
                json_out.write(line + "\n")
                json_out.flush()
            show(format_result(res))
    except BaseException:
        if json_out is not None:
            json_out.close()
            if results:
                print(f"partial results of {len(results)} of {len(videos)} video(s) kept in {partial}; "
                      f"{args.json} was not written", file=sys.stderr)
            else:
                partial.unlink()
        raise
    if json_out is not None:
        json_out.close()
        record(args.json, stat_of=partial)  # ours (where its folder keeps a manifest), noted before it is there
        os.replace(partial, args.json)
    failed = [r for r in results if not r["ok"]]
    if len(results) > 1:
        show(summary_table(results))
    if args.save_tracks:
        write_json(args.save_tracks, s.tracks)
        log(f"wrote {args.save_tracks}: tracked boxes of {len(s.tracks)} video(s) (Something-Else JSON)")
    if failed:
        print(f"{len(failed)} of {len(results)} video(s) failed:", file=sys.stderr)
        for r in failed:
            print(f"  {printable(r['error'])}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


# ------------------------------------------------------------------------------------- command

def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn video infer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files, frame folders, folders of videos, globs")
    p.add_argument("--checkpoint", nargs="+", action="append", required=True, metavar="MODEL.pt",
                   help="checkpoint(s) written by vislearn video train (best.pt); several = score-fusion ensemble")
    p.add_argument("--weights", nargs="+", type=float, help="one weight per checkpoint for the ensemble (default equal)")
    p.add_argument("--runtime", default="eager", choices=["eager", "onnx", "torchscript"],
                   help="eager: --checkpoint are checkpoints (default); onnx / torchscript: they are files of "
                        "`vislearn video export`, run by onnxruntime / TorchScript")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--boxes", help="Something-Else box JSON or box store with the videos' boxes (video id = file name)")
    g.add_argument("--detector", metavar="DET.pt", help="detector checkpoint (vislearn video tracking train-detector): "
                                                        "boxes are detected and tracked on every frame")
    p.add_argument("--topk", type=int, default=5, help="classes to report (default 5)")
    p.add_argument("--views", default="1x1", help="CLIPSxCROPS test views, softmax-averaged (default 1x1)")
    p.add_argument("--json", metavar="OUT.jsonl", help="one JSON object per video ('-': stdout, no table)")
    p.add_argument("--render", metavar="OUT_DIR", help="write OUT_DIR/<id>.mp4 overlays and <id>_sheet.png contact sheets")
    p.add_argument("--overwrite", action="store_true",
                   help="replace outputs (--json, --save-tracks, --render files) that exist and vislearn did not write")
    p.add_argument("--save-tracks", metavar="TRACKS.json", help="with --detector: write the tracked boxes "
                                                                "(Something-Else JSON, reusable as --boxes)")
    p.add_argument("--context", metavar="CTX.json", help="with --detector: rescore the object detections with this "
                                                         "track-context model (vislearn video tracking fit-context)")
    p.add_argument("--score-threshold", type=float, default=0.05, help="detector: lowest score kept (default 0.05)")
    p.add_argument("--detector-batch", type=int, default=4, help="detector: frames per forward pass (default 4)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--quiet", action="store_true", help="no notes on stderr (failures are still reported)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.save_tracks and not args.detector:
        build_parser().error("--save-tracks needs --detector")
    return run_main(lambda: infer(args))


if __name__ == "__main__":
    sys.exit(main())
