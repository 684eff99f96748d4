"""Shared fixtures: the real Something-Else sample (skipped cleanly when absent) and small videos
encoded in the test run with PyAV (VP9 .webm at 12 fps, like SSv2)."""
from __future__ import annotations

from pathlib import Path

import av  # noqa: F401  load PyAV's FFmpeg before anything imports decord (its bundled libvpx breaks PyAV's VP9 encoder)
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "fixtures" / "something_else_sample"


def encode_video(path: Path, frames: np.ndarray, fps: int = 12) -> Path:
    """Encode uint8 RGB frames [T,H,W,3] with the project's writer (VP9 .webm takes odd sizes such
    as real SSv2's 427x240; H.264 .mp4 needs even ones)."""
    from vislearn.video.data.video_writer import write_video

    write_video(path, frames, fps=fps)
    return Path(path)


def coded_frames(num_frames: int, height: int = 48, width: int = 64) -> np.ndarray:
    """Frames whose index is written as a pattern of large flat blocks (4x4 grid of 16 levels
    per frame), so frame identity survives lossy compression: frame i is the closest original."""
    rng = np.random.default_rng(1234)
    levels = rng.integers(0, 16, size=(num_frames, 4, 4)) * 16 + 8
    levels[:, 0, 0] = (np.arange(num_frames) * 37) % 256  # distinct per frame
    img = np.repeat(np.repeat(levels, -(-height // 4), axis=1), -(-width // 4), axis=2)[:, :height, :width]
    out = np.stack([img, 255 - img, (img * 3) % 256], axis=-1).astype(np.uint8)
    return out


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tests (2 shared cores: more threads only fight each other).
    Use with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    if not (SAMPLE / "annotations.json").exists():
        pytest.skip(f"real Something-Else sample not found at {SAMPLE}")
    return SAMPLE


@pytest.fixture(scope="session")
def sample_root(sample_dir) -> Path:
    return sample_dir


@pytest.fixture(scope="session")
def sample_annotations(sample_dir) -> Path:
    return sample_dir / "annotations.json"


@pytest.fixture(scope="session")
def sample_splits(sample_dir) -> Path:
    return sample_dir / "splits"


@pytest.fixture(scope="session")
def sample_boxes(sample_dir):
    from vislearn.video.data.annotations import AnnotationFile

    return AnnotationFile.load(sample_dir / "annotations.json")


def read_jpeg_folder(folder: Path) -> np.ndarray:
    from PIL import Image

    files = sorted(folder.glob("*.jpg"))
    return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])


@pytest.fixture(scope="session")
def sample_videos(sample_dir, tmp_path_factory) -> Path:
    """Folder with `<id>.webm` for sample videos 57082 and 151201 (real 427x240 frames, 12 fps)."""
    root = tmp_path_factory.mktemp("sample_videos")
    for vid in ("57082", "151201"):
        encode_video(root / f"{vid}.webm", read_jpeg_folder(sample_dir / "frames" / vid))
    return root


@pytest.fixture(scope="session")
def coded_video(tmp_path_factory) -> tuple[Path, Path, np.ndarray]:
    """(webm path, mp4 path, original frames) of 30 coded 64x48 frames at 12 fps."""
    root = tmp_path_factory.mktemp("coded")
    frames = coded_frames(30)
    return encode_video(root / "v.webm", frames), encode_video(root / "v.mp4", frames), frames


@pytest.fixture(scope="session")
def vt():
    """Video test helpers: vt.encode(path, frames, fps), vt.coded_frames(n, h, w), vt.read_jpegs(folder)."""
    from types import SimpleNamespace

    return SimpleNamespace(encode=encode_video, coded_frames=coded_frames, read_jpegs=read_jpeg_folder)
