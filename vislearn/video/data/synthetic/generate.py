"""Writing the synthetic data set in the real SSv2 / Something-Else formats, and its statistics.

Layout (same file names as the official releases):
  DIR/something-something-v2-labels.json       class name -> index (as strings), the templates used
  DIR/something-something-v2-train.json        [{id, label, template, placeholders}]
  DIR/something-something-v2-validation.json
  DIR/annotations.json                         Something-Else boxes: hand, 0000, 0001 (placeholders only)
  DIR/videos/<id>.webm                         VP9, 12 fps
  DIR/synthetic.json                           generator settings, version, per-video ground truth

Each video is drawn from its own generator seeded with (seed, index), so the output does not
depend on the number of worker processes.

The set is built in a hidden folder beside DIR (`.DIR.building.PID.TAG`) that takes DIR's place in one
step at the end (`vislearn.common.files.atomic_folder`): a run killed at any instant leaves the earlier
set whole (or, for a new DIR, no DIR at all), and the next run removes the killed run's folder.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..annotations import HAND, frame_name, load_annotations, save_annotations
from vislearn.common.errors import UserError
from vislearn.common.files import atomic_folder
from vislearn.common.outputs import MANIFEST
from vislearn.common.jsonio import write_json
from vislearn.common.drawing.objects import NOUNS
from ..ssv2 import Record, find_metadata, load_labels, load_records, save_labels, save_records
from ..video_writer import write_video
from .bias import BIASES, SPREAD, draw_nouns
from .render import Rendered, build_scene, rasterise
from .templates import TEMPLATE_BY_TEXT, TEMPLATES, appearance_groups

VERSION = "1.1"  # 1.1: nouns drawn with the SSv2-strength noun-verb bias (noun_bias "ssv2")
FPS = 12  # SSv2 videos are 12 fps
MIN_FRAMES, MAX_FRAMES = 24, 48  # 2-4 s at 12 fps (SSv2 clips are 2-6 s; shorter keeps generation cheap)
VALIDATION_FRACTION = 0.2
ANNOTATIONS = "annotations.json"
SYNTHETIC = "synthetic.json"


@dataclass
class VideoSpec:
    """What one video shows, drawn from (seed, index) before any rendering."""

    id: str
    index: int
    seed: int
    template: str
    nouns: list[str]
    distractors: list[str]
    frames: int
    width: int
    height: int

    @property
    def label(self) -> str:
        return TEMPLATE_BY_TEXT[self.template].label(self.nouns)


def video_id(index: int) -> str:
    """Numeric ids like SSv2's."""
    return str(index + 1)


def make_spec(seed: int, index: int, width: int, height: int, noun_bias: str = "ssv2",
              spread: float = SPREAD) -> VideoSpec:
    """The template is drawn uniformly. The nouns: with noun_bias "ssv2" from the template's fixed
    affinity over nouns (`bias`: the strength of real SSv2's noun-verb bias, fitted to its
    statistics; `spread` other than SPREAD only for fitting it); with "none" uniformly and
    independently of the template (every verb-noun pair equally likely, as in version 1.0). The
    compositional split is made later by the split tool."""
    if noun_bias not in BIASES:
        raise ValueError(f"noun_bias must be one of {', '.join(BIASES)}, got {noun_bias!r}")
    rng = np.random.default_rng([seed, index, 0])
    t_index = int(rng.integers(len(TEMPLATES)))
    template = TEMPLATES[t_index]
    names = [n.name for n in NOUNS]
    if noun_bias == "none":
        picked = rng.choice(len(names), size=template.objects, replace=False)
    else:
        picked = draw_nouns(rng, seed, t_index, template.objects, len(TEMPLATES), len(names), spread)
    nouns = [names[int(i)] for i in picked]
    # one to three objects in view: the placeholders plus unannotated distractors
    n_distractors = int(rng.integers(0, 4 - template.objects))
    rest = [i for i in range(len(names)) if names[i] not in nouns]
    distractors = [names[rest[int(i)]] for i in rng.choice(len(rest), size=n_distractors, replace=False)]
    frames = int(rng.integers(MIN_FRAMES, MAX_FRAMES + 1))
    return VideoSpec(video_id(index), index, seed, template.text, nouns, distractors, frames, width, height)


def render_spec(spec: VideoSpec, debug: bool = False) -> tuple[Rendered, dict]:
    """Render one video; returns the frames/boxes and the per-video ground-truth extras."""
    rng = np.random.default_rng([spec.seed, spec.index, 1])
    scene = build_scene(spec.template, spec.nouns, spec.distractors, spec.frames, spec.width, spec.height, rng)
    rendered = rasterise(scene, debug=debug)
    template = TEMPLATE_BY_TEXT[spec.template]
    extras = {
        "frames": spec.frames, "width": spec.width, "height": spec.height, "fps": FPS,
        "template": spec.template, "verb": template.class_name, "nouns": list(spec.nouns),
        "motion": template.motion, "appearance": template.appearance,
        "distractors": len(scene.distractors), **scene.extras,
    }
    return rendered, extras


def frame_records(spec: VideoSpec, rendered: Rendered) -> list[dict]:
    """Something-Else frame records: one per frame, boxes only where visible, objects then hand."""
    records = []
    for i, boxes in enumerate(rendered.boxes):
        labels = []
        for track, (x1, y1, x2, y2) in boxes:
            if track == HAND:
                category, gt = "hand", "object hand"
            else:
                category, gt = spec.nouns[int(track)], f"object {int(track)}"
            labels.append({"box2d": {"x1": round(x1, 2), "y1": round(y1, 2), "x2": round(x2, 2), "y2": round(y2, 2)},
                           "category": category, "standard_category": track, "gt_annotation": gt})
        records.append({"name": frame_name(spec.id, i), "labels": labels, "nr_instances": len(labels),
                        "gt_placeholders": list(spec.nouns)})
    return records


def _work(job: tuple[VideoSpec, str]) -> tuple[str, list[dict], dict]:
    spec, video_dir = job
    rendered, extras = render_spec(spec)
    write_video(Path(video_dir) / f"{spec.id}.webm", rendered.frames, fps=FPS)
    return spec.id, frame_records(spec, rendered), extras


def split_ids(ids: list[str], seed: int) -> tuple[list[str], list[str]]:
    """~80/20 train/validation, seeded (the split tool re-splits later)."""
    rng = np.random.default_rng([seed, 2**31 - 1])
    n_val = int(round(VALIDATION_FRACTION * len(ids))) if len(ids) > 1 else 0
    val = set(rng.permutation(len(ids))[:n_val].tolist())
    train = [v for i, v in enumerate(ids) if i not in val]
    validation = [v for i, v in enumerate(ids) if i in val]
    return train, validation


SET_FILES = ("something-something-v2-labels.json", "something-something-v2-train.json",
             "something-something-v2-validation.json", ANNOTATIONS, SYNTHETIC)


def _ours(name: str) -> bool:
    """A hidden name vislearn keeps in its output folders (the outputs manifest, a temporary file)."""
    return name.startswith(".") and (name == MANIFEST or ".tmp." in name)


def _check_out(out: Path) -> None:
    """The output folder must be new, empty, or an earlier synthetic set, which the new one replaces whole:
    so it may hold only what this command writes (its five JSON files, videos/ of <id>.webm). Anything
    else (a split folder made inside it, a user's notes) would be lost with it: refused."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    if not out.exists() or not any(out.iterdir()):
        return
    if not (out / SYNTHETIC).is_file():
        raise UserError(f"{out}: folder is not empty and holds no {SYNTHETIC}; choose a new --out folder")
    names = sorted(os.listdir(out))
    videos = out / "videos"
    strangers = [f"{n}/" if (out / n).is_dir() else n for n in names
                 if not (n in SET_FILES and (out / n).is_file() and not (out / n).is_symlink())
                 and not (n == "videos" and videos.is_dir() and not videos.is_symlink()) and not _ours(n)]
    if not strangers and videos.is_dir():
        with os.scandir(videos) as it:
            strangers = sorted(f"videos/{e.name}" for e in it if not _ours(e.name)
                               and not (e.name.endswith(".webm") and e.is_file(follow_symlinks=False)))
    if strangers:
        more = f" and {len(strangers) - 3} more" if len(strangers) > 3 else ""
        raise UserError(f"{out}: holds {', '.join(strangers[:3])}{more}, which `vislearn video synthetic` did not "
                        f"write; it replaces a synthetic set whole, so it is kept: move those or choose another --out")


def generate(out: str | os.PathLike, videos: int, seed: int = 0, width: int = 320, height: int = 240,
             workers: int = 1, progress: Callable | None = None, noun_bias: str = "ssv2") -> dict:
    """Render `videos` videos into `out` (built beside it, swapped in at the end); returns the
    synthetic.json content."""
    if videos < 1:
        raise ValueError("videos must be at least 1")
    if any(v % 2 or not 96 <= v <= 4096 for v in (width, height)):
        raise ValueError(f"width and height must be even numbers from 96 to 4096, got {width}x{height}")
    out = Path(out)
    _check_out(out)
    specs = [make_spec(seed, i, width, height, noun_bias) for i in range(videos)]
    with atomic_folder(out, replace=True) as tmp:
        return _write_set(tmp, specs, seed, videos, width, height, workers, progress, noun_bias)


def _write_set(out: Path, specs: list[VideoSpec], seed: int, videos: int, width: int, height: int, workers: int,
               progress: Callable | None, noun_bias: str) -> dict:
    video_dir = out / "videos"
    video_dir.mkdir()
    jobs = [(s, str(video_dir)) for s in specs]
    results: dict[str, tuple[list[dict], dict]] = {}
    if workers > 1 and videos > 1:
        # spawn: safe whatever the parent has imported (threads of torch/decoders do not survive fork)
        with mp.get_context("spawn").Pool(min(workers, videos)) as pool:
            it = pool.imap_unordered(_work, jobs, chunksize=1)
            for vid, recs, extras in (progress(it, len(jobs)) if progress else it):
                results[vid] = (recs, extras)
    else:
        it = map(_work, jobs)
        for vid, recs, extras in (progress(it, len(jobs)) if progress else it):
            results[vid] = (recs, extras)

    ids = [s.id for s in specs]
    train_ids, val_ids = split_ids(ids, seed)
    by_id = {s.id: s for s in specs}

    def records(which):
        return [Record(id=i, template=by_id[i].template, label=by_id[i].label, placeholders=list(by_id[i].nouns))
                for i in which]

    save_labels(out / "something-something-v2-labels.json", {t.class_name: k for k, t in enumerate(TEMPLATES)})
    save_records(out / "something-something-v2-train.json", records(train_ids))
    save_records(out / "something-something-v2-validation.json", records(val_ids))
    save_annotations(out / ANNOTATIONS, {i: results[i][0] for i in ids})
    val_set = set(val_ids)
    meta = {
        "generator": "vislearn.video.data.synthetic",
        "version": VERSION,
        "settings": {"seed": seed, "videos": videos, "width": width, "height": height, "fps": FPS,
                     "min_frames": MIN_FRAMES, "max_frames": MAX_FRAMES,
                     "validation_fraction": VALIDATION_FRACTION, "noun_bias": noun_bias,
                     **({"noun_bias_spread": SPREAD} if noun_bias == "ssv2" else {})},
        "templates": [t.text for t in TEMPLATES],
        "nouns": [n.name for n in NOUNS],
        "appearance_only": appearance_groups(),
        "videos": {i: {**results[i][1], "split": "validation" if i in val_set else "train"} for i in ids},
    }
    write_json(out / SYNTHETIC, meta)
    return meta


# --------------------------------------------------------------------------- statistics
def _summary(values) -> dict:
    if not values:
        return {"mean": 0.0, "min": 0, "max": 0}
    a = np.asarray(values, np.float64)
    return {"mean": round(float(a.mean()), 2), "min": int(a.min()), "max": int(a.max())}


def dataset_stats(folder: str | os.PathLike) -> dict:
    """Figures of any SSv2-format folder: labels, train/validation lists and, when present,
    Something-Else boxes in `annotations.json`."""
    folder = Path(folder)
    files = find_metadata(folder)
    if "labels" not in files:
        raise UserError(f"{folder}: no something-something-v2-labels.json")
    labels = load_labels(files["labels"])
    splits = {k: load_records(files[k], labels) for k in ("train", "validation") if k in files}
    records = [r for rs in splits.values() for r in rs]
    per_class = {name: 0 for name in labels}
    for r in records:
        per_class[r.class_name] += 1
    nouns = {p for r in records for p in r.placeholders}
    stats: dict = {
        "folder": str(folder),
        "videos": len(records),
        **{k: len(v) for k, v in splits.items()},
        "classes": len(labels),
        "classes_used": sum(1 for v in per_class.values() if v),
        "videos_per_class": _summary(list(per_class.values())),
        "nouns": len(nouns),
    }
    ann_path = folder / ANNOTATIONS
    if ann_path.exists():
        data = load_annotations(ann_path)
        frames, tracks, boxes, hand_boxes, empty, hand_frames = [], [], 0, 0, 0, 0
        for vid, recs in data.items():
            ids = set()
            frames.append(len(recs))
            for rec in recs:
                labs = rec.get("labels") or []
                boxes += len(labs)
                empty += not labs
                has_hand = False
                for lab in labs:
                    ids.add(lab.get("standard_category"))
                    if lab.get("standard_category") == HAND:
                        hand_boxes += 1
                        has_hand = True
                hand_frames += has_hand
            tracks.append(len(ids))
        total_frames = sum(frames)
        stats.update({
            "annotated_videos": len(data),
            "videos_without_boxes": sum(1 for r in records if r.id not in data),
            "frames": total_frames,
            "frames_per_video": _summary(frames),
            "boxes": boxes,
            "hand_boxes": hand_boxes,
            "object_boxes": boxes - hand_boxes,
            "boxes_per_frame": round(boxes / total_frames, 3) if total_frames else 0.0,
            "tracks_per_video": _summary(tracks),
            "frames_with_hand": round(hand_frames / total_frames, 3) if total_frames else 0.0,
            "frames_without_boxes": empty,
        })
    video_dir = folder / "videos"
    if video_dir.is_dir():
        stats["video_files"] = sum(1 for p in video_dir.iterdir() if p.suffix in (".webm", ".mp4"))
    return stats


def format_stats(stats: dict) -> str:
    """A small human-readable table of `dataset_stats`."""
    rows = [("videos", f"{stats['videos']} ({stats.get('train', 0)} train, {stats.get('validation', 0)} validation)"),
            ("classes", f"{stats['classes']} ({stats['classes_used']} used; videos per class "
                        f"{stats['videos_per_class']['min']}-{stats['videos_per_class']['max']}, "
                        f"mean {stats['videos_per_class']['mean']})"),
            ("nouns", str(stats["nouns"]))]
    if "boxes" in stats:
        f, tr = stats["frames_per_video"], stats["tracks_per_video"]
        rows += [("annotated videos", str(stats["annotated_videos"])),
                 ("frames per video", f"mean {f['mean']} (min {f['min']}, max {f['max']}); {stats['frames']} in all"),
                 ("boxes", f"{stats['boxes']} ({stats['hand_boxes']} hand, {stats['object_boxes']} object; "
                           f"{stats['boxes_per_frame']} per frame)"),
                 ("tracks per video", f"mean {tr['mean']} (min {tr['min']}, max {tr['max']})"),
                 ("frames with a hand", f"{100 * stats['frames_with_hand']:.1f}%"),
                 ("frames without boxes", str(stats["frames_without_boxes"]))]
    if "video_files" in stats:
        rows.append(("video files", str(stats["video_files"])))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)
