"""Augmented views of an image that remember how they were made.

ReSim maps windows between two views, so a view keeps its crop box in the source image and whether it was
mirrored (`View.box`, `View.flip`). LooC gives a query and a key the same draw of one augmentation and independent
draws of the others, so each augmentation is drawn apart (`draw_view(..., shared=...)`).

The recipe is MoCo-v2's: RandomResizedCrop (scale 0.2-1), horizontal flip, colour jitter (brightness, contrast,
saturation 0.4, hue 0.1; p 0.8), grayscale (p 0.2), Gaussian blur (p 0.5), and for LooC's comparisons a rotation
by a multiple of 90 degrees. The three augmentations LooC can leave out of an embedding space's invariance
(`AUGMENTATIONS`): "colour" (jitter + grayscale), "rotation", "texture" (blur). Crop and flip are in every view.
Everything is drawn from a numpy Generator whose state the trainers checkpoint: a resumed run draws the same views.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

from ..frames import sample_box

AUGMENTATIONS = ("colour", "rotation", "texture")


@dataclass(frozen=True)
class Colour:
    jitter: tuple[float, float, float, float] | None  # brightness, contrast, saturation factors, hue shift; None: off
    gray: bool


@dataclass(frozen=True)
class Texture:
    sigma: float  # Gaussian blur sigma in pixels of the view; 0: off


@dataclass(frozen=True)
class Rotation:
    quarter_turns: int  # counter-clockwise, 0-3


@dataclass(frozen=True)
class View:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in source pixels (continuous: pixel i spans [i, i+1))
    flip: bool
    colour: Colour
    texture: Texture
    rotation: Rotation

    def augmentation(self, name: str):
        return getattr(self, name)


@dataclass
class AugmentConfig:
    scale: tuple[float, float] = (0.2, 1.0)
    jitter_p: float = 0.8
    strength: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    gray_p: float = 0.2
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 1.5)  # MoCo-v2's 0.1-2.0 at 224 px; 64-px views need less
    rotate: bool = False  # rotation by quarter turns (LooC and its MoCo baseline; not MoCo-v2 or ReSim)
    augmentations: tuple[str, ...] = field(default=AUGMENTATIONS)


def draw_colour(rng: np.random.Generator, cfg: AugmentConfig) -> Colour:
    jitter = None
    if rng.random() < cfg.jitter_p:
        b, c, s, h = cfg.strength
        jitter = (float(rng.uniform(1 - b, 1 + b)), float(rng.uniform(1 - c, 1 + c)),
                  float(rng.uniform(1 - s, 1 + s)), float(rng.uniform(-h, h)))
    return Colour(jitter, bool(rng.random() < cfg.gray_p))


def draw_texture(rng: np.random.Generator, cfg: AugmentConfig) -> Texture:
    return Texture(float(rng.uniform(*cfg.blur_sigma)) if rng.random() < cfg.blur_p else 0.0)


def draw_rotation(rng: np.random.Generator, cfg: AugmentConfig) -> Rotation:
    return Rotation(int(rng.integers(4)) if cfg.rotate else 0)


DRAW = {"colour": draw_colour, "texture": draw_texture, "rotation": draw_rotation}


def draw_view(rng: np.random.Generator, side: int, cfg: AugmentConfig, shared: View | None = None,
              share: tuple[str, ...] = ()) -> View:
    """A view of a side x side source image: its own crop and flip; augmentation `a` copied from `shared` for
    `a` in `share`, drawn afresh otherwise (all draws happen either way, so the stream does not depend on what
    is shared)."""
    left, top, w, h = sample_box(rng, side, cfg.scale)
    flip = bool(rng.random() < 0.5)
    drawn = {name: DRAW[name](rng, cfg) for name in AUGMENTATIONS}
    for name in share:
        drawn[name] = shared.augmentation(name)
    return View((float(left), float(top), float(left + w), float(top + h)), flip, drawn["colour"],
                drawn["texture"], drawn["rotation"])


def render_view(image: np.ndarray, view: View, size: int) -> torch.Tensor:
    """uint8 [S,S,3] source image -> float [3,size,size] in 0..1: crop, resize, flip, colour, blur, rotation."""
    x0, y0, x1, y1 = (int(v) for v in view.box)
    crop = torch.from_numpy(np.array(image[y0:y1, x0:x1])).permute(2, 0, 1)[None].float() / 255.0
    x = torch.nn.functional.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False,
                                        antialias=True)[0].clamp(0, 1)
    if view.flip:
        x = x.flip(-1)
    if view.colour.jitter is not None:
        b, c, s, h = view.colour.jitter
        x = TF.adjust_hue(TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness(x, b), c), s), h)
    if view.colour.gray:
        x = TF.rgb_to_grayscale(x, num_output_channels=3)
    if view.texture.sigma > 0:
        k = 2 * int(np.ceil(3 * view.texture.sigma)) + 1
        x = TF.gaussian_blur(x, [k, k], [view.texture.sigma, view.texture.sigma])
    if view.rotation.quarter_turns:
        x = torch.rot90(x, view.rotation.quarter_turns, dims=(1, 2))
    return x


def render_views(bank: np.ndarray, indices, views: list[View], size: int) -> torch.Tensor:
    """Views of bank images `indices` (one view each) -> float [B,3,size,size] in 0..1."""
    return torch.stack([render_view(bank[i], v, size) for i, v in zip(indices, views)])
