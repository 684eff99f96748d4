"""Training samples for SAM: an image at the model's input size with up to K of its masks (the paper samples up
to 64 masks per GPU; K = 16 by default here, one image's worth at CPU scale).

The image is resized as the official `ResizeLongestSide` does (long side = img_size, the short side rounded) and
left unpadded: `Sam.preprocess` normalises and pads it. Masks come at the input size padded to a square
(`masks`, for the point sampling of the simulated interaction and for evaluation) and at the low-resolution
logits' size (`low`, 4x the embedding grid, for the loss: `vislearn.segment.losses`). Which masks an image gives
is a function of (seed, draw, index) alone, so a resumed run draws the same masks as an uninterrupted one.

Records are `vislearn.segment.data.sa1b.SegImage`s (or anything with `width`, `height`, `annotations`,
`load_image()` and `masks(indices)`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset


def resized_size(h: int, w: int, long_side: int) -> tuple[int, int]:
    """(h', w') with max(h', w') = long_side, as `ResizeLongestSide.get_preprocess_shape` rounds."""
    scale = long_side / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


def resize_masks(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """bool [K, H, W] -> bool [K, h, w]: area-weighted (antialiased bilinear) resize, then >= 0.5."""
    if tuple(masks.shape[-2:]) == tuple(size):
        return masks.bool()
    soft = F.interpolate(masks[:, None].float(), size=size, mode="bilinear", antialias=True, align_corners=False)
    return soft[:, 0] >= 0.5


def low_res(masks: torch.Tensor, size: int) -> torch.Tensor:
    """Padded input-size masks bool [K, S, S] -> bool [K, size, size] (area average, >= 0.5)."""
    soft = F.adaptive_avg_pool2d(masks[:, None].float(), size)
    return soft[:, 0] >= 0.5


class SegSamples(Dataset):
    """`records` -> dicts: `image` float [3, h, w] (0-255 RGB, resized), `input_size` (h, w), `masks` bool
    [K, S, S] (input size, zero-padded), `low` bool [K, S/4', S/4'] (the logits' grid), `image_id`.

    `low_size`: the low-resolution logits' side (4 x the embedding grid: img_size / 4 for patch 16).
    `min_area`: masks smaller than this many pixels at the input size are not drawn (nor ones empty at low res).
    `hflip`: flip image and masks with probability 1/2 (the only augmentation; off by default)."""

    def __init__(self, records: Sequence, img_size: int, masks_per_image: int = 16, seed: int = 0,
                 low_size: int | None = None, min_area: int = 16, hflip: bool = False):
        self.records = list(records)
        self.img_size, self.k, self.seed = img_size, masks_per_image, seed
        self.low_size = low_size or img_size // 4
        self.min_area, self.hflip = min_area, hflip
        self._images: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        return self.get(index, 0)

    def image(self, index: int) -> torch.Tensor:
        """The resized image (cached: a run visits each image many times)."""
        if index not in self._images:
            rgb = torch.from_numpy(np.array(self.records[index].load_image(), dtype=np.uint8)).permute(2, 0, 1).float()
            size = resized_size(*rgb.shape[-2:], self.img_size)
            if tuple(rgb.shape[-2:]) != size:
                rgb = F.interpolate(rgb[None], size=size, mode="bilinear", antialias=True,
                                    align_corners=False)[0].clamp(0, 255)
            self._images[index] = rgb
        return self._images[index]

    def get(self, index: int, draw: int, all_masks: bool = False) -> dict:
        """Sample `draw` of image `index`: up to K masks chosen at random (seeded by seed, draw, index);
        `all_masks`: every usable mask in file order (evaluation)."""
        rec = self.records[index]
        rng = np.random.default_rng([self.seed, draw, index])
        image = self.image(index)
        h, w = image.shape[-2:]
        n = len(rec.annotations)
        order = np.arange(n) if all_masks else rng.permutation(n)
        want = n if all_masks else self.k
        kept, ids = [], []
        for start in range(0, n, max(want, 1)):  # decode in chunks until K usable masks are found
            chunk = [int(i) for i in order[start:start + max(want, 1)]]
            if not chunk:
                break
            masks = resize_masks(torch.from_numpy(np.asarray(rec.masks(chunk))), (h, w))
            padded = F.pad(masks, (0, self.img_size - w, 0, self.img_size - h))
            small = low_res(padded, self.low_size)
            ok = (masks.flatten(1).sum(1) >= self.min_area) & small.flatten(1).any(1)
            for j in torch.nonzero(ok).flatten().tolist():
                kept.append((padded[j], small[j]))
                ids.append(chunk[j])
            if len(kept) >= want:
                break
        kept, ids = kept[:want], ids[:want]
        full = torch.stack([m for m, _ in kept]) if kept else torch.zeros(0, self.img_size, self.img_size, dtype=bool)
        low = torch.stack([m for _, m in kept]) if kept else torch.zeros(0, self.low_size, self.low_size, dtype=bool)
        if self.hflip and not all_masks and rng.random() < 0.5:
            image = image.flip(-1)
            full = F.pad(full[..., :h, :w].flip(-1), (0, self.img_size - w, 0, self.img_size - h))
            low = low_res(full, self.low_size)
        return {"image": image, "input_size": (int(h), int(w)), "masks": full, "low": low,
                "image_id": getattr(rec, "image_id", index), "annotation_ids": ids}
