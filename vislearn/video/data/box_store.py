"""A compact, memory-mapped store of Something-Else boxes, built once from the JSON part files.

Why: the merged release covers 180,049 videos in several GB of JSON; the official loader
`json.load`s it in every data-loader worker. Here the boxes live in flat numpy arrays opened with
`mmap_mode="r"`, so every worker shares the same page cache, opening costs milliseconds, and a
per-video look-up is a binary search plus a few slices (no JSON parsing).

Layout of a store folder (all arrays little-endian .npy):
  meta.json              format version, counts, source files (read once at open; tiny)
  ids.npy                S<k> sorted video ids;  id_row.npy  int64 row of each sorted id
  video_frames.npy       int64 [V+1]  offsets of each video's frames
  frame_index.npy        int32 [F]    0-based decoded frame number of each annotated frame
  frame_instances.npy    int16 [F]    nr_instances as annotated
  frame_boxes.npy        int64 [F+1]  offsets of each frame's boxes
  xyxy.npy               float32 [B,4] pixel boxes
  box_strings.npy        int32 [B,3]  (standard_category, category, gt_annotation) -> string table
  video_placeholders.npy int64 [V+1]  offsets into placeholders.npy (int32 string ids)
  strings.bin / strings_offsets.npy   the string table (utf-8, concatenated)
Fields of the annotation tool (url, split, task_index) are not kept: they are not needed to train.

`open_boxes` opens either form (a store folder or a JSON file): it lives here, beside the store, so that
`annotations` (the JSON side, which the store is built from) never needs to know the store.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np

from .annotations import AnnotationFile, BoxSource, VideoBoxes, load_annotations, parse_video
from vislearn.common.errors import UserError
from vislearn.common.files import atomic_folder, output_folder, refuse_input_overwrite
from vislearn.common.jsonio import read_json, write_json

FORMAT = "something-else-box-store"
VERSION = 1


class _StringTable:
    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def id(self, s: str) -> int:
        i = self.index.get(s)
        if i is None:
            i = self.index[s] = len(self.index)
        return i

    def save(self, folder: Path) -> None:
        encoded = [s.encode("utf-8") for s in self.index]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        (folder / "strings.bin").write_bytes(b"".join(encoded))
        np.save(folder / "strings_offsets.npy", offsets)


def is_store(folder: Path) -> bool:
    meta = folder / "meta.json"
    if not meta.is_file():
        return False
    try:
        return read_json(meta).get("format") == FORMAT
    except (UserError, AttributeError):
        return False


def check_out(out: str | os.PathLike, sources: Iterable[str | os.PathLike] = ()) -> Path:
    """`out` may be new, an empty folder, or a box store (replaced); anything else is refused."""
    out = output_folder(out, "--out")
    if out.is_dir() and any(out.iterdir()) and not is_store(out):
        raise UserError(f"{out}: folder is not empty and is not a box store; choose a new --out folder")
    refuse_input_overwrite([out], sources, "--out")
    return out


def build_store(videos: Iterable[VideoBoxes], out: str | os.PathLike, sources: list[str] | None = None) -> dict:
    """Write a store folder from parsed videos. Atomically: built beside `out`, then swapped in
    (`common.files.atomic_folder`), so a kill at any instant leaves the old store or the new one."""
    out = check_out(out, sources or [])
    strings = _StringTable()
    ids: list[str] = []
    video_frames = [0]
    frame_index: list[np.ndarray] = []
    frame_inst: list[np.ndarray] = []
    frame_box_counts: list[np.ndarray] = []
    xyxy: list[np.ndarray] = []
    box_strings: list[np.ndarray] = []
    video_ph = [0]
    placeholders: list[int] = []
    seen: set[str] = set()
    for vb in videos:
        if vb.video_id in seen:
            raise UserError(f"video {vb.video_id} appears twice in the input of the box store")
        seen.add(vb.video_id)
        ids.append(vb.video_id)
        nf = len(vb.frame_index)
        video_frames.append(video_frames[-1] + nf)
        frame_index.append(vb.frame_index.astype(np.int32))
        inst = vb.nr_instances if vb.nr_instances is not None else np.zeros(nf, np.int32)
        frame_inst.append(np.asarray(inst, dtype=np.int16))
        frame_box_counts.append(np.bincount(vb.box_frame, minlength=nf).astype(np.int64))
        order = np.argsort(vb.box_frame, kind="stable")
        xyxy.append(vb.xyxy[order].astype(np.float32))
        gt = vb.gt_annotation if len(vb.gt_annotation) == len(vb.track) else [""] * len(vb.track)
        box_strings.append(np.array([[strings.id(vb.track[k]), strings.id(vb.category[k]), strings.id(gt[k])]
                                     for k in order], dtype=np.int32).reshape(-1, 3))
        placeholders.extend(strings.id(p) for p in vb.placeholders)
        video_ph.append(len(placeholders))
    if not ids:
        raise UserError("no videos to store")
    with atomic_folder(out, replace=True) as tmp:
        width = max(len(i.encode()) for i in ids)
        id_bytes = np.array([i.encode() for i in ids], dtype=f"S{width}")
        order = np.argsort(id_bytes, kind="stable")
        np.save(tmp / "ids.npy", id_bytes[order])
        np.save(tmp / "id_row.npy", order.astype(np.int64))
        np.save(tmp / "video_frames.npy", np.array(video_frames, dtype=np.int64))
        np.save(tmp / "frame_index.npy", np.concatenate(frame_index) if frame_index else np.zeros(0, np.int32))
        np.save(tmp / "frame_instances.npy", np.concatenate(frame_inst))
        counts = np.concatenate(frame_box_counts)
        frame_boxes = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=frame_boxes[1:])
        np.save(tmp / "frame_boxes.npy", frame_boxes)
        np.save(tmp / "xyxy.npy", np.concatenate(xyxy).reshape(-1, 4))
        np.save(tmp / "box_strings.npy", np.concatenate(box_strings).reshape(-1, 3))
        np.save(tmp / "video_placeholders.npy", np.array(video_ph, dtype=np.int64))
        np.save(tmp / "placeholders.npy", np.array(placeholders, dtype=np.int32))
        strings.save(tmp)
        meta = {"format": FORMAT, "version": VERSION, "videos": len(ids), "frames": int(video_frames[-1]),
                "boxes": int(frame_boxes[-1]), "strings": len(strings.index), "sources": sources or []}
        write_json(tmp / "meta.json", meta, indent=1)
    return meta


def index_boxes(paths: list[str | os.PathLike], out: str | os.PathLike, progress=None) -> dict:
    """The one-time conversion: Something-Else JSON part files -> store folder.

    Parts are read one at a time (peak memory is one part's JSON, not the merged file). A video
    in two parts must be identical in both; it is stored once.
    """
    check_out(out, paths)  # before hours of parsing
    seen: dict[str, tuple[str, int]] = {}

    def videos():
        for path in paths:
            part = load_annotations(path)
            items = part.items() if progress is None else progress(part.items(), desc=str(path), total=len(part))
            for vid, frames in items:
                vid = str(vid)
                digest = hash(repr(frames))
                if vid in seen:
                    if seen[vid][1] != digest:
                        raise UserError(f"{path}: video {vid} is also in {seen[vid][0]} with different boxes")
                    continue
                seen[vid] = (str(path), digest)
                yield parse_video(vid, frames, path)
            del part

    return build_store(videos(), out, sources=[str(p) for p in paths])


class BoxStore:
    """Read side of the store. Cheap to open; safe to share across forked DataLoader workers."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        meta_path = self.folder / "meta.json"
        if not meta_path.exists():
            raise UserError(f"{self.folder}: not a box store (no meta.json); build one with `vislearn video data index-boxes`")
        self.meta = read_json(meta_path)
        if self.meta.get("format") != FORMAT or self.meta.get("version") != VERSION:
            raise UserError(f"{meta_path}: unsupported store format {self.meta.get('format')!r} version {self.meta.get('version')!r}")

        def load(name: str) -> np.ndarray:
            try:
                return np.load(self.folder / name, mmap_mode="r")
            except (OSError, ValueError) as e:
                raise UserError(f"{self.folder / name}: missing or corrupt store array ({e})") from None

        self._ids = load("ids.npy")
        self._id_row = load("id_row.npy")
        self._video_frames = load("video_frames.npy")
        self._frame_index = load("frame_index.npy")
        self._frame_inst = load("frame_instances.npy")
        self._frame_boxes = load("frame_boxes.npy")
        self._xyxy = load("xyxy.npy")
        self._box_strings = load("box_strings.npy")
        self._video_ph = load("video_placeholders.npy")
        self._ph = load("placeholders.npy")
        self._str_off = load("strings_offsets.npy")
        try:
            self._str_bytes = np.memmap(self.folder / "strings.bin", dtype=np.uint8, mode="r") \
                if self._str_off[-1] > 0 else np.zeros(0, np.uint8)
        except (OSError, ValueError) as e:
            raise UserError(f"{self.folder / 'strings.bin'}: missing or corrupt ({e})") from None
        self._strings: dict[int, str] = {}
        if len(self._ids) != self.meta["videos"] or len(self._xyxy) != self.meta["boxes"]:
            raise UserError(f"{self.folder}: store arrays do not match meta.json (interrupted build?)")

    def __len__(self) -> int:
        return len(self._ids)

    # ---- the arrays, for whole-batch readers (`coord_batch.CoordBatcher`) ----------------------------
    # Read-only memory maps (shared by forked workers through the page cache), in store row order: row r
    # of a video is `rows([video_id])[0]`. Box k of a video is one of its frames' boxes, so
    # video_frames -> frame_index / frame_boxes -> xyxy / box_strings is the whole walk.
    @property
    def video_frames(self) -> np.ndarray:
        """int64 [V+1]: video row r's annotated frames are frame_index[video_frames[r]:video_frames[r+1]]."""
        return self._video_frames

    @property
    def frame_index(self) -> np.ndarray:
        """int32 [F]: the 0-based decoded frame number of each annotated frame (sorted within a video)."""
        return self._frame_index

    @property
    def frame_boxes(self) -> np.ndarray:
        """int64 [F+1]: frame f's boxes are xyxy[frame_boxes[f]:frame_boxes[f+1]]."""
        return self._frame_boxes

    @property
    def xyxy(self) -> np.ndarray:
        """float32 [B, 4]: every box in pixels (x1, y1, x2, y2)."""
        return self._xyxy

    @property
    def box_strings(self) -> np.ndarray:
        """int32 [B, 3]: string ids (`string`) of each box's standard_category (the track id: "hand",
        "0000", ...), category (the noun) and gt_annotation."""
        return self._box_strings

    def _row(self, video_id: object) -> int:
        key = str(video_id).encode()
        if len(key) > self._ids.dtype.itemsize:
            return -1
        pos = int(np.searchsorted(self._ids, key))
        if pos < len(self._ids) and self._ids[pos] == key:
            return int(self._id_row[pos])
        return -1

    def rows(self, video_ids) -> np.ndarray:
        """Store row of each id (int64), -1 where the store has none: one vectorised search."""
        keys = np.array([str(v).encode() for v in video_ids], dtype=object)
        width = self._ids.dtype.itemsize
        fits = np.array([len(k) <= width for k in keys], bool)
        out = np.full(len(keys), -1, np.int64)
        if fits.any() and len(self._ids):
            want = keys[fits].astype(self._ids.dtype)
            pos = np.minimum(np.searchsorted(self._ids, want), len(self._ids) - 1)
            hit = np.asarray(self._ids[pos]) == want
            out[np.nonzero(fits)[0][hit]] = np.asarray(self._id_row[pos[hit]])
        return out

    def __contains__(self, video_id: object) -> bool:
        return self._row(video_id) >= 0

    def video_ids(self) -> list[str]:
        """Ids in the order they were stored."""
        ids = np.empty(len(self._ids), dtype=self._ids.dtype)
        ids[np.asarray(self._id_row)] = self._ids
        return [i.decode() for i in ids]

    def string(self, i: int) -> str:
        """String i of the table, decoded once per process (the table is small: track ids and nouns)."""
        s = self._strings.get(i)
        if s is None:
            s = self._strings[i] = bytes(self._str_bytes[self._str_off[i]:self._str_off[i + 1]]).decode("utf-8")
        return s

    def get(self, video_id: str) -> VideoBoxes:
        row = self._row(video_id)
        if row < 0:
            raise KeyError(f"{self.folder}: no boxes for video {video_id}")
        f0, f1 = int(self._video_frames[row]), int(self._video_frames[row + 1])
        b0, b1 = int(self._frame_boxes[f0]), int(self._frame_boxes[f1])
        counts = np.diff(np.asarray(self._frame_boxes[f0:f1 + 1]))
        strs = np.asarray(self._box_strings[b0:b1]).tolist()
        s = self.string
        return VideoBoxes(
            video_id=str(video_id),
            frame_index=np.array(self._frame_index[f0:f1], dtype=np.int32),
            box_frame=np.repeat(np.arange(f1 - f0, dtype=np.int32), counts),
            xyxy=np.array(self._xyxy[b0:b1], dtype=np.float32),
            track=[s(t) for t, _, _ in strs],
            category=[s(c) for _, c, _ in strs],
            gt_annotation=[s(g) for _, _, g in strs],
            placeholders=[s(int(i)) for i in self._ph[self._video_ph[row]:self._video_ph[row + 1]]],
            nr_instances=np.array(self._frame_inst[f0:f1], dtype=np.int32),
        )

    def __iter__(self):
        for vid in self.video_ids():
            yield self.get(vid)


def open_boxes(path: str | os.PathLike) -> BoxSource:
    """A box store folder (from `index-boxes`) or a Something-Else JSON file."""
    path = Path(path)
    if path.is_dir():
        return BoxStore(path)
    return AnnotationFile.load(path)
