"""Resizing to SAM's input: the longest side becomes the encoder's `img_size`, the aspect ratio is kept.

The model pads the resized image at the bottom and right (`Sam.preprocess`), so prompts only need scaling,
never shifting. `ResizeLongestSide` has the official class's name and methods and gives the same numbers:
images through PIL's bilinear resize (what the official `apply_image` does via torchvision on a PIL image),
coordinates scaled in float64 (numpy) or float32 (torch).

One deliberate difference: the official `apply_image_torch` computes the target size from the tensor's
batch and channel dimensions (`shape[0], shape[1]`), which is wrong for any BxCxHxW input; here it uses H and W.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F


def preprocess_shape(h: int, w: int, long_side: int) -> tuple[int, int]:
    """(new_h, new_w) with the longest side `long_side`, each side rounded half up (as the official code)."""
    scale = long_side * 1.0 / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


class ResizeLongestSide:
    """Resize images, points and boxes so the image's longest side is `target_length`."""

    def __init__(self, target_length: int) -> None:
        self.target_length = int(target_length)

    @staticmethod
    def get_preprocess_shape(oldh: int, oldw: int, long_side_length: int) -> tuple[int, int]:
        return preprocess_shape(oldh, oldw, long_side_length)

    def _scales(self, original_size) -> tuple[float, float]:
        h, w = int(original_size[0]), int(original_size[1])
        nh, nw = preprocess_shape(h, w, self.target_length)
        return nw / w, nh / h

    # ---------------------------------------------------------------- numpy (one image, its prompts)
    def apply_image(self, image: np.ndarray) -> np.ndarray:
        """uint8 HxWxC -> the resized uint8 image (PIL bilinear, antialiased when shrinking)."""
        nh, nw = preprocess_shape(image.shape[0], image.shape[1], self.target_length)
        pil = Image.fromarray(np.ascontiguousarray(image))
        return np.array(pil.resize((nw, nh), Image.BILINEAR))

    def apply_coords(self, coords: np.ndarray, original_size) -> np.ndarray:
        """Points [..., 2] as (x, y) in the original image -> float64 in the resized image (a new array)."""
        sx, sy = self._scales(original_size)
        out = np.array(coords, dtype=float, copy=True)
        out[..., 0] *= sx
        out[..., 1] *= sy
        return out

    def apply_boxes(self, boxes: np.ndarray, original_size) -> np.ndarray:
        """Boxes [B, 4] (x1, y1, x2, y2) -> the same in the resized image, float64 [B, 4]."""
        return self.apply_coords(np.asarray(boxes).reshape(-1, 2, 2), original_size).reshape(-1, 4)

    # ---------------------------------------------------------------- torch (batches)
    def apply_image_torch(self, image: torch.Tensor) -> torch.Tensor:
        """Float BxCxHxW -> resized (bilinear, antialiased). Close to, not equal to, `apply_image`."""
        nh, nw = preprocess_shape(image.shape[-2], image.shape[-1], self.target_length)
        return F.interpolate(image, (nh, nw), mode="bilinear", align_corners=False, antialias=True)

    def apply_coords_torch(self, coords: torch.Tensor, original_size) -> torch.Tensor:
        """Points [..., 2] -> float32 in the resized image (a new tensor)."""
        sx, sy = self._scales(original_size)
        out = coords.to(torch.float, copy=True)
        out[..., 0] *= sx
        out[..., 1] *= sy
        return out

    def apply_boxes_torch(self, boxes: torch.Tensor, original_size) -> torch.Tensor:
        """Boxes [B, 4] -> float32 [B, 4] in the resized image."""
        return self.apply_coords_torch(boxes.reshape(-1, 2, 2), original_size).reshape(-1, 4)
