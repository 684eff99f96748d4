"""The frozen per-frame part of a trunk, computed once per video and kept on disk.

An ImageNet trunk with frozen lower blocks (`MobileNetV2Video` with `frozen_blocks` > 0) spends most of
its time there, and what they compute for a video does not change while their weights, the frames and
the view stay the same. With `feature_cache` set, training reads that part from disk and runs only the
trainable blocks: on 2 CPU cores this turns minutes per epoch into seconds, and the one-time cost is
shared by every run (seeds, splits, fusion, STRG) over the same videos.

Never stale, by construction:
- the cache folder is named by a sha256 of the frozen weights themselves (`frozen_digest`: the same
  frozen blocks from an ImageNet file or from a trained run share one folder, other weights get another)
  and of the clip recipe: frame sampler, view (crop, input size) and pixel normalisation, as the
  evaluation-mode `ClipDataset` has them. Change any of these and another folder is used (old folders
  are only read again when everything matches them; delete them freely);
- each entry (one `.npz` per video, float32, so cached and pixel paths give the same numbers) records
  the video file's real path, size and modification time, and is recomputed when they differ;
- entries are written to a temporary file and renamed: a killed run leaves no half-written entry.

What a model trains on from the cache is each video's evaluation clip (the centre frame of each
segment, the evaluation view): no temporal jitter or random crop for the pixels. Box streams in the
same batch (fusion's STIN) keep their own random box frames.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from vislearn.common.jsonio import write_json
from vislearn.video.data.clip_dataset import ClipDataset
from vislearn.video.data.transforms import IMAGENET_MEAN, IMAGENET_STD, frames_to_view, normalize

FORMAT = 1


def default_cache_root() -> Path:
    """`feature_cache: auto`: $XDG_CACHE_HOME/something-else/frame-features (~/.cache/... by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "something-else" / "frame-features"


def frozen_frame_trunk(model: nn.Module) -> nn.Module | None:
    """The trunk inside `model` (scene model, STRG, fusion) whose frozen per-frame part can be cached."""
    for m in model.modules():
        if hasattr(m, "frame_features") and hasattr(m, "frozen_digest") and getattr(m, "frozen_blocks", 0) > 0:
            return m
    return None


def _describe(obj) -> list:
    """A sampler or view transform as plain data (its class and settings) for the cache key."""
    return [type(obj).__name__, {k: v for k, v in sorted(vars(obj).items()) if isinstance(v, (int, float, str))}]


def video_identity(path: str | os.PathLike) -> str:
    """Real path, size and modification time of a video file, or of every frame of a frame folder."""
    real = os.path.realpath(path)
    if os.path.isdir(real):
        stats = [(e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in sorted(os.scandir(real), key=lambda e: e.name)]
        digest = hashlib.sha256(repr(stats).encode()).hexdigest()[:16]
        return f"{real}|folder|{len(stats)}|{digest}"
    st = os.stat(real)
    return f"{real}|{st.st_size}|{st.st_mtime_ns}"


@dataclass
class Entry:
    features: torch.Tensor  # [C, T, h, w]: the frozen part's output for the clip
    rgb_index: np.ndarray  # [T] decoded frame indices of the clip
    frame_size: tuple[int, int]  # (w, h) of the decoded frames


class FrameFeatureCache:
    """One folder per (frozen weights, clip recipe); one file per video. See the module docstring."""

    def __init__(self, root: str | os.PathLike, trunk: nn.Module, reference: ClipDataset):
        # the trunk is not kept: data-loader workers get copies of this object (pickled under spawn)
        self.digest = trunk.frozen_digest()
        recipe = {"format": FORMAT, "trunk": self.digest, "sampler": _describe(reference.rgb_sampler),
                  "view": _describe(reference.view_transform), "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
        self.key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:24]
        self.folder = Path(root).expanduser() / self.key
        self.folder.mkdir(parents=True, exist_ok=True)
        if not (self.folder / "recipe.json").exists():
            write_json(self.folder / "recipe.json", recipe, indent=1)

    def path_of(self, video_path: str | os.PathLike) -> Path:
        return self.folder / (hashlib.sha1(os.path.realpath(video_path).encode()).hexdigest()[:24] + ".npz")

    def load(self, video_path: str | os.PathLike) -> Entry | None:
        """The entry of a video, or None when there is none or its video file changed since."""
        path = self.path_of(video_path)
        try:
            with np.load(path) as z:
                if str(z["identity"]) != video_identity(video_path):
                    return None
                return Entry(torch.from_numpy(z["features"]), z["rgb_index"], (int(z["frame_size"][0]), int(z["frame_size"][1])))
        except (OSError, KeyError, ValueError, EOFError):  # absent, or not an entry this code wrote
            return None

    def save(self, video_path: str | os.PathLike, entry: Entry) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".npz.tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, features=entry.features.float().cpu().numpy(), rgb_index=np.asarray(entry.rgb_index, np.int64),
                         frame_size=np.asarray(entry.frame_size, np.int64), identity=np.array(video_identity(video_path)))
            os.replace(tmp, self.path_of(video_path))
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def missing(self, reference: ClipDataset) -> list[int]:
        return [i for i, p in enumerate(reference.video_paths) if self.load(p) is None]

    @torch.no_grad()
    def fill(self, trunk: nn.Module, reference: ClipDataset, device: torch.device | str = "cpu", batch_size: int = 16,
             workers: int = 0, progress: bool = True) -> int:
        """Compute with `trunk` the entries `reference`'s videos lack. Returns how many were computed."""
        if trunk.frozen_digest() != self.digest:
            raise ValueError("FrameFeatureCache.fill: the trunk's frozen weights are not those this cache is keyed by")
        todo = self.missing(reference)
        if not todo:
            return 0
        # its own generator: filling must not draw from the global RNG, or a run that fills the cache would
        # train differently from the same run on a warm cache
        loader = torch.utils.data.DataLoader(_EvalClips(reference, todo), batch_size=batch_size, num_workers=workers,
                                             collate_fn=_collate_clips, worker_init_fn=_one_thread,
                                             generator=torch.Generator())
        trunk.eval()
        for pixels, rgb_index, sizes, items in tqdm(loader, desc="caching frame features", unit="batch",
                                                    disable=not progress, leave=False):
            feats = trunk.frame_features(pixels.to(device)).float().cpu()
            for f, idx, size, i in zip(feats, rgb_index, sizes, items):
                self.save(reference.video_paths[i], Entry(f, idx, size))
        return len(todo)


class _EvalClips(torch.utils.data.Dataset):
    """The evaluation clip of each video as `ClipDataset` makes it (the same sampler, view and
    normalisation, through its own methods), with the frame indices and frame size it was made from."""

    def __init__(self, reference: ClipDataset, items: list[int]):
        self.ref, self.items = reference, items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int):
        ref, i = self.ref, self.items[k]
        with ref.video_opener(ref.video_paths[i]) as reader:
            rgb_index = ref.pick_frames(ref.rgb_sampler, len(reader), None, 0)
            frames = reader.get_frames(rgb_index)
        size = (int(frames.shape[2]), int(frames.shape[1]))
        pixels = normalize(frames_to_view(frames, ref.view_for(size, None, 0)))
        return pixels, np.asarray(rgb_index, np.int64), size, i


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)  # workers decode and resize; more threads only fight the main process for cores


def _collate_clips(batch):
    pixels, idx, sizes, items = zip(*batch)
    return torch.stack(pixels), list(idx), list(sizes), list(items)


class CachedClips(torch.utils.data.Dataset):
    """The items of `clips` with `frame_features` read from the cache instead of decoded `frames`.

    Boxes (STIN's, with `clips`' own random box frames in training) and boxes on the RGB frames (STRG)
    are made by `clips` itself, on the cached clip's frames and in `reference`'s evaluation view, the
    view the cached features were computed in.
    """

    def __init__(self, clips: ClipDataset, reference: ClipDataset, cache: FrameFeatureCache):
        if clips.num_views != 1:
            raise ValueError("CachedClips serves one clip per video (multi-view evaluation reads pixels)")
        self.clips, self.reference, self.cache = clips, reference, cache
        self.report = clips.report

    def __len__(self) -> int:
        return len(self.clips)

    def set_epoch(self, epoch: int) -> None:
        self.clips.set_epoch(epoch)

    def __getitem__(self, index: int) -> dict:
        clips = self.clips
        rec, path = clips.items[index], clips.video_paths[index]
        entry = self.cache.load(path)
        if entry is None:
            raise RuntimeError(f"{path}: no cached frame features (the cache was filled for other videos, or the "
                               f"video changed during the run)")
        view = self.reference.view_for(entry.frame_size, None, 0)
        vb = clips.boxes.get(rec.id) if clips.boxes is not None and rec.id in clips.boxes else None
        out = clips.sample_boxes(vb, clips.rngs(rec.id)[0], 0, view)
        out["frame_features"] = entry.features
        if clips.rgb_boxes:
            on_rgb = clips.boxes_on(vb, entry.rgb_index, view)
            out["rgb_boxes"], out["rgb_box_mask"] = on_rgb["boxes"], on_rgb["box_mask"]
        out["label"] = torch.tensor(clips.labels_of[index], dtype=torch.long)
        out["video_id"] = rec.id
        return out
