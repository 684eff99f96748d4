"""Whole batches of coordinate-only items straight from the box store's arrays.

`ClipDataset.__getitem__` builds one item with a few dozen small numpy calls and Python objects
(a `VideoBoxes`, a `Slots`, a `View`): ~0.4 ms per video, while the data of a sample is 512 bytes
of boxes. A coordinate model at batch 72 wants tens of thousands of samples per second, so
`CoordBatcher` makes a batch at once: it samples the box frames of all items with one array
operation, finds the annotated frame rows by a vectorised binary search, gathers the boxes of
those frames, puts them in their slots and maps them to each item's crop, all with numpy over
[B, T, N]. The draws are `datasets.draws` (the per-item path draws the same numbers), so a batch
equals the stacked items of `ClipDataset.__getitem__` exactly (a test checks it).

What it covers: a `BoxStore`, no frames, the clean slot layout, one view per item, no flip, the
multi-scale / centre / full-frame crops. Anything else goes through `__getitem__`
(`CoordBatcher.covers`).

Per dataset, built once at construction (in the main process, so forked workers share it):
each item's store row, key, frame span, frame size and slot ids, and the slot of every box of
the dataset's videos (hand slot 0, objects by id in slots 1..N-1, as `datasets.slots`).
It reads the store only through `BoxStore`'s public array properties (video_frames, frame_index,
frame_boxes, xyxy, box_strings), so the store may change its files without breaking it.
"""
from __future__ import annotations

import zlib

import numpy as np
import torch

from .annotations import HAND
from .box_store import BoxStore
from .draws import integers_from, item_keys, uniforms
from .frame_size import SSV2_FRAME_HEIGHT
from .slots import EMPTY, HAND_ID, OBJECT_ID
from .transforms import CenterCrop, FullFrame, MultiScaleCrop

BOX_STREAM, VIEW_STREAM = 0, 2  # the streams of ClipDataset.rngs


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + c) for each (s, c)."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    ends = np.cumsum(counts)
    return np.repeat(starts - (ends - counts), counts) + np.arange(total)


class CoordBatcher:
    """The batches of one `clip_dataset.ClipDataset` (`ds`, read through its attributes: this module
    imports nothing from clip_dataset, which builds a CoordBatcher where `covers` says it may)."""

    def __init__(self, ds):
        store: BoxStore = ds.boxes
        self.ds, self.store = ds, store
        self.T, self.N = ds.box_sampler.num_out, ds.num_slots
        ids = [r.id for r in ds.items]
        self.video_ids = np.array(ids, dtype=object)
        self.crc = np.array([zlib.crc32(str(i).encode()) for i in ids], np.uint64)
        self.labels = torch.tensor(ds.labels_of, dtype=torch.long)
        self.row = store.rows(ids)  # every item has boxes (ClipDataset skipped the others)
        vf, fb = np.asarray(store.video_frames), np.asarray(store.frame_boxes)
        self.fi = np.asarray(store.frame_index).astype(np.int64)
        self.fb = fb
        self.f0, self.f1 = vf[self.row], vf[self.row + 1]
        has = self.f1 > self.f0
        fi = self.fi if len(self.fi) else np.zeros(1, np.int64)
        self.first = np.where(has, fi[np.minimum(self.f0, len(fi) - 1)], 0)
        self.span = np.where(has, fi[np.maximum(self.f1 - 1, 0)] - self.first + 1, 0)
        self._slots(vf, fb)
        self._sizes()

    @staticmethod
    def covers(ds) -> bool:
        return (isinstance(ds.boxes, BoxStore) and not ds.load_frames and not ds.official_slots
                and ds.num_views == 1 and not (ds.flip is not None and ds.train)
                and type(ds.view_transform) in (MultiScaleCrop, CenterCrop, FullFrame))

    # ---- built once -------------------------------------------------------------------
    def _slots(self, vf: np.ndarray, fb: np.ndarray) -> None:
        """Slot of every box of the dataset's videos, and the slot ids of every item."""
        store, N = self.store, self.N
        rows, item_video = np.unique(self.row, return_inverse=True)
        b0, b1 = fb[vf[rows]], fb[vf[rows + 1]]
        boxes = _ranges(b0, b1 - b0)
        owner = np.repeat(np.arange(len(rows)), b1 - b0)
        track = np.asarray(store.box_strings[boxes, 0]) if len(boxes) else np.zeros(0, np.int32)
        names, at = np.unique(track, return_inverse=True)
        text = [store.string(int(i)) for i in names]
        rank = np.empty(len(text), np.int64)
        rank[sorted(range(len(text)), key=text.__getitem__)] = np.arange(len(text))
        hand = np.array([t == HAND for t in text], bool)[at]
        key = owner * max(len(text), 1) + rank[at]
        objects = np.unique(key[~hand])  # distinct (video, object track), tracks in id order
        first_of_video = np.searchsorted(objects, owner[~hand] * max(len(text), 1))
        pos = np.searchsorted(objects, key[~hand]) - first_of_video
        slot = np.full(len(boxes), -1, np.int8)
        slot[hand] = 0
        slot[~hand] = np.where(pos < N - 1, 1 + pos, -1)
        self.box_slot = np.full(len(store.xyxy), -1, np.int8)
        self.box_slot[boxes] = slot
        n_obj = np.bincount(objects // max(len(text), 1), minlength=len(rows))
        has_hand = np.bincount(owner[hand], minlength=len(rows)) > 0
        ids = np.zeros((len(rows), N), np.int64)
        ids[:, 0] = np.where(has_hand, HAND_ID, EMPTY)
        ids[:, 1:] = np.where(n_obj[:, None] > np.arange(N - 1)[None, :], OBJECT_ID, EMPTY)
        self.box_ids = ids[item_video]

    def _sizes(self) -> None:
        """Each item's frame size group and the crops of each group."""
        ds = self.ds
        sizes = self._box_extent()
        if ds.frame_sizes is not None or ds.default_frame_size is not None:
            for i, vid in enumerate(self.video_ids):  # ClipDataset.frame_size's order; the box extent last
                if ds.frame_sizes is not None:
                    size = ds.frame_sizes(vid) if callable(ds.frame_sizes) else ds.frame_sizes.get(vid)
                    if size is not None:
                        sizes[i] = size
                        continue
                if ds.default_frame_size is not None:
                    sizes[i] = ds.default_frame_size
        uniq, self.size_group = np.unique(np.array(sizes, np.int64).reshape(-1, 2), axis=0, return_inverse=True)
        self.size_group = self.size_group.reshape(-1)
        vt = ds.view_transform
        self.random_crop = ds.train and isinstance(vt, MultiScaleCrop)
        if self.random_crop:
            self.tables = np.stack([vt.region_table(tuple(s)) for s in uniq])  # [G, sizes, offsets, 4]
        else:
            views = [vt(tuple(int(v) for v in s), None) for s in uniq]
            self.fixed = np.array([[v.x0, v.y0, v.x1, v.y1] for v in views], np.int64)  # [G, 4]

    def _box_extent(self) -> np.ndarray:
        """`frame_size.box_extent_size` of every item's video: int64 [items, 2]."""
        b0, b1 = self.fb[self.f0], self.fb[self.f1]
        out = np.full((len(b0), 2), SSV2_FRAME_HEIGHT, np.int64)
        some = b1 > b0
        if some.any():
            xyxy = self.store.xyxy
            top = _ranges(b0[some], b1[some] - b0[some])
            at = np.concatenate([[0], np.cumsum(b1[some] - b0[some])[:-1]])
            x2 = np.maximum.reduceat(np.asarray(xyxy[top, 2]), at)
            y2 = np.maximum.reduceat(np.asarray(xyxy[top, 3]), at)
            out[some, 0] = np.maximum(1, np.ceil(x2.astype(np.float64))).astype(np.int64)
            out[some, 1] = np.maximum(SSV2_FRAME_HEIGHT, np.ceil(y2.astype(np.float64))).astype(np.int64)
        return out

    # ---- per batch ----------------------------------------------------------------------
    def __call__(self, indices) -> dict:
        idx = np.asarray(indices, dtype=np.int64)
        B, T, N = len(idx), self.T, self.N
        ds = self.ds
        keys = item_keys(ds.seed, ds.epoch, self.crc[idx]) if ds.train else None

        # Box frames: TSN segments over the annotated span (SegmentSampler), then their record rows.
        span = self.span[idx]
        u = uniforms(keys, BOX_STREAM, T) if ds.train else np.full((B, T), 0.5)
        seg = span / T
        pick = np.floor((np.arange(T)[None, :] + u) * seg[:, None]).astype(np.int64)
        frames = self.first[idx, None] + np.clip(pick, 0, np.maximum(span - 1, 0)[:, None])
        rec = self._records(frames, self.f0[idx], self.f1[idx])  # [B,T], -1 where no record

        # Boxes of those records, into their slots.
        ok = rec >= 0
        safe = np.where(ok, rec, 0)
        count = np.where(ok, self.fb[np.minimum(safe + 1, len(self.fb) - 1)] - self.fb[safe], 0).reshape(-1)
        box = _ranges(self.fb[safe].reshape(-1), count)
        cell = np.repeat(np.arange(B * T), count)
        slot = self.box_slot[box].astype(np.int64)
        keep = slot >= 0
        box, cell, slot = box[keep], cell[keep], slot[keep]
        xyxy = np.zeros((B * T, N, 4), np.float32)
        present = np.zeros((B * T, N), bool)
        xyxy[cell, slot] = self.store.xyxy[box]
        present[cell, slot] = True

        # Each item's crop, then boxes normalised to it (as transforms.boxes_to_view).
        group = self.size_group[idx]
        if self.random_crop:
            tables = self.tables
            uv = uniforms(keys, VIEW_STREAM, 2)
            region = tables[group, integers_from(uv[:, 0], tables.shape[1]), integers_from(uv[:, 1], tables.shape[2])]
        else:
            region = self.fixed[group]
        norm, valid = _to_view(xyxy.reshape(B, T, N, 4), region.astype(np.float32))
        mask = present.reshape(B, T, N) & valid
        norm[~mask] = 0.0
        return {"boxes": torch.from_numpy(norm), "box_ids": torch.from_numpy(self.box_ids[idx]),
                "box_mask": torch.from_numpy(mask), "label": self.labels[torch.from_numpy(idx)],
                "video_id": self.video_ids[idx].tolist()}

    def _records(self, frames: np.ndarray, f0: np.ndarray, f1: np.ndarray) -> np.ndarray:
        """Row of `frames` [B,T] in the store's frame records of each item's video, -1 where none
        (a binary search in every item's sorted frame_index at once)."""
        if len(self.fi) == 0:  # a store of videos without any annotated frame
            return np.full(frames.shape, -1, np.int64)
        lo = np.broadcast_to(f0[:, None], frames.shape).copy()
        hi = np.broadcast_to(f1[:, None], frames.shape).copy()
        fi = self.fi
        while True:
            active = lo < hi
            if not active.any():
                break
            mid = (lo + hi) // 2
            right = active & (fi[np.minimum(mid, len(fi) - 1)] < frames)
            lo = np.where(right, mid + 1, lo)
            hi = np.where(active & ~right, mid, hi)
        found = (lo < f1[:, None]) & (fi[np.minimum(lo, len(fi) - 1)] == frames)
        return np.where(found, lo, -1)


def _to_view(b: np.ndarray, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`transforms.boxes_to_view` for [B,T,N,4] boxes and one float32 region (x0,y0,x1,y1) per item,
    with the same float32 arithmetic (so the results are identical)."""
    x0, y0, x1, y1 = (region[:, k, None, None] for k in range(4))
    bx1, bx2 = np.clip(b[..., 0], x0, x1), np.clip(b[..., 2], x0, x1)
    by1, by2 = np.clip(b[..., 1], y0, y1), np.clip(b[..., 3], y0, y1)
    valid = (bx2 > bx1) & (by2 > by1)
    vw, vh = x1 - x0, y1 - y0
    out = np.stack([((bx1 + bx2) / 2 - x0) / vw, ((by1 + by2) / 2 - y0) / vh, (bx2 - bx1) / vw, (by2 - by1) / vh], -1)
    out[~valid] = 0.0
    return out, valid
