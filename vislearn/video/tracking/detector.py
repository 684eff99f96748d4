"""Hand/object detector: a torchvision detection network with the classes (background,) hand, object.

Architectures (`ARCHS`):
- on torchvision's ImageNet MobileNetV2 (`vislearn.backbones.detection`: MobileNetV2 + feature pyramid at
  strides 8-64): `mobilenet_v2_fcos` (the default: FCOS, anchor-free), `mobilenet_v2_frcnn`
  (Faster R-CNN), `mobilenet_v2_retinanet`, `mobilenet_v2_frcnn_c4` (Faster R-CNN on the stride-32
  map, torchvision's tutorial); measured against each other in `bench/bench_detector_heads.py`;
- torchvision's own Faster R-CNNs: `mobilenet_v3` = `fasterrcnn_mobilenet_v3_large_fpn` and
  `resnet50_v2` = `fasterrcnn_resnet50_fpn_v2` (for a GPU).
Models are always built with random weights: nothing is downloaded. Weights come from local files only:
- `backbone_weights` (`load_backbone_from_classifier`): an ImageNet classification state dict of the
  backbone: a known name of `vislearn.common.weights` ("mobilenet_v2_imagenet", the default of the MobileNetV2
  architectures: the verified file of an installed package) or a file path (torchvision's
  `mobilenet_v2-*.pth`, `mobilenet_v3_large-*.pth`, `resnet50-*.pth`, or any state dict with the same
  keys); the backbone's BatchNorm is then frozen and only the last `trainable_layers` stages train, as
  torchvision does for pretrained backbones;
- `init` (`load_detector_init`): a detector state dict (e.g. torchvision's COCO `fasterrcnn_*` file, or
  a checkpoint of this module): every tensor whose name and shape match is loaded (the 91-class COCO
  head is not).
A checkpoint of this module carries its `DetectorSpec`, so `load_detector(path)` alone rebuilds it.

Frames: a video (or frame folder) is decoded at 12 fps; decoded frame i carries the boxes of
annotation frame `<id>/{i+1:04d}.jpg`. Training samples `frames_per_video` annotated frames of
each training video per epoch (fresh ones every epoch, seeded); held-out AP uses
`eval_frames_per_video` evenly spaced annotated frames of each held-out video.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from vislearn.common.checkpoint import check_format, load_state, read_state_dict, read_torch_file, save_checkpoint
from vislearn.common.errors import UserError
from vislearn.common.freeze import freeze, freeze_batchnorm
from vislearn.common.weights import resolve_weights
from vislearn.video.data.annotations import VideoBoxes
from vislearn.common.video import VideoReader, open_video, video_id_of
from vislearn.backbones.detection import HEADS, frcnn_options
from .detections import CLASSES, VideoDetections, box_targets, spaced_annotated_frames

CHECKPOINT_KIND = "se-tracking-detector"


@dataclass
class DetectorSpec:
    """Everything needed to rebuild the network (weights aside); stored in every checkpoint."""

    arch: str = "mobilenet_v3"  # the field's default reads checkpoints written before it existed
    min_size: int = 320  # shorter image side fed to the network (SSv2 frames are 240 px high)
    max_size: int = 640
    classes: tuple[str, ...] = CLASSES
    frozen_bn: bool = False  # backbone BatchNorm frozen (set when starting from pretrained weights)
    trainable_layers: int | None = None  # backbone stages that train (None: all; 3 with frozen_bn)
    score_thresh: float = 0.05  # keep low-score boxes: the tracker's second stage uses them
    detections_per_img: int = 30
    # region proposals kept per image (after NMS) for the box head: SSv2 frames hold a hand and a
    # few objects, and the box head's cost grows with this (torchvision: 1000 test / 2000 train;
    # its low-resolution MobileNet model uses 150 at test time)
    proposals_test: int = 150
    proposals_train: int = 600
    roi_samples: int = 256  # proposals sampled per training image for the box head (torchvision 512)
    # MobileNetV2 architectures: channels of the feature pyramid, units of the Faster R-CNN box head,
    # convolutions per FCOS branch (torchvision: 256, 1024, 4; smaller here for the CPU)
    fpn_channels: int = 128
    box_head_dim: int = 256
    head_convs: int = 2

    @classmethod
    def from_dict(cls, d: dict) -> "DetectorSpec":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "classes" in known:
            known["classes"] = tuple(known["classes"])
        return cls(**known)


def _mobilenet(spec: DetectorSpec, num_classes: int, common: dict) -> nn.Module:
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn

    return fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None, num_classes=num_classes,
                                             **frcnn_options(spec), **common)


def _resnet50(spec: DetectorSpec, num_classes: int, common: dict) -> nn.Module:
    from torchvision.models.detection import fasterrcnn_resnet50_fpn_v2

    return fasterrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=num_classes,
                                      **frcnn_options(spec), **common)


ARCHS: dict[str, Callable[..., nn.Module]] = {
    **{f"mobilenet_v2_{head}": build for head, build in HEADS.items()},
    "mobilenet_v3": _mobilenet, "resnet50_v2": _resnet50}
DEFAULT_ARCH = "mobilenet_v2_fcos"
# (min_size, max_size) of the architectures that do not see frames at their own size; train-detector
# feeds the MobileNetV2 ones the training frames' own size (its --min-size / --max-size change it)
DEFAULT_SIZES = {"mobilenet_v3": (320, 640), "resnet50_v2": (480, 864)}
DEFAULT_PROPOSALS = {"mobilenet_v3": (150, 600), "resnet50_v2": (300, 1000)}  # (test, train)
DEFAULT_WEIGHTS = {arch: "mobilenet_v2_imagenet" for arch in ARCHS if arch.startswith("mobilenet_v2")}


def default_spec(arch: str, **overrides) -> DetectorSpec:
    if arch not in ARCHS:
        raise UserError(f"unknown detector architecture {arch!r} (choose from {', '.join(ARCHS)})")
    lo, hi = DEFAULT_SIZES.get(arch, (240, 480))
    test, train = DEFAULT_PROPOSALS.get(arch, (150, 600))
    kw = {"arch": arch, "min_size": lo, "max_size": hi, "proposals_test": test, "proposals_train": train}
    kw.update({k: v for k, v in overrides.items() if v is not None})
    return DetectorSpec(**kw)


def build_detector(spec: DetectorSpec) -> nn.Module:
    """The network of `spec`, randomly initialised (no download, ever)."""
    if spec.arch not in ARCHS:
        raise UserError(f"unknown detector architecture {spec.arch!r} (choose from {', '.join(ARCHS)})")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "trainable_backbone_layers has no effect": handled below
        model = ARCHS[spec.arch](spec, len(spec.classes) + 1, {"min_size": spec.min_size, "max_size": spec.max_size})
    if spec.frozen_bn:
        freeze_batchnorm(model.backbone.body)
    layers = spec.trainable_layers if spec.trainable_layers is not None else (3 if spec.frozen_bn else None)
    if layers is not None:
        _freeze_stages(model.backbone.body, spec.arch, layers)
    return model


def _freeze_stages(body: nn.Module, arch: str, trainable: int) -> None:
    """Freeze all but the last `trainable` backbone stages (torchvision's rule; a stage ends where the
    resolution halves)."""
    if arch.startswith("mobilenet"):
        blocks = list(body.children())
        stages = [0] + [i for i, b in enumerate(blocks) if getattr(b, "_is_cn", False)] + [len(blocks) - 1]
        trainable = max(0, min(trainable, len(stages)))
        freeze_before = len(blocks) if trainable == 0 else stages[len(stages) - trainable]
        for b in blocks[:freeze_before]:
            freeze(b)
    else:
        names = ["layer4", "layer3", "layer2", "layer1", "conv1"][:max(0, min(trainable, 5))]
        if trainable >= 5:
            names.append("bn1")
        for name, p in body.named_parameters():
            if not any(name.startswith(n) for n in names):
                p.requires_grad_(False)


def _load_matching(target: nn.Module, state: dict[str, torch.Tensor], path, min_fraction: float, what: str) -> dict:
    own = {k: v for k, v in target.state_dict().items() if not k.endswith("num_batches_tracked")}
    usable = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if len(usable) < min_fraction * len(own):
        raise UserError(f"{path}: only {len(usable)} of {len(own)} {what} tensors match by name and shape "
                        f"(is this a weights file for this architecture?)")
    target.load_state_dict(usable, strict=False)
    return {"loaded": len(usable), "of": len(own), "skipped": sorted(k for k in state if k not in usable)}


def load_backbone_from_classifier(model: nn.Module, weights: str | os.PathLike, arch: str) -> dict:
    """Load the backbone body from a classification network's state dict: a known name of
    `vislearn.common.weights` (verified) or a file (torchvision's ImageNet `mobilenet_v2-*.pth`,
    `mobilenet_v3_large-*.pth`, `resnet50-*.pth`, or any with the same keys): the tensors that match by
    name and shape (at least 90% of the body's), the classifier's own layers left out.

    An encoder checkpoint of a multi-scale backbone (`vislearn pretrain moco/resim/looc/convert`:
    `mobilenet_v2_ms` for the mobilenet_v2_* detectors, `resnet50_ms` for resnet50_v2; or any state dict with
    `body.*` keys) loads the same way, and its feature pyramid (`fpn.*`, the detector's own names) loads too
    when every tensor fits the detector's; otherwise the body alone, with `note` saying why. Returns
    {"loaded", "of", "skipped"} and, for encoder files, "fpn_loaded", "fpn_of" and "note"."""
    path = resolve_weights(weights)
    state = read_state_dict(path)
    if any(k.startswith("body.") for k in state):
        return _load_encoder(model, state, path)
    if arch.startswith("mobilenet"):  # classification keys "features.N..." -> body "N..."
        state = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")} or state
    else:  # resnet: the body keeps conv1/bn1/layer1-4; drop the classifier
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    state = {k[len("backbone.body."):] if k.startswith("backbone.body.") else k: v for k, v in state.items()}
    return _load_matching(model.backbone.body, state, path, 0.9, "backbone")


def _load_encoder(model: nn.Module, state: dict[str, torch.Tensor], path) -> dict:
    """The body (by name and shape, as a classifier's) and, when it fits whole, the pyramid of an encoder file."""
    body = {k[len("body."):]: v for k, v in state.items() if k.startswith("body.")}
    pyramid = {k[len("fpn."):]: v for k, v in state.items() if k.startswith("fpn.")}
    try:
        info = _load_matching(model.backbone.body, body, path, 0.9, "backbone")
    except UserError as e:
        raise UserError(f"{e}; an encoder checkpoint's body must be the detector's (mobilenet_v2_ms for the "
                        "mobilenet_v2_* detectors, resnet50_ms for resnet50_v2)") from None
    target = getattr(model.backbone, "fpn", None)
    own = target.state_dict() if target is not None else {}
    info.update(fpn_loaded=0, fpn_of=len(own), note="")
    if not pyramid:
        info["note"] = "the file has no feature pyramid: the detector's starts at random"
    elif target is None:
        info["note"] = "the detector has no feature pyramid: the file's is not used"
    elif pyramid.keys() == own.keys() and all(pyramid[k].shape == own[k].shape for k in own):
        target.load_state_dict(pyramid)
        info["fpn_loaded"] = len(pyramid)
    else:
        width = (lambda d: tuple(d["layer_blocks.0.0.weight"].shape)[0] if "layer_blocks.0.0.weight" in d else "?")
        info["note"] = (f"the file's feature pyramid ({width(pyramid)} channels, {len(pyramid)} tensors) does not fit "
                        f"the detector's ({width(own)} channels, {len(own)} tensors): body only, the pyramid starts "
                        "at random")
    return info


def describe_backbone_load(info: dict, weights) -> str:
    """The log line of `load_backbone_from_classifier`'s result."""
    pyramid = f", pyramid {info['fpn_loaded']}/{info['fpn_of']}" if "fpn_loaded" in info else ""
    note = f" ({info['note']})" if info.get("note") else ""
    return f"backbone weights: {info['loaded']}/{info['of']} tensors{pyramid} from {weights}{note}"


def load_detector_init(model: nn.Module, path: str | os.PathLike) -> dict:
    """Load a detector state dict (same architecture; the class head may differ)."""
    return _load_matching(model, read_state_dict(path), path, 0.8, "detector")


# ---------------------------------------------------------------------------------------- data

@dataclass
class VideoItem:
    video_id: str
    path: Path
    boxes: VideoBoxes


class FrameSamples(torch.utils.data.Dataset):
    """Item i = a few annotated frames of video i with their boxes, as torchvision detection
    inputs: a list of (image float [3,H,W] in 0..1, {"boxes": [n,4], "labels": [n] in 1..C}).

    train=True: `frames` random annotated frames per epoch (seed, epoch, index decide them, so the
    choice does not depend on worker processes), random horizontal flip (hand/object have no
    left/right). train=False: `frames` evenly spaced annotated frames, always the same.
    """

    def __init__(self, items: Sequence[VideoItem], frames: int, train: bool, seed: int = 0, flip: bool = True):
        self.items = list(items)
        self.frames = frames
        self.train = train
        self.seed = seed
        self.flip = flip and train
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def choose(self, item: VideoItem, num_decoded: int, index: int) -> np.ndarray:
        if not self.train:
            return spaced_annotated_frames(item.boxes, num_decoded, self.frames)
        annotated = item.boxes.frame_index[item.boxes.frame_index < num_decoded]
        if len(annotated) == 0:
            return annotated.astype(np.int64)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return np.sort(rng.choice(annotated, size=min(self.frames, len(annotated)), replace=False)).astype(np.int64)

    def __getitem__(self, index: int) -> list[tuple[torch.Tensor, dict]]:
        item = self.items[index]
        with open_video(item.path) as reader:
            frames = self.choose(item, len(reader), index)
            images = reader.get_frames(frames) if len(frames) else np.zeros((0, 1, 1, 3), np.uint8)
        rng = np.random.default_rng([self.seed, self.epoch, index, 1])
        out = []
        for f, img in zip(frames, images):
            h, w = img.shape[:2]
            boxes, labels = box_targets(item.boxes, int(f), w, h)
            if self.flip and rng.random() < 0.5:
                img = img[:, ::-1]
                boxes = boxes.copy()
                boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
            tensor = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255)
            out.append((tensor, {"boxes": torch.from_numpy(boxes).reshape(-1, 4), "labels": torch.from_numpy(labels + 1),
                                 "frame": int(f), "video_id": item.video_id}))
        return out


def collate(batch: list[list]) -> tuple[list[torch.Tensor], list[dict]]:
    flat = [x for items in batch for x in items]
    return [x[0] for x in flat], [x[1] for x in flat]


# --------------------------------------------------------------------------------- inference

@torch.no_grad()
def predict(model: nn.Module, images: Sequence[torch.Tensor], device: torch.device) -> list[dict]:
    """Per image: {"boxes": float [k,4] pixels, "scores": [k], "labels": [k] class index 0..C-1} (numpy)."""
    model.eval()
    outputs = model([im.to(device, non_blocking=True) for im in images])
    out = []
    for o in outputs:
        keep = o["labels"] > 0  # FCOS/RetinaNet have a never-trained output for the background index
        out.append({"boxes": o["boxes"][keep].float().cpu().numpy(), "scores": o["scores"][keep].float().cpu().numpy(),
                    "labels": o["labels"][keep].cpu().numpy().astype(np.int64) - 1})
    return out


def frames_to_tensors(frames: np.ndarray) -> list[torch.Tensor]:
    return [torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1).float().div_(255) for f in frames]


def detect_video(model: nn.Module, video: str | os.PathLike | VideoReader, device: torch.device,
                 video_id: str | None = None, batch_size: int = 4, score_threshold: float = 0.05,
                 progress: Callable[[int], None] | None = None) -> VideoDetections:
    """Run the detector on every 12-fps frame of a video or frame folder (a path, or an open reader,
    e.g. a `DecodedVideo` that other stages read too)."""
    given = isinstance(video, VideoReader)
    path = video.path if given else Path(video)
    vid = video_id or video_id_of(path)
    frames_out, boxes, scores, labels = [], [], [], []
    n = 0
    with (contextlib.nullcontext(video) if given else open_video(path)) as reader:
        total = len(reader)
        chunk: list[np.ndarray] = []

        def flush(start: int) -> None:
            for k, o in enumerate(predict(model, frames_to_tensors(np.stack(chunk)), device)):
                keep = o["scores"] >= score_threshold
                frames_out.append(np.full(int(keep.sum()), start + k, np.int32))
                boxes.append(o["boxes"][keep]), scores.append(o["scores"][keep]), labels.append(o["labels"][keep])
            if progress:
                progress(len(chunk))

        for frame in reader.iter_frames(chunk=max(batch_size, 8)):
            chunk.append(frame)
            if len(chunk) == batch_size:
                flush(n)
                n += len(chunk)
                chunk = []
        if chunk:
            flush(n)
            n += len(chunk)
    if n == 0:
        raise UserError(f"{path}: no frames decoded")
    cat = (lambda xs, shape, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(shape, dt))
    if n < total:
        import warnings

        warnings.warn(f"{path}: decoded {n} frames, the file announced {total}")
    det = VideoDetections(vid, n, cat(frames_out, (0,), np.int32), cat(boxes, (0, 4), np.float32),
                          cat(scores, (0,), np.float32), cat(labels, (0,), np.int64))
    return det


# -------------------------------------------------------------------------------- checkpoints

def checkpoint_file(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a training run folder's best.pt (else last.pt)."""
    path = Path(path)
    if path.is_dir():  # a training run folder
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
    return path


def read_checkpoint(path: str | os.PathLike) -> dict:
    path = checkpoint_file(path)
    if not path.exists():
        raise UserError(f"{path}: detector checkpoint not found")
    ckpt = read_torch_file(path, "detector checkpoint")  # tensors and plain data only
    if not isinstance(ckpt, dict) or ckpt.get("kind") != CHECKPOINT_KIND or "model" not in ckpt:
        if isinstance(ckpt, dict) and "kind" not in ckpt and {"model_name", "class_names"} <= set(ckpt):
            raise UserError(f"{path}: an action model's checkpoint (of `vislearn video train`), not a detector's; give "
                            "it to `vislearn video evaluate/infer --checkpoint`; --detector takes a detector checkpoint "
                            "of `vislearn video tracking train-detector`")
        raise UserError(f"{path}: not a detector checkpoint of `vislearn video tracking train-detector` "
                        "(to start from other weights use train-detector --init / --backbone-weights)")
    check_format(ckpt, path)
    ckpt["path"] = str(path)
    return ckpt


def save_detector(path: str | os.PathLike, model: nn.Module, spec: DetectorSpec, **extra) -> None:
    """A checkpoint `load_detector` (and `detect --detector`) reads: spec + weights (+ extra keys)."""
    save_checkpoint({"kind": CHECKPOINT_KIND, "spec": asdict(spec) | {"classes": list(spec.classes)},
                     "model": model.state_dict(), **extra}, path)


def load_detector(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[nn.Module, DetectorSpec]:
    ckpt = read_checkpoint(path)
    spec = DetectorSpec.from_dict(ckpt["spec"])
    model = build_detector(spec)
    load_state(model, ckpt["model"], f"{ckpt['path']} ({spec.arch} detector)")
    return model.to(device).eval(), spec
