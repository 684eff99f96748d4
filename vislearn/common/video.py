"""Decode clips from SSv2 videos (.webm VP9 / .mp4) and from folders of JPEG frames.

Why three readers: decord is the fastest decoder for sampled clips but it is unmaintained and
fails on some real SSv2 files, so every decord error falls back to PyAV (same frames, decoded
forward once). The official Something-Else layout is a folder of 12-fps frames
`<root>/<id>/0001.jpg` (1-based), read with Pillow.

Frame numbering: frame i of the reader (0-based) is annotation frame i, i.e. `<id>/{i+1:04d}.jpg`.
SSv2 videos are 12 fps. A video with another frame rate is resampled to `fps` (default 12) by
index mapping: output frame j is the native frame shown at time j/fps (`reader.resampled` says
whether that happened, `reader.native_fps` keeps the file's rate). Frame folders carry no frame
rate: they are taken to be at `fps` already.

Errors on bad input are `UserError` naming the file: missing video, undecodable file, zero frames.
A file that decodes to fewer frames than its header declares (truncated or cut short) opens, but
`decoding_problem(reader)` says so: the commands that report on a video (`vislearn video infer`,
`extract-frames`) refuse it in one line. The decoders' own messages (FFmpeg's "Read error", decord's
"ERROR opening") never reach the terminal: what is wrong is said once, in that line.
`expand_videos` turns the VIDEO... arguments of the command-line tools (files, frame folders, folders
of videos, globs) into video id -> path; the tracking and inference commands share it.
"""
from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import threading
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from vislearn.common.errors import UserError
from vislearn.common.files import atomic_folder, output_folder, refuse_input_overwrite

SSV2_FPS = 12
VIDEO_EXTENSIONS = (".webm", ".mp4")
_FRAME_FILE = re.compile(r"^(\d+)\.(?:jpg|jpeg)$", re.IGNORECASE)
_FPS_TOLERANCE = 0.01
_FRAME_FOLDER_FILE = re.compile(r"^\d{4,}\.jpg$")  # what extract_frames writes (and only replaces)


# ------------------------------------------------------------------------------ decoder chatter
_quiet_lock = threading.Lock()
_decord_quiet = False
_silenced = {"depth": 0, "saved": -1}  # fd 2 is /dev/null while depth > 0; `saved` is the real one


def quiet_decoders() -> None:
    """FFmpeg's log lines stay off the terminal: decord's bundled libav at QUIET, and PyAV's not
    forwarded to Python logging (a library that turned it on, e.g. at ERROR, would print them)."""
    global _decord_quiet
    import av.logging

    if av.logging.get_level() is not None:
        av.logging.set_level(None)
    if not _decord_quiet and "decord" in sys.modules:
        import decord

        decord.logging.set_level(decord.logging.QUIET)
        _decord_quiet = True


@contextlib.contextmanager
def _no_stderr() -> Iterator[None]:
    """fd 2 to /dev/null around a decord call: its C++ code prints failures ("ERROR opening: ...") itself
    before raising them, which the caller reports in its own words (or recovers from with PyAV).
    Threads may overlap (they are not serialised): the first in silences fd 2, the last out restores it.
    A Ctrl-C can land on any line here: the whole set-up sits inside the `finally` that restores fd 2, and
    the saved descriptor is recorded before fd 2 changes, so an interrupt never leaves stderr silenced
    (the command's own "interrupted" line and partial-results note would vanish)."""
    try:
        with _quiet_lock:
            _silenced["depth"] += 1
            if _silenced["depth"] == 1:
                _silence_fd2()
        yield
    finally:
        with _quiet_lock:
            _silenced["depth"] = max(0, _silenced["depth"] - 1)
            if _silenced["depth"] == 0:
                _restore_fd2()


def _silence_fd2() -> None:
    """fd 2 to /dev/null; the real one is kept in _silenced["saved"] before fd 2 changes."""
    with contextlib.suppress(ValueError, AttributeError):
        sys.stderr.flush()
    try:
        _silenced["saved"] = os.dup(2)
    except OSError:  # no fd 2 at all: nothing to silence
        return
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 2)
        finally:
            os.close(null)
    except OSError:
        _restore_fd2()


def _restore_fd2() -> None:
    """Put the saved fd 2 back (nothing when none is saved)."""
    saved, _silenced["saved"] = _silenced["saved"], -1
    if saved >= 0:
        os.dup2(saved, 2)
        os.close(saved)


def resample_indices(num_native: int, native_fps: float, target_fps: float) -> np.ndarray:
    """Map output frames at `target_fps` to native frames: j -> floor(j * native / target).

    The output covers the same duration: ceil(num_native * target / native) frames (at least 1).
    """
    if num_native <= 0:
        return np.zeros(0, dtype=np.int64)
    n_out = max(1, math.ceil(num_native * target_fps / native_fps - 1e-9))
    idx = np.floor(np.arange(n_out) * (native_fps / target_fps) + 1e-9).astype(np.int64)
    return np.minimum(idx, num_native - 1)


class VideoReader:
    """Random access to the frames of one video, at `fps` frames per second.

    Subclasses implement `_native_len` (set in __init__) and `_read(native_indices)`, which
    receives sorted unique native indices and returns uint8 [K,H,W,3] in that order.
    """

    backend = "?"

    def __init__(self, path: Path, native_len: int, native_fps: float, size: tuple[int, int] | None,
                 fps: float | None = SSV2_FPS):
        self.path = Path(path)
        if native_len <= 0:
            raise UserError(f"{self.path}: video has no frames")
        self.native_len = int(native_len)
        self.native_fps = float(native_fps)
        self._size = None if size is None else (int(size[0]), int(size[1]))
        if fps is None or not native_fps or abs(native_fps - fps) <= _FPS_TOLERANCE:
            self.fps = float(native_fps) if fps is None or not native_fps else float(fps)
            self.resampled = False
            self._map = None
        else:
            self.fps = float(fps)
            self.resampled = True
            self._map = resample_indices(self.native_len, self.native_fps, self.fps)

    def __len__(self) -> int:
        return self.native_len if self._map is None else len(self._map)

    _declared: int | None = None
    _declared_known = False

    @property
    def declared_frames(self) -> int | None:
        """The native frame count the file's header declares (an MP4's frame count, a WebM's duration at
        its frame rate), None when it declares none (frame folders). Read on first use only."""
        if not self._declared_known:
            self._declared = declared_frames(self.path, self.native_fps)
            self._declared_known = True
        return self._declared

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames."""
        if self._size is None:
            self._size = self._probe_size()
        return self._size

    @property
    def known_size(self) -> tuple[int, int] | None:
        """(width, height) when known without decoding (container metadata, or a frame read already), else None."""
        return self._size

    def _probe_size(self) -> tuple[int, int]:
        h, w = self.get_frames([0]).shape[1:3]
        return (w, h)

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        pass

    def _native(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"{self.path}: frame indices {idx.min()}..{idx.max()} outside 0..{n - 1}")
        return idx if self._map is None else self._map[idx]

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Frames at `indices` (any order, repeats allowed) as uint8 [T,H,W,3] RGB."""
        native = self._native(indices)
        if native.size == 0:
            w, h = self.size
            return np.zeros((0, h, w, 3), dtype=np.uint8)
        unique, inverse = np.unique(native, return_inverse=True)
        frames = self._read(unique)
        return frames[inverse.reshape(-1)]

    def read_all(self) -> np.ndarray:
        return self.get_frames(np.arange(len(self)))

    def iter_frames(self, chunk: int = 32) -> Iterator[np.ndarray]:
        """All frames in order, `chunk` at a time (bounded memory for long videos)."""
        for start in range(0, len(self), chunk):
            yield from self.get_frames(np.arange(start, min(start + chunk, len(self))))

    def _read(self, native_sorted_unique: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        extra = f", resampled from {self.native_fps:g} fps" if self.resampled else ""
        return f"{type(self).__name__}({str(self.path)!r}, {len(self)} frames, {self.size[0]}x{self.size[1]}, {self.fps:g} fps{extra})"


class PyAVReader(VideoReader):
    """PyAV decoding. Reads decode forward once from the start and keep the wanted frames:
    seeking per frame is ~3x slower on short SSv2 clips and not frame-exact on every file."""

    backend = "pyav"

    def __init__(self, path: str | os.PathLike, fps: float | None = SSV2_FPS, num_threads: int = 1):
        import av

        path = Path(path)
        self._threads = num_threads
        quiet_decoders()
        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise UserError(f"{path}: no video stream")
                stream = container.streams.video[0]
                rate = stream.average_rate or stream.guessed_rate or stream.base_rate
                native_fps = float(rate) if rate else 0.0
                size = (stream.codec_context.width, stream.codec_context.height)
                self._declared, self._declared_known = _declared(container, stream, native_fps), True
                count = int(stream.frames or 0)
                if count <= 0:
                    # WebM stores no frame count: count packets (one shown frame per VP9 packet;
                    # hidden frames are packed in superframes), far cheaper than decoding.
                    count = sum(1 for p in container.demux(stream) if p.size > 0)
        except UserError:
            raise
        except Exception as e:  # av.error.* (InvalidUserError, ...), OSError
            raise UserError(f"{path}: cannot decode video ({type(e).__name__}: {e})") from None
        super().__init__(path, count, native_fps, size, fps)

    def _decode(self) -> Iterator[tuple[int, "object"]]:
        import av

        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                stream.thread_count = self._threads
                for i, frame in enumerate(container.decode(stream)):
                    yield i, frame
        except Exception as e:
            raise UserError(f"{self.path}: cannot decode video ({type(e).__name__}: {e})") from None

    def _read(self, wanted: np.ndarray) -> np.ndarray:
        out = []
        last = int(wanted[-1])
        pos = 0
        for i, frame in self._decode():
            if i == wanted[pos]:
                out.append(frame.to_ndarray(format="rgb24"))
                pos += 1
                if i == last:
                    break
        if len(out) < len(wanted):
            raise UserError(f"{self.path}: decoding stopped before frame {int(wanted[len(out)])} "
                            f"(file says {self.native_len} frames; truncated or corrupt?)")
        return _check_shape(np.stack(out), self)

    def iter_frames(self, chunk: int = 32) -> Iterator[np.ndarray]:
        if self._map is None:
            for _, frame in self._decode():
                yield frame.to_ndarray(format="rgb24")
            return
        want = self._map
        pos = 0
        for i, frame in self._decode():
            if pos < len(want) and want[pos] == i:
                arr = frame.to_ndarray(format="rgb24")
                while pos < len(want) and want[pos] == i:
                    yield arr
                    pos += 1
            if pos >= len(want):
                break


class DecordReader(VideoReader):
    """decord decoding, with PyAV taking over (for good) at the first decord error."""

    backend = "decord"

    def __init__(self, path: str | os.PathLike, fps: float | None = SSV2_FPS, num_threads: int = 1):
        import av  # noqa: F401  PyAV's FFmpeg must load first: after decord's bundled libvpx, PyAV cannot encode VP9
        import decord

        path = Path(path)
        self._threads = num_threads
        self._fallback: PyAVReader | None = None
        quiet_decoders()
        with _no_stderr():
            self._vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=num_threads)
        # decord exposes no frame size without decoding: learnt from the first read (`size`).
        super().__init__(path, len(self._vr), self._vr.get_avg_fps(), None, fps)

    def _read(self, wanted: np.ndarray) -> np.ndarray:
        if self._fallback is None:
            try:
                with _no_stderr():
                    batch = self._vr.get_batch(wanted.tolist()).asnumpy()
                return _check_shape(batch, self)
            except Exception:
                self._use_pyav()
        return _check_shape(self._fallback._read(wanted), self)

    def _use_pyav(self) -> None:
        self._vr = None
        self._fallback = PyAVReader(self.path, fps=None, num_threads=self._threads)
        self.backend = "pyav"
        if self._fallback.native_len < self.native_len:
            # PyAV saw fewer frames than decord claimed; trust what can actually be decoded.
            self.native_len = self._fallback.native_len
            if self._map is not None:
                self._map = resample_indices(self.native_len, self.native_fps, self.fps)

    def close(self) -> None:
        self._vr = None


class FrameFolderReader(VideoReader):
    """A folder of JPEG frames `0001.jpg ... NNNN.jpg` (1-based, contiguous), taken to be at `fps`."""

    backend = "jpeg"

    def __init__(self, path: str | os.PathLike, fps: float = SSV2_FPS):
        from PIL import Image

        path = Path(path)
        numbered = {}
        for name in os.listdir(path):
            m = _FRAME_FILE.match(name)
            if m:
                numbered[int(m.group(1))] = name
        if not numbered:
            raise UserError(f"{path}: frame folder has no NNNN.jpg frames")
        n = max(numbered)
        missing = [i for i in range(1, n + 1) if i not in numbered]
        if missing:
            raise UserError(f"{path}: frame folder is missing frame {missing[0]:04d}.jpg "
                            f"({len(missing)} of {n} missing; frames must be 1..{n})")
        self._files = [path / numbered[i] for i in range(1, n + 1)]
        try:
            with Image.open(self._files[0]) as im:
                size = im.size
        except Exception as e:
            raise UserError(f"{self._files[0]}: cannot read image ({type(e).__name__}: {e})") from None
        super().__init__(path, n, fps, size, fps)

    def _read(self, wanted: np.ndarray) -> np.ndarray:
        from PIL import Image

        out = []
        for i in wanted:
            f = self._files[int(i)]
            try:
                with Image.open(f) as im:
                    arr = np.asarray(im.convert("RGB"))
            except Exception as e:
                raise UserError(f"{f}: cannot read image ({type(e).__name__}: {e})") from None
            if arr.shape[1::-1] != self.size:
                raise UserError(f"{f}: frame is {arr.shape[1]}x{arr.shape[0]}, first frame is {self.size[0]}x{self.size[1]}")
            out.append(arr)
        return np.stack(out)


class DecodedVideo(VideoReader):
    """A video decoded once and held in memory, read like any VideoReader: so that the stages of
    inference (detector, the model's clip sampling, the overlay) share one decode. The frames are the
    source reader's (already at its fps); `native_*` and `resampled` are the source's too."""

    backend = "memory"

    def __init__(self, frames: np.ndarray, source: VideoReader):
        super().__init__(source.path, len(frames), source.fps, (frames.shape[2], frames.shape[1]), fps=None)
        self.frames = frames
        self.native_fps, self.native_len, self.resampled = source.native_fps, source.native_len, source.resampled
        self.source_backend = source.backend

    def __len__(self) -> int:
        return len(self.frames)

    def _native(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self.frames)):
            raise IndexError(f"{self.path}: frame indices {idx.min()}..{idx.max()} outside 0..{len(self.frames) - 1}")
        return idx

    def _read(self, native_sorted_unique: np.ndarray) -> np.ndarray:
        return self.frames[native_sorted_unique]


def _declared(container, stream, native_fps: float) -> int | None:
    if stream.frames:
        return int(stream.frames)
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration:
        seconds = container.duration / 1_000_000  # AV_TIME_BASE
    else:
        return None
    return int(round(seconds * native_fps)) if native_fps > 0 and seconds > 0 else None


def declared_frames(path: str | os.PathLike, native_fps: float) -> int | None:
    """The native frame count the header of the video file `path` declares (None for a frame folder,
    or when the header says nothing usable). Opens the container only: nothing is decoded."""
    import av

    path = Path(path)
    if path.is_dir():
        return None
    quiet_decoders()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return None
            return _declared(container, container.streams.video[0], native_fps)
    except Exception:  # unreadable header: the decoder reports that
        return None


def decoding_problem(reader: VideoReader) -> str | None:
    """One line when the video decodes to fewer frames than its header declares (a truncated or cut
    file), else None. One frame (or 2%) of slack: a header's duration is rounded."""
    declared = reader.declared_frames
    got = reader.native_len
    if declared is None or got >= declared - max(1, declared // 50):
        return None
    return (f"{reader.path}: truncated or corrupt: only {got} of the {declared} frames its header declares "
            f"can be decoded")


def _check_shape(frames: np.ndarray, reader: VideoReader) -> np.ndarray:
    if reader._size is None and frames.ndim == 4:
        reader._size = (frames.shape[2], frames.shape[1])
    w, h = reader.size
    if frames.ndim != 4 or frames.shape[1:] != (h, w, 3) or frames.dtype != np.uint8:
        raise UserError(f"{reader.path}: decoded frames have shape {frames.shape} {frames.dtype}, expected [T,{h},{w},3] uint8")
    return frames


def open_video(path: str | os.PathLike, fps: float | None = SSV2_FPS, backend: str = "auto",
               num_threads: int = 1) -> VideoReader:
    """Open a .webm/.mp4 file or a frame folder.

    backend: "auto" (decord, PyAV if decord fails), "decord" (still falls back on read errors),
    "pyav". `fps=None` keeps the native frame rate (no resampling). `num_threads` per reader:
    1 suits DataLoader workers (parallelism comes from the workers).
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: video not found")
    if path.is_dir():
        return FrameFolderReader(path, fps=SSV2_FPS if fps is None else fps)
    if backend not in ("auto", "decord", "pyav"):
        raise ValueError(f"unknown video backend {backend!r} (auto, decord, pyav)")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: empty file")
    if backend != "pyav":
        try:
            return DecordReader(path, fps=fps, num_threads=num_threads)
        except Exception:
            pass  # decord cannot open it (or sees no frames): PyAV decides whether the file is bad
    return PyAVReader(path, fps=fps, num_threads=num_threads)


def find_video(video_root: str | os.PathLike, video_id: str) -> Path | None:
    """`<root>/<id>.webm`, `<root>/<id>.mp4`, or the frame folder `<root>/<id>/`; None when absent."""
    root = Path(video_root)
    for ext in VIDEO_EXTENSIONS:
        p = root / f"{video_id}{ext}"
        if p.is_file():
            return p
    p = root / str(video_id)
    return p if p.is_dir() else None


def list_videos(video_root: str | os.PathLike) -> dict[str, Path]:
    """Video id -> path for everything under `video_root`, with one directory listing
    (cheaper than `find_video` per id for 200k videos). Files win over frame folders."""
    root = Path(video_root)
    if not root.is_dir():
        raise UserError(f"{root}: is a file, expected a folder of videos or frame folders" if root.exists()
                        else f"{root}: video folder not found")
    found: dict[str, Path] = {}
    folders: dict[str, Path] = {}
    with os.scandir(root) as it:
        for entry in it:
            stem, ext = os.path.splitext(entry.name)
            if ext.lower() in VIDEO_EXTENSIONS and entry.is_file():
                if stem not in found or ext.lower() == VIDEO_EXTENSIONS[0]:
                    found[stem] = Path(entry.path)
            elif not ext and entry.is_dir():
                folders[entry.name] = Path(entry.path)
    for vid, p in folders.items():
        found.setdefault(vid, p)
    return found


def video_id_of(path: str | os.PathLike) -> str:
    """`.../2003.webm` -> "2003"; a frame folder `.../2003/` -> "2003": the name without its last
    extension (`clip.v1.webm` -> "clip.v1", `.hidden.webm` -> ".hidden"). A name that leaves no usable id
    (`..webm` -> ".", `...webm` -> "..": no folder can be named so) is a UserError naming the file."""
    path = Path(path)
    vid = path.name if path.is_dir() else path.stem
    if vid in ("", ".", ".."):
        raise UserError(f"{path}: the name without its last extension, {vid!r}, is not a usable video id "
                        f"(it names no folder); rename the file")
    return vid


def video_outputs(videos: Sequence[str | os.PathLike], root: str | os.PathLike) -> dict[str, Path]:
    """Each VIDEO argument -> `root/<video id>` (`video_id_of`), checked before any work: a name without
    a usable id, or two videos with one id (the second would replace the first's frames), is a
    UserError. The same file given twice is kept once."""
    root = Path(root)
    outs: dict[str, Path] = {}
    by_id: dict[str, str] = {}
    for video in videos:
        vid = video_id_of(video)
        first = by_id.setdefault(vid, str(video))
        if first != str(video):
            if os.path.realpath(first) == os.path.realpath(video):
                continue
            raise UserError(f"{video}: has the video id {vid!r}, as has {first}: both would be written to "
                            f"{root / vid}; rename one of them")
        outs[str(video)] = root / vid
    return outs


def _is_frame_folder(path: Path) -> bool:
    return any(_FRAME_FILE.match(n) for n in os.listdir(path))


def expand_videos(paths: Sequence[str | os.PathLike]) -> dict[str, Path]:
    """What the command-line tools take as VIDEO...: video id -> path, in the order given.

    A file is one video; a folder holding NNNN.jpg frames is one video; another folder is expanded
    to the videos inside it (`list_videos`); a path that does not exist but contains * ? [ is a
    glob (for shells that did not expand it). Missing paths, empty folders and globs matching
    nothing are UserErrors naming them, as is one id reached through two different paths.
    """
    import glob

    out: dict[str, Path] = {}
    for text in paths:
        path = Path(text)
        if path.exists():
            targets = [path]
        elif any(c in str(text) for c in "*?["):
            targets = [Path(p) for p in sorted(glob.glob(str(text)))]
            if not targets:
                raise UserError(f"{text}: no file matches this pattern")
        else:
            raise UserError(f"{path}: video not found")
        for target in targets:
            if target.is_dir() and not _is_frame_folder(target):
                found = list_videos(target)
                if not found:
                    raise UserError(f"{target}: folder has no videos (.webm/.mp4) and no frames (NNNN.jpg)")
                items = sorted(found.items())
            else:
                items = [(video_id_of(target), target)]
            for vid, p in items:
                if vid in out and out[vid] != p:
                    raise UserError(f"video id {vid} given twice: {out[vid]} and {p}")
                out[vid] = p
    return out


def extract_frames(video_path: str | os.PathLike, out_dir: str | os.PathLike, fps: float = SSV2_FPS,
                   quality: int = 90, overwrite: bool = False) -> int:
    """Write the video's frames as `out_dir/0001.jpg ...` (the official frame-folder layout).

    Frames are written into a temporary sibling folder which replaces `out_dir` at the end
    (`vislearn.common.files.atomic_folder`), so an interrupted extraction never leaves a partial folder under
    the final name. An existing `out_dir` is replaced only with `overwrite`, and only when it is what this
    function makes: a folder of `NNNN.jpg` files (a link, or a folder holding anything else, is the
    user's and is refused). A truncated video (`decoding_problem`) is refused. Returns the count.
    """
    from PIL import Image

    out_dir = output_folder(out_dir)
    if out_dir.is_symlink():
        raise UserError(f"{out_dir}: is a link, not a frame folder extract-frames made; it is kept "
                        f"(choose another --out)")
    if out_dir.is_dir():
        names = os.listdir(out_dir)
        other = next((n for n in sorted(names) if not _FRAME_FOLDER_FILE.match(n)
                      or os.path.islink(out_dir / n) or not os.path.isfile(out_dir / n)), None)
        if other is not None:
            what = f"{other}/" if os.path.isdir(out_dir / other) and not os.path.islink(out_dir / other) else other
            raise UserError(f"{out_dir}: holds {what}, so it is not a frame folder extract-frames made "
                            f"(those hold NNNN.jpg files only); it is kept (choose another --out)")
        if names and not overwrite:
            raise UserError(f"{out_dir}: frame folder exists and is not empty (extract-frames --overwrite replaces it)")
    refuse_input_overwrite([out_dir], [video_path])
    count = 0
    with open_video(video_path, fps=fps) as reader:
        if (problem := decoding_problem(reader)) is not None:
            raise UserError(problem)
        with atomic_folder(out_dir, replace=True) as tmp:
            for count, frame in enumerate(reader.iter_frames(), start=1):
                Image.fromarray(frame).save(tmp / f"{count:04d}.jpg", quality=quality)
            if count < len(reader):
                raise UserError(f"{reader.path}: truncated or corrupt: decoding stopped after {count} of "
                                f"{len(reader)} frames")
    return count
