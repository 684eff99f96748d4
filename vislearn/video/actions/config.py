"""Run configuration: one dataclass, defaults from a YAML file, overrides as `key=value`.

The defaults are the official Something-Else recipe for real data (SGD lr 0.01, momentum 0.9,
weight decay 1e-4, 50 epochs, lr x0.1 at epochs 24/35/45, gradient-norm clip 5, batch 72).
A YAML file only sets values of these fields; an unknown key is an error that lists the valid
ones. Every field says which values it takes (`vislearn.common.validate.setting`): each value is
checked as it is set, so a mistake is one line naming the file (or the `key=value` override) and the
key, when the config loads: --dry-run and training alike (and `train()` checks a config built in code
again). The resolved configuration is written next to the results (`config.yaml`).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from vislearn.common.errors import UserError
from vislearn.common.validate import COMMAND_LINE, config_chain, load_yaml, setting, validate
from vislearn.common.validate import apply as apply_values
from vislearn.common.files import write_text
from vislearn.video.data.clip_defaults import CLIP_DEFAULTS as CLIP
from vislearn.video.data.frame_size import recorded_frame_size
from vislearn.video.data.sampling import SAMPLERS


@dataclass
class TrainConfig:
    """Every field says which values it takes (`vislearn.common.validate.setting`); `validate()` checks them all,
    when the config loads (training and --dry-run alike) and again when training starts."""

    # data
    split: str = ""  # split folder: labels.json, train.json, validation.json (from `vislearn video splits`)
    boxes: str = ""  # Something-Else JSON or box store (empty: a scene-only model needs none)
    videos: str = ""  # folder of <id>.webm/.mp4 or <id>/0001.jpg frame folders (only for pixel models)
    train_boxes_also: str = ""  # box-only models: a second box file or store in which every training video is also
    # seen (the training set holds each video twice, once with `boxes`, once with these); the held-out part and the
    # evaluation read `boxes` only. The tracked-box row: trained on the tracks and the ground-truth boxes (docs/video.md)
    eval_set: str = "validation"  # the split file evaluated at the end (the held-out side of the split)
    holdout_fraction: float = setting(0.1, min=0, below=1)  # part of train.json kept aside for model selection
    # (never the eval set)
    # the clip: ClipDataset's defaults too (data.clip_defaults, where each is explained)
    num_box_frames: int = setting(CLIP.num_box_frames, min=1)
    num_slots: int = setting(CLIP.num_slots, min=1)
    num_rgb_frames: int = setting(CLIP.num_rgb_frames, min=1)
    rgb_sampler: str = setting(CLIP.rgb_sampler, choices=SAMPLERS, hints={"official": " ('official' is now called 'strided')"})
    # segment (TSN) | strided (frames 2 apart: the official 16-frame clip)
    input_size: int = setting(CLIP.input_size, min=1)
    crop: str = setting(CLIP.crop, choices=("full", "multiscale", "center"))
    official_slots: bool = CLIP.official_slots  # reproduce the official hand-in-last-slot layout without a mask
    frame_size: list[int] = setting(factory=list, min=1, length=(0, 2))  # [w, h] of the videos when known (boxes
    # are pixels); empty: the data set's own description where it has one (the synthetic set's synthetic.json: see
    # with_data_frame_size), else coordinate-only models infer it from the box extent; pixel models
    # read it from the frames
    # model
    model: str = "stin_oie_nl"
    model_args: dict = field(default_factory=dict)  # extra keyword arguments for the model builder
    init_checkpoint: str = ""  # initialise weights from a checkpoint (model state only; an output layer
    # of another class count is left at its initialisation: few-shot fine-tuning)
    trainable: str = setting("all", choices=("all", "head", "last"))  # all | head (the `classifier` MLP) | last
    # (the final layer only, the paper's few-shot)
    # optimisation (official recipe)
    epochs: int = setting(50, min=1)
    batch_size: int = setting(72, min=1)  # global batch (divided between torchrun processes)
    lr: float = setting(0.01, above=0)
    momentum: float = setting(0.9, min=0, max=1)
    weight_decay: float = setting(1e-4, min=0)
    lr_steps: list[int] = setting(factory=lambda: [24, 35, 45], min=0)  # epochs after which lr *= lr_gamma
    lr_gamma: float = setting(0.1, above=0)
    clip_grad_norm: float = setting(5.0, min=0)  # 0: no clipping
    label_smoothing: float = setting(0.0, min=0, max=1)
    stream_lr_scale: float = setting(1.0, above=0)  # fusion: the streams' learning rate is lr x this (below 1 for
    # streams that start from trained runs and are fine-tuned jointly with a fresh head)
    # running
    workers: int = setting(2, min=0)
    threads: int = setting(0, min=0)  # torch CPU threads; 0: the cores left after one per data-loader worker
    # (oversubscribed OpenMP threads spin and can slow a step down 10x)
    device: str = "auto"  # auto | cpu | cuda | cuda:N (vislearn.common.device)
    amp: bool = True  # bfloat16 autocast on CUDA (ignored on CPU)
    amp_cpu: bool = False  # bfloat16 autocast on the CPU too: ~1.7x faster STIN steps on CPUs with bfloat16
    # units (AVX512-BF16, AMX); off by default as results are not bit-identical to float32
    seed: int = setting(0, min=0, max=2**32 - 1)  # (NumPy's seeds are 32-bit)
    out: str = "runs/default"
    eval_views: list[int] = setting(factory=lambda: [1, 1], min=1, length=2)  # final evaluation: [clips, crops]
    max_videos: int = setting(0, min=0)  # use only the first N training videos (0: all); for quick checks
    feature_cache: str = ""  # folder for a trunk's frozen per-frame features (video.actions.feature_cache); "auto":
    # $XDG_CACHE_HOME/something-else/frame-features; empty: off (pixels every epoch)
    log_every: int = setting(20, min=0)  # 0: no step lines

    def validate(self, sources: dict[str, str] | None = None) -> None:
        """Every field (`vislearn.common.validate.validate`); `sources`: key -> the file (or command line) it came from."""
        validate(self, sources)


def with_data_frame_size(cfg: TrainConfig) -> TrainConfig:
    """`cfg` with the frame size the data set records (`data.frame_size.recorded_frame_size`: the
    synthetic set's synthetic.json) when the config pins none. A pinned frame_size the data contradicts
    is refused: boxes are pixels of the real frames, and normalising them by another size clips or
    shrinks every box without a word. Without such a record (real SSv2, whose videos differ in size)
    `cfg` is returned as it is."""
    recorded = recorded_frame_size(cfg.videos, cfg.boxes)
    if recorded is None:
        return cfg
    (w, h), source = recorded
    if not cfg.frame_size:
        return dataclasses.replace(cfg, frame_size=[w, h])
    if list(cfg.frame_size) != [w, h]:
        raise UserError(f"frame_size: {list(cfg.frame_size)}, but {source} says the videos are {w}x{h}; "
                        f"set frame_size=[{w},{h}] or leave it out (it is then read from there)")
    return cfg


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


def apply(cfg: TrainConfig, values: dict, source: str, sources: dict[str, str] | None = None) -> TrainConfig:
    """Set `values` from `source` (a file, "command line", "checkpoint config"), each converted to its field's type
    and checked (`vislearn.common.validate.apply`); `model_args` updates the current arguments."""
    return apply_values(cfg, values, source, sources, merge=("model_args",))


def parse_overrides(items: list[str]) -> dict:
    """['lr=0.1', 'model_args.feature_dim=128'] -> {'lr': '0.1', 'model_args': {'feature_dim': 128}}."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"override {item!r} is not key=value")
        key, value = item.split("=", 1)
        if key.startswith("model_args."):
            out.setdefault("model_args", {})[key.split(".", 1)[1]] = load_yaml(value, item)
        else:
            out[key] = value
    return out


def load_config(path: str | os.PathLike | None, overrides: list[str] | None = None) -> TrainConfig:
    """The defaults, then the YAML file `path` (after the configs it extends with `base:`), then `overrides`
    (`key=value`); every value is checked as it is set, so an error names the file or the override it came from."""
    cfg, sources = TrainConfig(), {}
    for file, values in config_chain(path) if path else []:
        apply(cfg, values, str(file), sources)
    apply(cfg, parse_overrides(overrides or []), COMMAND_LINE, sources)
    cfg.validate(sources)
    return cfg


def to_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg: TrainConfig, path: str | os.PathLike) -> None:
    write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
