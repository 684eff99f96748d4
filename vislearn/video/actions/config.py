"""Run configuration: one dataclass, defaults from a YAML file, overrides as `key=value`.

The defaults are the official Something-Else recipe for real data (SGD lr 0.01, momentum 0.9,
weight decay 1e-4, 50 epochs, lr x0.1 at epochs 24/35/45, gradient-norm clip 5, batch 72).
A YAML file only sets values of these fields; an unknown key is an error that lists the valid
ones. The resolved configuration is written next to the results (`config.yaml`).
"""
from __future__ import annotations

import dataclasses
import math
import os
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml

from vislearn.common.errors import UserError
from vislearn.common.files import input_file, write_text
from vislearn.video.data.clip_defaults import CLIP_DEFAULTS as CLIP
from vislearn.video.data.frame_size import recorded_frame_size
from vislearn.video.data.sampling import SAMPLERS


@dataclass
class TrainConfig:
    # data
    split: str = ""  # split folder: labels.json, train.json, validation.json (from `vislearn video splits`)
    boxes: str = ""  # Something-Else JSON or box store (empty: a scene-only model needs none)
    videos: str = ""  # folder of <id>.webm/.mp4 or <id>/0001.jpg frame folders (only for pixel models)
    eval_set: str = "validation"  # the split file evaluated at the end (the held-out side of the split)
    holdout_fraction: float = 0.1  # part of train.json kept aside for model selection (never the eval set)
    # the clip: ClipDataset's defaults too (data.clip_defaults, where each is explained)
    num_box_frames: int = CLIP.num_box_frames
    num_slots: int = CLIP.num_slots
    num_rgb_frames: int = CLIP.num_rgb_frames
    rgb_sampler: str = CLIP.rgb_sampler  # segment (TSN) | strided (frames 2 apart: the official 16-frame clip)
    input_size: int = CLIP.input_size
    crop: str = CLIP.crop  # full | multiscale | center
    official_slots: bool = CLIP.official_slots  # reproduce the official hand-in-last-slot layout without a mask
    frame_size: list = field(default_factory=list)  # [w, h] of the videos when known (boxes are pixels);
    # empty: the data set's own description where it has one (the synthetic set's synthetic.json: see
    # with_data_frame_size), else coordinate-only models infer it from the box extent; pixel models
    # read it from the frames
    # model
    model: str = "stin_oie_nl"
    model_args: dict = field(default_factory=dict)  # extra keyword arguments for the model builder
    init_checkpoint: str = ""  # initialise weights from a checkpoint (model state only; an output layer
    # of another class count is left at its initialisation: few-shot fine-tuning)
    trainable: str = "all"  # all | head (the `classifier` MLP) | last (the final layer only, the paper's few-shot)
    # optimisation (official recipe)
    epochs: int = 50
    batch_size: int = 72  # global batch (divided between torchrun processes)
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_steps: list = field(default_factory=lambda: [24, 35, 45])
    lr_gamma: float = 0.1
    clip_grad_norm: float = 5.0
    label_smoothing: float = 0.0
    # running
    workers: int = 2
    threads: int = 0  # torch CPU threads; 0: the cores left after one per data-loader worker (oversubscribed
    # OpenMP threads spin and can slow a step down 10x)
    device: str = "auto"  # auto | cpu | cuda | cuda:N (vislearn.common.device)
    amp: bool = True  # bfloat16 autocast on CUDA (ignored on CPU)
    amp_cpu: bool = False  # bfloat16 autocast on the CPU too: ~1.7x faster STIN steps on CPUs with bfloat16
    # units (AVX512-BF16, AMX); off by default as results are not bit-identical to float32
    seed: int = 0
    out: str = "runs/default"
    eval_views: list = field(default_factory=lambda: [1, 1])  # final evaluation: clips x crops
    max_videos: int = 0  # use only the first N training videos (0: all); for quick checks
    feature_cache: str = ""  # folder for a trunk's frozen per-frame features (video.actions.feature_cache); "auto":
    # $XDG_CACHE_HOME/something-else/frame-features; empty: off (pixels every epoch)
    log_every: int = 20

    def validate(self) -> None:
        for key in ("epochs", "batch_size"):
            if getattr(self, key) < 1:
                raise UserError(f"{key}={getattr(self, key)}: must be at least 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise UserError(f"lr={self.lr}: must be a finite number above 0")
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise UserError(f"holdout_fraction must be in [0, 1), got {self.holdout_fraction}")
        if self.rgb_sampler not in SAMPLERS:
            renamed = " ('official' is now called 'strided')" if self.rgb_sampler == "official" else ""
            raise UserError(f"rgb_sampler must be one of {', '.join(SAMPLERS)}, got {self.rgb_sampler!r}{renamed}")
        if self.trainable not in ("all", "head", "last"):
            raise UserError(f"trainable must be 'all', 'head' or 'last', got {self.trainable!r}")
        if self.crop not in ("full", "multiscale", "center"):
            raise UserError(f"crop must be 'full', 'multiscale' or 'center', got {self.crop!r}")
        if len(self.eval_views) != 2:
            raise UserError(f"eval_views must be [clips, crops], got {self.eval_views}")
        if self.frame_size and not (len(self.frame_size) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in self.frame_size)):
            raise UserError(f"frame_size: must be [width, height] in pixels (or left out), got {self.frame_size}")


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


def _coerce(name: str, value: Any) -> Any:
    """Convert a YAML/command-line value to the field's type, with a clear error."""
    hints = typing.get_type_hints(TrainConfig)
    kind = hints[name]
    if isinstance(value, str) and kind is not str:
        value = yaml.safe_load(value) if value != "" else value
    try:
        if kind is bool:
            if not isinstance(value, bool):
                raise TypeError
            return value
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value)
        if kind is float:
            return float(value)
        if kind is str:
            return "" if value is None else str(value)
        if kind is list:
            return list(value) if isinstance(value, (list, tuple)) else [value]
        if kind is dict:
            if value is None:
                return {}
            if not isinstance(value, dict):
                raise TypeError
            return dict(value)
    except (TypeError, ValueError):
        pass
    else:
        return value
    raise UserError(f"config key {name!r}: expected {kind.__name__}, got {value!r}")


def apply(cfg: TrainConfig, values: dict, source: str) -> TrainConfig:
    valid = field_names()
    for key, value in values.items():
        if key not in valid:
            raise UserError(f"{source}: unknown config key {key!r}; valid keys: {', '.join(valid)}")
        if key == "model_args" and isinstance(value, dict):
            merged = dict(cfg.model_args)
            merged.update(value)
            value = merged
        setattr(cfg, key, _coerce(key, value))
    return cfg


def parse_overrides(items: list[str]) -> dict:
    """['lr=0.1', 'model_args.feature_dim=128'] -> {'lr': '0.1', 'model_args': {'feature_dim': 128}}."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"override {item!r} is not key=value")
        key, value = item.split("=", 1)
        if key.startswith("model_args."):
            out.setdefault("model_args", {})[key.split(".", 1)[1]] = yaml.safe_load(value)
        else:
            out[key] = value
    return out


def load_config(path: str | os.PathLike | None, overrides: list[str] | None = None) -> TrainConfig:
    cfg = TrainConfig()
    if path:
        path = input_file(path, "config file", "a YAML config file")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise UserError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(values, dict):
            raise UserError(f"{path}: expected a mapping of config keys")
        base = values.pop("base", None)  # a config may extend another one (path relative to it)
        if base:
            cfg = load_config(path.parent / base)
        apply(cfg, values, str(path))
    apply(cfg, parse_overrides(overrides or []), "command line")
    cfg.validate()
    return cfg


def to_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg: TrainConfig, path: str | os.PathLike) -> None:
    write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
