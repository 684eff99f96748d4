"""Pre-training images from what a user points at: a folder of images, of videos, of frame folders, or any mix
(MVP's "in-the-wild" hand-object frames at our scale: the synthetic Something-Else renders, the real sample's
frames, any folder of videos).

The frames are decoded once into a **frame bank**: uint8 [N, S, S, 3], each frame resized so its short side is S
and centre-cropped (S = `bank_side(img_size)`, a margin above the input size for the random crops), saved in the
run folder (`frames.npy`, atomically) so a resumed run does not decode again. Training crops come from the
bank (`random_crops`: MAE's RandomResizedCrop(scale 0.2-1) and horizontal flip).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from vislearn.backbones.encoders import IMAGENET_MEAN, IMAGENET_STD
from vislearn.common.errors import UserError
from vislearn.common.video import open_video

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_SUFFIXES = (".webm", ".mp4", ".avi", ".mkv", ".mov")


def bank_side(img_size: int) -> int:
    """The bank's frame side: 8/7 of the input (224 -> 256, MAE's resize before its crop)."""
    return int(round(img_size * 8 / 7))


def find_sources(root: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """(images, videos) under `root`, recursively, sorted (a frame folder's JPEGs are images)."""
    root = Path(root)
    if not root.exists():
        raise UserError(f"{root}: no such file or folder")
    if root.is_file():
        files = [root]
    else:
        files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    videos = [p for p in files if p.suffix.lower() in VIDEO_SUFFIXES]
    if not images and not videos:
        raise UserError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) or videos ({', '.join(VIDEO_SUFFIXES)}) "
                        "found")
    return images, videos


def square(frame: np.ndarray, side: int) -> np.ndarray:
    """Resize an RGB uint8 [H,W,3] frame so its short side is `side`, then centre-crop to side x side."""
    h, w = frame.shape[:2]
    scale = side / min(h, w)
    nh, nw = max(side, round(h * scale)), max(side, round(w * scale))
    img = Image.fromarray(frame).resize((nw, nh), Image.BILINEAR)
    top, left = (nh - side) // 2, (nw - side) // 2
    return np.asarray(img.crop((left, top, left + side, top + side)))


def read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable image ({e.__class__.__name__})") from None


def video_frames(path: Path, per_video: int) -> np.ndarray:
    """`per_video` frames spread evenly over the video (all of them if it has fewer)."""
    with open_video(path, fps=None) as reader:
        n = len(reader)
        idx = np.unique(np.linspace(0, n - 1, num=min(per_video, n)).round().astype(np.int64))
        return reader.get_frames(idx)


def build_frame_bank(root: str | os.PathLike, img_size: int, frames_per_video: int = 8, max_frames: int = 20000,
                     seed: int = 0, progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, dict]:
    """The frame bank of `root` (see the module) and what it holds. With more than `max_frames` frames on offer,
    a seeded random subset of the sources is read."""
    images, videos = find_sources(root)
    side = bank_side(img_size)
    rng = np.random.default_rng(seed)
    jobs = [(p, 1) for p in images] + [(p, frames_per_video) for p in videos]
    if sum(k for _, k in jobs) > max_frames:
        order = rng.permutation(len(jobs))
        chosen, total = [], 0
        for i in order:
            if total >= max_frames:
                break
            chosen.append(int(i))
            total += jobs[i][1]
        jobs = [jobs[i] for i in sorted(chosen)]
    frames: list[np.ndarray] = []
    for done, (path, k) in enumerate(jobs):
        got = read_image(path)[None] if k == 1 and path.suffix.lower() in IMAGE_SUFFIXES else video_frames(path, k)
        frames.extend(square(f, side) for f in got)
        if progress:
            progress(done + 1, len(jobs))
    bank = np.stack(frames[:max_frames])
    info = {"root": os.fspath(root), "images": sum(1 for p, _ in jobs if p.suffix.lower() in IMAGE_SUFFIXES),
            "videos": sum(1 for p, _ in jobs if p.suffix.lower() in VIDEO_SUFFIXES), "frames": len(bank),
            "side": side, "frames_per_video": frames_per_video, "max_frames": max_frames, "seed": seed}
    return bank, info


def normalise(images: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """uint8 [B,3,H,W] (or [B,H,W,3]) -> float normalised [B,3,H,W]."""
    if images.shape[-1] == 3 and images.shape[1] != 3:
        images = images.permute(0, 3, 1, 2)
    x = images.float() / 255.0
    m = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - m) / s


def sample_box(rng: np.random.Generator, side: int, scale: tuple[float, float] = (0.2, 1.0),
               ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """RandomResizedCrop's box in a side x side image: (left, top, width, height) in whole pixels, area a
    `scale` fraction of the image and aspect within `ratio` (the whole image after 10 failed draws)."""
    for _ in range(10):
        area = side * side * rng.uniform(*scale)
        aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
        w, h = int(round(np.sqrt(area * aspect))), int(round(np.sqrt(area / aspect)))
        if 0 < w <= side and 0 < h <= side:
            break
    else:
        w = h = side
    top, left = int(rng.integers(0, side - h + 1)), int(rng.integers(0, side - w + 1))
    return left, top, w, h


def random_crops(bank: np.ndarray, indices: np.ndarray, size: int, rng: np.random.Generator,
                 scale: tuple[float, float] = (0.2, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> torch.Tensor:
    """RandomResizedCrop + horizontal flip of bank frames `indices` -> uint8 [B,3,size,size], drawn from `rng`
    (so a resumed run crops as the uninterrupted one)."""
    side = bank.shape[1]
    out = torch.empty(len(indices), 3, size, size, dtype=torch.uint8)
    for j, i in enumerate(indices):
        left, top, w, h = sample_box(rng, side, scale, ratio)
        # np.array copies: the bank may be a read-only memory map
        crop = torch.from_numpy(np.array(bank[i, top:top + h, left:left + w])).permute(2, 0, 1)
        crop = torch.nn.functional.interpolate(crop[None].float(), size=(size, size), mode="bilinear",
                                               align_corners=False, antialias=True)[0]
        if rng.random() < 0.5:
            crop = crop.flip(-1)
        out[j] = crop.round().clamp(0, 255).to(torch.uint8)
    return out
