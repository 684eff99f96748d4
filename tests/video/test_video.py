from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from vislearn.common.errors import UserError
from vislearn.common.video import (DecordReader, FrameFolderReader, PyAVReader, extract_frames, find_video,
                            list_videos, open_video, resample_indices)

IDX = [5, 0, 5, 29, 12, 12, 3]


def nearest_original(decoded: np.ndarray, originals: np.ndarray) -> np.ndarray:
    d = np.abs(decoded[:, None].astype(np.int16) - originals[None].astype(np.int16)).mean(axis=(2, 3, 4))
    return d.argmin(axis=1)


@pytest.mark.parametrize("which", [0, 1], ids=["webm", "mp4"])
def test_decord_and_pyav_decode_the_same_frames(coded_video, which):
    path, frames = coded_video[which], coded_video[2]
    d = open_video(path, backend="decord")
    p = open_video(path, backend="pyav")
    assert isinstance(d, DecordReader) and isinstance(p, PyAVReader)
    assert len(d) == len(p) == len(frames) == 30
    assert d.fps == p.fps == 12 and not d.resampled and not p.resampled
    assert d.size == p.size == (64, 48)
    a, b = d.get_frames(IDX), p.get_frames(IDX)
    assert a.shape == (len(IDX), 48, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)  # same file: decoders agree exactly
    np.testing.assert_array_equal(d.read_all(), p.read_all())
    # frame i of the decoded video is original frame i (after lossy coding)
    np.testing.assert_array_equal(nearest_original(a, frames), IDX)
    err = float(np.abs(a.astype(int) - frames[IDX]).mean())
    assert err < 10, err  # lossy coding (chroma subsampling at colour edges)


def test_frame_folder_matches_video_approximately(coded_video, tmp_path):
    path, frames = coded_video[0], coded_video[2]
    n = extract_frames(path, tmp_path / "v")
    assert n == 30
    assert sorted(p.name for p in (tmp_path / "v").iterdir())[:2] == ["0001.jpg", "0002.jpg"]
    folder = open_video(tmp_path / "v")
    assert isinstance(folder, FrameFolderReader) and len(folder) == 30 and folder.size == (64, 48)
    video = open_video(path).get_frames(IDX)
    jpeg = folder.get_frames(IDX)
    err = float(np.abs(jpeg.astype(int) - video).mean())
    assert err < 8, err  # JPEG vs video: compression noise only
    np.testing.assert_array_equal(nearest_original(jpeg, frames), IDX)


def test_extract_frames_refuses_to_overwrite(coded_video, tmp_path):
    out = tmp_path / "f"
    out.mkdir()
    (out / "0001.jpg").write_bytes(b"x")
    with pytest.raises(UserError, match="not empty"):
        extract_frames(coded_video[0], out)
    assert extract_frames(coded_video[0], out, overwrite=True) == 30
    assert len(list(out.iterdir())) == 30


def test_resampling_to_12_fps(vt, tmp_path):
    frames = vt.coded_frames(24)
    path = vt.encode(tmp_path / "v24.webm", frames, fps=24)
    native = open_video(path, fps=None)
    assert native.fps == 24 and not native.resampled and len(native) == 24
    for backend in ("decord", "pyav"):
        r = open_video(path, backend=backend)
        assert r.resampled and r.fps == 12 and r.native_fps == 24 and len(r) == 12
        np.testing.assert_array_equal(r.get_frames([0, 1, 11]), native.get_frames([0, 2, 22]))
    assert list(resample_indices(10, 30, 12)) == [0, 2, 5, 7]


def test_pyav_iter_frames_resampled(vt, tmp_path):
    path = vt.encode(tmp_path / "v24.webm", vt.coded_frames(10), fps=24)
    r = open_video(path, backend="pyav")
    got = np.stack(list(r.iter_frames()))
    np.testing.assert_array_equal(got, open_video(path, fps=None, backend="pyav").get_frames([0, 2, 4, 6, 8]))


def test_decord_read_error_falls_back_to_pyav(coded_video):
    r = open_video(coded_video[0], backend="decord")
    expected = open_video(coded_video[0], backend="pyav").get_frames(IDX)

    class Broken:  # what decord does on some real SSv2 files: raises while decoding
        def get_batch(self, indices):
            raise RuntimeError("[decord] cannot find the frame")

    r._vr = Broken()
    np.testing.assert_array_equal(r.get_frames(IDX), expected)
    assert r.backend == "pyav"


def test_decord_open_error_falls_back_to_pyav(coded_video, monkeypatch):
    import decord

    def refuse(*a, **k):
        raise RuntimeError("decord: Error reading")

    monkeypatch.setattr(decord, "VideoReader", refuse)
    r = open_video(coded_video[0])
    assert r.backend == "pyav" and len(r) == 30


def test_missing_video(tmp_path):
    with pytest.raises(UserError, match="nope.webm: video not found"):
        open_video(tmp_path / "nope.webm")


@pytest.mark.parametrize("content", [b"", b"\x1aE\xdf\xa3" + bytes(range(256)) * 20, b"not a video at all" * 100])
def test_corrupt_video_names_the_file(tmp_path, content):
    path = tmp_path / "123.webm"
    path.write_bytes(content)
    with pytest.raises(UserError, match="123.webm"):
        open_video(path)


def test_zero_frame_video(tmp_path):
    path = tmp_path / "0.webm"
    with av.open(str(path), mode="w") as c:
        s = c.add_stream("libvpx-vp9", rate=Fraction(12, 1))
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
    with pytest.raises(UserError, match="0.webm"):
        open_video(path)


def test_frame_folder_errors(tmp_path):
    folder = tmp_path / "7"
    folder.mkdir()
    with pytest.raises(UserError, match="no NNNN.jpg"):
        open_video(folder)
    img = Image.fromarray(np.zeros((8, 10, 3), np.uint8))
    img.save(folder / "0001.jpg")
    img.save(folder / "0003.jpg")
    with pytest.raises(UserError, match="missing frame 0002.jpg"):
        open_video(folder)
    (folder / "0002.jpg").write_bytes(b"garbage")
    r = open_video(folder)
    assert len(r) == 3 and r.size == (10, 8)
    assert r.get_frames([0, 2, 0]).shape == (3, 8, 10, 3)
    with pytest.raises(UserError, match="0002.jpg"):
        r.get_frames([1])


def test_indices_out_of_range(coded_video):
    r = open_video(coded_video[0])
    with pytest.raises(IndexError):
        r.get_frames([30])
    with pytest.raises(IndexError):
        r.get_frames([-1])


def test_find_and_list_videos(tmp_path):
    (tmp_path / "1.webm").write_bytes(b"x")
    (tmp_path / "2.mp4").write_bytes(b"x")
    (tmp_path / "3").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    assert find_video(tmp_path, "1") == tmp_path / "1.webm"
    assert find_video(tmp_path, "2") == tmp_path / "2.mp4"
    assert find_video(tmp_path, "3") == tmp_path / "3"
    assert find_video(tmp_path, "4") is None
    assert list_videos(tmp_path) == {"1": tmp_path / "1.webm", "2": tmp_path / "2.mp4", "3": tmp_path / "3"}
    with pytest.raises(UserError, match="video folder not found"):
        list_videos(tmp_path / "absent")


def test_real_sample_video_lines_up_with_frames_and_boxes(sample_dir, sample_videos, sample_boxes, vt):
    """Real SSv2 frames (57082) encoded to VP9 webm at 12 fps: decoded frame i is JPEG i, and the
    annotated boxes of frame i lie inside the decoded frame."""
    jpegs = vt.read_jpegs(sample_dir / "frames" / "57082")
    for backend in ("decord", "pyav"):
        r = open_video(sample_videos / "57082.webm", backend=backend)
        assert len(r) == len(jpegs) == 38
        assert r.size == (427, 240) and r.fps == 12
        idx = [0, 7, 19, 37]
        dec = r.get_frames(idx)
        diff = np.abs(dec.astype(int) - jpegs[idx]).mean(axis=(1, 2, 3))
        assert (diff < 6).all(), diff
        # and decoded frame i is closer to JPEG i than to its neighbours
        assert list(nearest_original(dec, jpegs)) == idx
    vb = sample_boxes.get("57082")
    assert vb.num_frames == 38
    w, h = r.size
    assert (vb.xyxy[:, [0, 2]] <= w).all() and (vb.xyxy[:, [1, 3]] <= h).all() and (vb.xyxy >= 0).all()


def test_real_sample_with_fewer_annotated_than_decoded_frames(sample_dir, sample_videos, sample_boxes):
    r = open_video(sample_videos / "151201.webm")
    assert len(r) == 33 == len(list((sample_dir / "frames" / "151201").glob("*.jpg")))
    assert sample_boxes.get("151201").num_frames == 23


@pytest.mark.parametrize("where", ["after fd 2 is silenced", "while opening /dev/null", "inside the call"])
def test_ctrl_c_anywhere_in_the_decoder_silencer_restores_stderr(monkeypatch, where):
    """An interrupt that lands while decord's stderr is silenced must not leave fd 2 on /dev/null: the
    command's "interrupted" line and its partial-results note went there (a flaky CI failure)."""
    import os

    from vislearn.common import video

    def ident(fd):
        st = os.fstat(fd)
        return st.st_dev, st.st_ino

    before = ident(2)
    real_dup2, real_open = os.dup2, os.open

    def dup2_then_interrupt(a, b, *rest):
        real_dup2(a, b, *rest)
        if b == 2 and ident(2) != before:
            raise KeyboardInterrupt

    def open_interrupted(path, *rest):
        if path == os.devnull:
            raise KeyboardInterrupt
        return real_open(path, *rest)

    if where == "after fd 2 is silenced":
        monkeypatch.setattr(os, "dup2", dup2_then_interrupt)
    elif where == "while opening /dev/null":
        monkeypatch.setattr(os, "open", open_interrupted)
    fds = set(os.listdir("/proc/self/fd"))
    with pytest.raises(KeyboardInterrupt):
        with video._no_stderr():
            if where == "inside the call":
                assert ident(2) != before  # silenced while decord runs
                raise KeyboardInterrupt
    monkeypatch.undo()
    assert ident(2) == before and video._silenced == {"depth": 0, "saved": -1}
    assert set(os.listdir("/proc/self/fd")) <= fds  # the saved descriptor is closed, not leaked
    with video._no_stderr():  # and the next call silences and restores as before
        assert ident(2) != before
    assert ident(2) == before
