"""Downstream tasks that need what an augmentation destroys (LooC's test), made from the object image set so only
the label changes between them:

- `objects`: the 24 object classes (an ordinary task: contrastive invariances do not hurt it).
- `colours`: 6 classes that differ only in colour. Each image is turned to its luminance and tinted with one of 6
  hues 60 degrees apart (saturation 0.6); the tint is the label, drawn per image from a seeded generator (so it
  says nothing about the object). Colour jitter (hue +-0.1 turn, i.e. 36 degrees) and grayscale destroy it.
- `rotation`: 4-way rotation prediction: each image turned by a drawn number of quarter turns, the label. A
  rotation augmentation destroys it.

`task_splits(task, img_size)` gives the train/val/test splits as `LabelledImages`, as `load_images` does.
"""
from __future__ import annotations

import numpy as np
import torch

from vislearn.backbones.imagesets import LabelledImages, load_images
from vislearn.common.errors import UserError

TASKS = ("objects", "colours", "rotation")
HUES = 6
SPLIT_STREAM = {"train": 0, "val": 1, "test": 2}
TASK_STREAM = 0x1005C


def _labels(task: str, split: str, n: int, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, TASK_STREAM, TASKS.index(task), SPLIT_STREAM[split]])
    return rng.integers(k, size=n)


def tint(images: torch.Tensor, hues: np.ndarray, saturation: float = 0.6) -> torch.Tensor:
    """uint8 [N,3,H,W] -> their luminance tinted with hue `hues[i]` (in turns): HSV (hue, saturation, luminance)."""
    x = images.float() / 255.0
    v = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]  # [N,1,H,W]
    h = torch.as_tensor(hues, dtype=torch.float32).view(-1, 1, 1, 1)
    # HSV -> RGB with constant hue and saturation per image: channel n gets v * (1 - s * clamp(min(k, 4 - k), 0, 1))
    n = torch.tensor([5.0, 3.0, 1.0]).view(1, 3, 1, 1)
    k = (n + h * 6) % 6
    rgb = v * (1 - saturation * torch.clamp(torch.minimum(k, 4 - k), 0, 1))
    return (rgb * 255).round().clamp(0, 255).to(torch.uint8)


def task_splits(task: str, img_size: int = 64, seed: int = 0, splits=("train", "val", "test")
                ) -> dict[str, LabelledImages]:
    if task not in TASKS:
        raise UserError(f"--task: unknown task {task!r}; choose from {', '.join(TASKS)}")
    out = {}
    for split in splits:
        base = load_images("objects", split, size=img_size)
        if task == "objects":
            out[split] = base
            continue
        if task == "colours":
            labels = _labels(task, split, len(base.labels), HUES, seed)
            images = tint(base.images, labels / HUES)
            names = [f"hue {360 * i // HUES}" for i in range(HUES)]
        else:
            labels = _labels(task, split, len(base.labels), 4, seed)
            images = torch.stack([torch.rot90(img, int(k), dims=(1, 2)) for img, k in zip(base.images, labels)])
            names = [f"{90 * i} degrees" for i in range(4)]
        out[split] = LabelledImages(images, torch.as_tensor(labels, dtype=torch.int64), names)
    return out
