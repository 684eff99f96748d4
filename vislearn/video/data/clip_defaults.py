"""The one set of clip defaults: what a clip of a video is when nobody says otherwise.

`ClipDataset`'s keyword defaults and `video.actions.config.TrainConfig`'s fields both come from `CLIP_DEFAULTS`,
so a dataset built without sampling arguments makes the clips a default training run makes. (It lives
here, below both: the data package must not import the actions package, which imports it.)
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClipDefaults:
    num_box_frames: int = 8  # T box frames, TSN segments over the annotated span (the official 8)
    num_slots: int = 4  # N box slots, slot 0 the hand (the official 4)
    official_slots: bool = False  # the official hand-in-last-slot layout without a mask
    num_rgb_frames: int = 8  # T' decoded frames for pixel models
    rgb_sampler: str = "segment"  # segment (TSN) | strided (frames 2 apart: 16 of them is the official clip)
    input_size: int = 112  # side of the square model input (112 on CPU; the paper's 224)
    # full: the whole frame resized to the square input (every box stays in view; SSv2 actions span the
    # frame) | multiscale: TSN/official multi-scale square crops of the short side (on 16:9 frames they can
    # cut away half the width, and the boxes in it) | center
    crop: str = "full"


CLIP_DEFAULTS = ClipDefaults()
