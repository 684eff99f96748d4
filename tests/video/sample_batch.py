"""Real batches from the real Something-Else sample (7 videos, their boxes and 12-fps frames), built the
way evaluation builds them: a run config -> `actions.data.make_dataset` -> `collate`."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from vislearn.video.actions.config import TrainConfig, apply
from vislearn.video.actions.data import make_dataset
from vislearn.video.data.annotations import AnnotationFile
from vislearn.video.data.clip_dataset import collate
from vislearn.video.data.ssv2 import Record, class_names, load_labels

SAMPLE_IDS = ["2", "4", "2003", "6981", "57082", "151201", "862"]


def sample_batch(sample_dir: Path, config: dict | TrainConfig, *, needs_boxes: bool = True, needs_frames: bool = False,
                 needs_rgb_boxes: bool = False, views: tuple[int, int] = (1, 1)) -> dict:
    """Every sample video (x views) in one batch, under the run config `config` (a checkpoint's `config`)."""
    cfg = config if isinstance(config, TrainConfig) else apply(TrainConfig(), dict(config), "test")
    cfg = dataclasses.replace(cfg, boxes=str(sample_dir / "annotations.json"), videos=str(sample_dir / "frames"))
    labels = load_labels(sample_dir / "splits" / "compositional" / "labels.json")
    names = class_names(labels)
    records = [Record(id=v, template=names[7 * i], label=names[7 * i], placeholders=[]) for i, v in enumerate(SAMPLE_IDS)]
    ds = make_dataset(cfg, records, labels, needs_boxes=needs_boxes, needs_frames=needs_frames,
                      needs_rgb_boxes=needs_rgb_boxes, boxes=AnnotationFile.load(cfg.boxes) if needs_boxes else None,
                      train=False, views=views)
    assert len(ds) == len(records) * views[0] * views[1], ds.report
    return collate([ds[i] for i in range(len(ds))])
