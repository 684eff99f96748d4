"""A tiny coordinate-only SSv2-format split made in tests: class-dependent box motions, no videos."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vislearn.video.data.annotations import frame_name

TEMPLATES = [
    "Pushing [something] from left to right",
    "Pushing [something] from right to left",
    "Moving [something] up",
    "Moving [something] down",
]


def make_box_split(folder: Path, videos: int = 120, seed: int = 0, frames: int = 16) -> tuple[Path, Path]:
    """Writes folder/split/{labels,train,validation}.json and folder/boxes.json; returns (split, boxes)."""
    rng = np.random.default_rng(seed)
    split = folder / "split"
    split.mkdir(parents=True, exist_ok=True)
    labels = {t.replace("[", "").replace("]", ""): str(i) for i, t in enumerate(TEMPLATES)}
    directions = [(1, 0), (-1, 0), (0, -1), (0, 1)]
    boxes, records = {}, []
    for v in range(videos):
        vid = str(1000 + v)
        c = v % len(TEMPLATES)
        dx, dy = directions[c]
        x, y = rng.uniform(120, 200), rng.uniform(80, 140)
        speed = rng.uniform(3, 6)
        recs = []
        for f in range(frames):
            ox, oy = x + dx * speed * f + rng.normal(0, 2), y + dy * speed * f * 0.6 + rng.normal(0, 2)
            hx, hy = ox - 10 + rng.normal(0, 3), oy - 30 + rng.normal(0, 3)
            labels_f = [
                {"box2d": {"x1": ox, "y1": oy, "x2": ox + 40, "y2": oy + 30}, "category": "cup",
                 "standard_category": "0000", "gt_annotation": "object 0"},
                {"box2d": {"x1": hx, "y1": hy, "x2": hx + 35, "y2": hy + 35}, "category": "hand",
                 "standard_category": "hand", "gt_annotation": "object hand"},
            ]
            recs.append({"name": frame_name(vid, f), "labels": labels_f, "nr_instances": 2, "gt_placeholders": ["cup"]})
        boxes[vid] = recs
        records.append({"id": vid, "label": TEMPLATES[c].replace("[something]", "cup").lower(),
                        "template": TEMPLATES[c], "placeholders": ["cup"]})
    (split / "labels.json").write_text(json.dumps(labels))
    cut = int(len(records) * 0.75)
    (split / "train.json").write_text(json.dumps(records[:cut]))
    (split / "validation.json").write_text(json.dumps(records[cut:]))
    (folder / "boxes.json").write_text(json.dumps(boxes))
    return split, folder / "boxes.json"


def run_args(box_split, out, **over) -> list[str]:
    """key=value arguments of a tiny STIN run on `make_box_split`'s split; `over` replaces or adds keys."""
    split, boxes = box_split
    values = {"split": split, "boxes": boxes, "model": "stin_oie", "model_args.feature_dim": 8, "epochs": 1,
              "batch_size": 8, "workers": 0, "threads": 1, "frame_size": "[427,240]", "lr_steps": "[5]",
              "out": out, "log_every": 0, "device": "cpu"}
    values.update(over)
    return [f"{k}={v}" for k, v in values.items()]
