"""Nothing lost, round two (issue 24): the frame extractor, the synthetic set, the box store and the
exporter never delete what the user owns, never leave a mix after a kill, clean up what killed runs
left, refuse bad names in one line, and say so when a video is truncated. Real parts: videos encoded
here, the CLIs in-process and, where a kill is needed, as processes killed with SIGKILL."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import coded_frames, encode_video
from cli_helpers import call, one_line

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}

pytestmark = pytest.mark.usefixtures("one_thread")


def data_main(*argv):
    from vislearn.video.data.__main__ import main

    return call(main, *argv)


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> sha1 of every file under `folder` (hidden ones too)."""
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def dead_pid() -> int:
    """The pid of a process that has ended (what a SIGKILLed run leaves in its temporary names)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A 6-frame 64x48 VP9 video."""
    return encode_video(tmp_path_factory.mktemp("clip") / "clip.webm", coded_frames(6))


def frames_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ----------------------------------------------------------------------- 1. extract-frames: the video id

def test_extract_frames_id_is_the_name_without_its_last_extension(clip, tmp_path):
    a, b = tmp_path / "clip.v1.webm", tmp_path / "clip.v2.webm"
    a.write_bytes(clip.read_bytes())
    b.write_bytes(clip.read_bytes())
    out = tmp_path / "out"
    rc, _, err = data_main("extract-frames", a, b, "--out", out)
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["clip.v1", "clip.v2"]
    assert frames_in(out / "clip.v1") == frames_in(out / "clip.v2") == [f"{i:04d}.jpg" for i in range(1, 7)]
    rc, _, err = data_main("extract-frames", a, b, "--out", out, "--overwrite")  # each replaces its own
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["clip.v1", "clip.v2"]


def test_extract_frames_hidden_name_never_replaces_out(clip, tmp_path):
    out = tmp_path / "out"
    rc, _, err = data_main("extract-frames", clip, "--out", out)
    assert rc == 0, err
    (out / "NOTES.txt").write_text("my notes")
    hidden = tmp_path / ".hidden.webm"
    hidden.write_bytes(clip.read_bytes())
    rc, _, err = data_main("extract-frames", hidden, "--out", out, "--overwrite")
    assert rc == 0, err
    assert (out / "NOTES.txt").read_text() == "my notes"
    assert len(frames_in(out / "clip")) == 6 and len(frames_in(out / ".hidden")) == 6


@pytest.mark.parametrize("name", ["...webm", "..webm"])
def test_extract_frames_refuses_a_name_without_a_usable_id(clip, tmp_path, name):
    out = tmp_path / "out"
    out.mkdir()
    (out / "NOTES.txt").write_text("my notes")
    bad = tmp_path / name
    bad.write_bytes(clip.read_bytes())
    before = snapshot(tmp_path)
    rc, _, err = data_main("extract-frames", clip, bad, "--out", out, "--overwrite")
    line = one_line(err)
    assert rc == 2 and str(bad) in line and "id" in line, line
    assert snapshot(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "out"])


def test_extract_frames_refuses_two_videos_with_one_id(clip, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = tmp_path / "a" / "clip.webm", tmp_path / "b" / "clip.webm"
    a.write_bytes(clip.read_bytes())
    b.write_bytes(clip.read_bytes())
    out = tmp_path / "out"
    for extra in ([], ["--overwrite"]):
        rc, _, err = data_main("extract-frames", a, b, "--out", out, *extra)
        line = one_line(err)
        assert rc == 2 and "clip" in line and str(a) in line and str(b) in line, line
        assert not out.exists()  # nothing written


# ------------------------------------------------------------- 2. extract-frames --overwrite: only frame folders

def test_extract_frames_overwrite_replaces_only_a_frame_folder(clip, tmp_path):
    out = tmp_path / "out"
    mine = out / "clip"
    (mine / "sub").mkdir(parents=True)
    (mine / "sub" / "keep.txt").write_text("mine")
    (mine / "0001.jpg").write_bytes(b"a frame of mine")
    before = snapshot(out)
    for extra in ([], ["--overwrite"]):
        rc, _, err = data_main("extract-frames", clip, "--out", out, *extra)
        line = one_line(err)
        assert rc == 1 and str(mine) in line and "frame folder" in line and "--overwrite" not in line.split(";")[-1], line
        assert snapshot(out) == before
    # a folder of frames (what the command makes) is replaced
    (mine / "sub" / "keep.txt").unlink()
    (mine / "sub").rmdir()
    (mine / "0002.jpg").write_bytes(b"another")
    rc, _, err = data_main("extract-frames", clip, "--out", out, "--overwrite")
    assert rc == 0, err
    assert frames_in(mine) == [f"{i:04d}.jpg" for i in range(1, 7)] and (mine / "0001.jpg").read_bytes()[:2] == b"\xff\xd8"
    assert sorted(p.name for p in out.iterdir()) == ["clip"]


def test_extract_frames_overwrite_refuses_a_link(clip, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "0001.jpg").write_bytes(b"frame")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(elsewhere, out / "clip")
    rc, _, err = data_main("extract-frames", clip, "--out", out, "--overwrite")
    line = one_line(err)
    assert rc == 1 and str(out / "clip") in line and "link" in line, line
    assert (out / "clip").is_symlink() and os.readlink(out / "clip") == str(elsewhere)
    assert frames_in(elsewhere) == ["0001.jpg"] and sorted(p.name for p in out.iterdir()) == ["clip"]


# ----------------------------------------------------- 3. synthetic: replaced whole or not at all, under SIGKILL

SYNTH = [sys.executable, "-m", "vislearn.video.data.synthetic", "--width", "96", "--height", "96", "--quiet"]


def kill_while_rendering(out: Path, videos: int, seed: int) -> None:
    """Start `vislearn video synthetic` and SIGKILL it once it has written two new videos."""
    start = time.time()
    proc = subprocess.Popen([*SYNTH, "--out", str(out), "--videos", str(videos), "--seed", str(seed)],
                            env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while proc.poll() is None:
            new = 0
            with contextlib.suppress(OSError):  # a name seen by rglob may be renamed before its stat
                new = sum(1 for p in out.parent.rglob("*.webm") if not p.name.startswith(".")
                          and p.stat().st_mtime >= start)
            if new >= 2:
                break
            time.sleep(0.005)
        assert proc.poll() is None, f"finished before it could be killed: {proc.stderr.read().decode()}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


def test_synthetic_killed_while_replacing_keeps_the_old_set_whole(tmp_path):
    from vislearn.video.data.synthetic.__main__ import main

    out = tmp_path / "set"
    rc, _, err = call(main, "--out", out, "--videos", "3", "--seed", "1", "--width", "96", "--height", "96", "--quiet")
    assert rc == 0, err
    old = snapshot(out)
    kill_while_rendering(out, videos=80, seed=2)
    assert snapshot(out) == old  # the old set, every file as it was: no new video, no mix
    meta = json.loads((out / "synthetic.json").read_text())
    assert sorted(p.stem for p in (out / "videos").iterdir()) == sorted(meta["videos"]) == ["1", "2", "3"]
    rc, _, err = call(main, "--out", out, "--videos", "4", "--seed", "2", "--width", "96", "--height", "96", "--quiet")
    assert rc == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]  # the killed run's leftovers are gone
    meta = json.loads((out / "synthetic.json").read_text())
    assert meta["settings"]["seed"] == 2 and sorted(p.stem for p in (out / "videos").iterdir()) == sorted(meta["videos"])


@pytest.mark.parametrize("extra,named", [("splits/compositional/labels.json", "splits/"), ("NOTES.txt", "NOTES.txt"),
                                         ("videos/mine.txt", "videos/mine.txt")])
def test_synthetic_keeps_a_set_that_holds_what_it_did_not_write(tmp_path, extra, named):
    """The set is replaced whole, so a split folder made inside it (as the demo does) or a user's notes
    would go with it: such a folder is refused, untouched."""
    from vislearn.video.data.synthetic.__main__ import main

    out = tmp_path / "set"
    args = ["--videos", "2", "--seed", "1", "--width", "96", "--height", "96", "--quiet"]
    rc, _, err = call(main, "--out", out, *args)
    assert rc == 0, err
    (out / extra).parent.mkdir(parents=True, exist_ok=True)
    (out / extra).write_text("mine")
    before = snapshot(out)
    rc, _, err = call(main, "--out", out, *args)
    line = one_line(err)
    assert rc == 2 and line.startswith(f"error: {out}: holds {named},"), line
    assert snapshot(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["set"]


def test_synthetic_killed_fresh_build_leaves_nothing_the_rerun_refuses(tmp_path):
    from vislearn.video.data.synthetic.__main__ import main

    out = tmp_path / "set"
    kill_while_rendering(out, videos=80, seed=2)
    assert not out.exists() or not any(out.iterdir())
    rc, _, err = call(main, "--out", out, "--videos", "3", "--seed", "2", "--width", "96", "--height", "96", "--quiet")
    assert rc == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]
    assert len(list((out / "videos").iterdir())) == 3


# ------------------------------------------------------------------ 4. what SIGKILLed runs left is removed

def test_a_killed_export_leaves_a_temporary_file_the_next_run_removes(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from test_export import make_checkpoint
    from vislearn.video.actions.export import main

    ckpt, _, _ = make_checkpoint(tmp_path, "stin_oie_nl")
    out = tmp_path / "m.onnx"
    code = textwrap.dedent(f"""
        import os, signal, sys
        from vislearn.video.actions import export
        write = export.write_onnx
        def write_and_die(*a, **k):
            write(*a, **k)
            os.kill(os.getpid(), signal.SIGKILL)
        export.write_onnx = write_and_die
        sys.exit(export.main([{str(ckpt)!r}, "--format", "onnx", "--out", {str(out)!r}, "--threads", "1"]))
    """)
    assert subprocess.run([sys.executable, "-c", code], env=ENV, cwd=ROOT).returncode == -signal.SIGKILL
    left = list(tmp_path.glob(".m.*.tmp.onnx"))
    assert len(left) == 1 and not out.exists()
    assert main([str(ckpt), "--format", "onnx", "--out", str(out), "--threads", "1"]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "stin_oie_nl.pt"]


def test_stale_temporary_files_of_dead_runs_only(tmp_path):
    from vislearn.common.files import atomic_path, remove_stale_files

    dead = dead_pid()
    for name in (f".m.{dead}.abcd_123.tmp.onnx", ".m.abcd_123.tmp.onnx",  # a killed run's; an older version's
                 f".m.{dead}.abcd_123.tmp.pt", f".mm.{dead}.abcd_123.tmp.onnx", "m.onnx.txt"):  # other outputs'
        (tmp_path / name).write_bytes(b"x")
    with atomic_path(tmp_path / "m.onnx") as live:
        live.write_bytes(b"being written")
        assert live.name.startswith(f".m.{os.getpid()}.") and live.name.endswith(".tmp.onnx")
        assert sorted(p.name for p in remove_stale_files(tmp_path / "m.onnx")) == \
            sorted([f".m.{dead}.abcd_123.tmp.onnx", ".m.abcd_123.tmp.onnx"])
        assert live.read_bytes() == b"being written"  # a live run's file is kept
    assert (tmp_path / "m.onnx").read_bytes() == b"being written"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f".m.{dead}.abcd_123.tmp.pt", f".mm.{dead}.abcd_123.tmp.onnx", "m.onnx", "m.onnx.txt"])


def test_a_killed_frame_folder_swap_leaves_a_link_the_next_run_removes(clip, tmp_path):
    """OUT/clip was a link when a run swapped it out and was SIGKILLed before removing the old one:
    the link is left as `.clip.building.PID.TAG`. The next run removes the link, never what it points to."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "0001.jpg").write_bytes(b"the user's frame")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(elsewhere, out / "clip")
    code = textwrap.dedent(f"""
        import os, signal
        from vislearn.common import files
        exchange = files._exchange
        def exchange_and_die(a, b):  # killed right after the swap, before the old one is removed
            exchange(a, b)
            os.kill(os.getpid(), signal.SIGKILL)
        files._exchange = exchange_and_die
        with files.atomic_folder({str(out / "clip")!r}, replace=True) as tmp:
            (tmp / "0001.jpg").write_bytes(b"new")
    """)
    assert subprocess.run([sys.executable, "-c", code], env=ENV, cwd=ROOT).returncode == -signal.SIGKILL
    left = list(out.glob(".clip.building.*"))
    assert len(left) == 1 and left[0].is_symlink()
    rc, _, err = data_main("extract-frames", clip, "--out", out, "--overwrite")
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["clip"] and len(frames_in(out / "clip")) == 6
    assert frames_in(elsewhere) == ["0001.jpg"] and (elsewhere / "0001.jpg").read_bytes() == b"the user's frame"


def test_stale_leftovers_of_dead_runs_only(tmp_path):
    from vislearn.common.files import remove_stale

    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "x").write_text("keep")
    dead, live = dead_pid(), os.getpid()
    os.symlink(target, tmp_path / f".s.building.{dead}.aaaa1111")
    (tmp_path / f".s.building.{dead}.bbbb2222").write_text("half")
    (tmp_path / f".s.building.{live}.cccc3333").mkdir()
    removed = remove_stale(tmp_path / "s")
    assert len(removed) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".s.building.{live}.cccc3333", "elsewhere"]
    assert (target / "x").read_text() == "keep"


# ------------------------------------------------------------------ 5. index-boxes: a frame of another video

def test_index_boxes_refuses_a_frame_of_another_video(tmp_path):
    part = tmp_path / "part.json"
    rec = {"name": "2/0003.jpg", "labels": [{"box2d": {"x1": 1, "y1": 2, "x2": 30, "y2": 40}, "category": "cup",
                                             "standard_category": "0000", "gt_annotation": "object 0"}],
           "nr_instances": 1, "gt_placeholders": ["cup"]}
    part.write_text(json.dumps({"1": [rec]}))
    rc, _, err = data_main("index-boxes", part, "--out", tmp_path / "store", "--quiet")
    line = one_line(err)
    assert rc == 2 and str(part) in line and "video 1" in line and "2/0003.jpg" in line, line
    assert not (tmp_path / "store").exists()


# ------------------------------------------------------------------ 6. a truncated video is not "ok"

@pytest.fixture(scope="module")
def truncated(tmp_path_factory) -> Path:
    """A 30-frame VP9 video cut after a fifth of its bytes: its header says 2.5 s, 3 frames decode."""
    root = tmp_path_factory.mktemp("truncated")
    whole = encode_video(root / "whole.webm", coded_frames(30))
    path = root / "9.webm"
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 5])
    return path


def test_a_truncated_video_is_reported_by_the_reader(truncated):
    from vislearn.common.video import decoding_problem, open_video

    for backend in ("auto", "pyav"):
        with open_video(truncated, backend=backend) as r:
            assert r.declared_frames == 30 and len(r) < 30
            problem = decoding_problem(r)
            assert problem and str(truncated) in problem and "30" in problem and "truncated" in problem
    whole = truncated.with_name("whole.webm")
    with open_video(whole) as r:
        assert r.declared_frames == 30 and decoding_problem(r) is None


def test_infer_says_a_truncated_video_is_not_ok(truncated, tmp_path, capsys):
    import torch

    from vislearn.common.checkpoint import save_checkpoint
    from vislearn.video.actions.config import TrainConfig, apply, to_dict
    from vislearn.video.actions.infer import main
    from vislearn.video.actions.models import create_model

    args = {"width": 4}
    torch.manual_seed(0)
    model = create_model("small3d", 5, **args)
    config = to_dict(apply(TrainConfig(), {"model": "small3d", "model_args": args, "input_size": 32,
                                           "num_rgb_frames": 4}, "test"))
    ckpt = tmp_path / "scene.pt"
    save_checkpoint({"model": model.state_dict(), "model_name": "small3d", "model_args": args, "config": config,
                     "class_names": [f"class {i}" for i in range(5)], "epoch": 1}, ckpt)
    whole = truncated.with_name("whole.webm")
    rc = main([str(whole), str(truncated), "--checkpoint", str(ckpt), "--device", "cpu", "--json", "-", "--quiet"])
    res = {Path(r["video"]).name: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert res["whole.webm"]["ok"] and res["whole.webm"]["num_frames"] == 30
    bad = res["9.webm"]
    assert rc == 1 and not bad["ok"] and "truncated" in bad["error"] and "30" in bad["error"], bad


def test_extract_frames_refuses_a_truncated_video(truncated, tmp_path):
    rc, _, err = data_main("extract-frames", truncated, "--out", tmp_path / "out")
    line = one_line(err)
    assert rc == 1 and str(truncated) in line and "truncated" in line, line
    assert not (tmp_path / "out" / "9").exists()


# ------------------------------------------------------------------ 7. one line, no library chatter

@pytest.mark.parametrize("content", [b"\x1aE\xdf\xa3" + bytes(range(256)) * 20, b"not a video at all" * 100, "cut"])
def test_a_corrupt_video_is_one_line_without_decoder_chatter(truncated, tmp_path, content):
    bad = tmp_path / "5.webm"
    bad.write_bytes(truncated.read_bytes() if content == "cut" else content)
    r = subprocess.run([sys.executable, "-m", "vislearn.video.data", "extract-frames", str(bad), "--out",
                        str(tmp_path / "out")], env=ENV, cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 1 and one_line(r.stderr).startswith(f"error: {bad}: "), r.stderr


def test_missing_glyphs_are_not_printed_beside_the_error(tmp_path):
    code = textwrap.dedent("""
        import sys
        from vislearn.common.cli import run_main
        from vislearn.common.errors import UserError
        def work():
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            fig, ax = plt.subplots()
            ax.set_title("\\u4e2d\\u6587 \\u2603 class")
            ax.set_xticks([0], ["\\u4e2d"], fontfamily="No Such Font")
            fig.canvas.draw()
            raise UserError("labels.json: something is wrong")
        sys.exit(run_main(work))
    """)
    r = subprocess.run([sys.executable, "-c", code], env={**ENV, "MPLCONFIGDIR": str(tmp_path)}, cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 2 and one_line(r.stderr) == "error: labels.json: something is wrong"


# ------------------------------------------------------------------ 8. --width / --height say the real rule

@pytest.mark.parametrize("value", ["0", "-2", "95", "97", "4098", "abc"])
def test_synthetic_size_says_the_real_rule(tmp_path, value):
    from vislearn.video.data.synthetic.__main__ import main

    for flag in ("--width", "--height"):
        rc, _, err = call(main, "--out", tmp_path / "x", "--videos", "1", flag, value)
        line = one_line(err)
        assert rc == 2 and flag in line and "even" in line and "96" in line and "4096" in line, line
        assert "at least 1" not in line
    assert not (tmp_path / "x").exists()


def test_decoder_silencing_gives_stderr_back(tmp_path, capfd):
    """decord's own lines are silenced by pointing fd 2 elsewhere for the call: afterwards (also after
    calls that overlapped in threads, and after a failure) the process's stderr is what it was."""
    import threading

    from vislearn.common.errors import UserError
    from vislearn.common.video import open_video

    bad = tmp_path / "5.webm"
    bad.write_bytes(b"not a video at all" * 100)
    good = encode_video(tmp_path / "6.webm", coded_frames(4))
    errors = []

    def work():
        for _ in range(5):
            try:
                open_video(bad)
            except UserError as e:
                errors.append(e)
            assert len(open_video(good).read_all()) == 4

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    os.write(2, b"fd 2 still here\n")
    print("sys.stderr too", file=sys.stderr)
    err = capfd.readouterr().err
    assert len(errors) == 20 and err == "fd 2 still here\nsys.stderr too\n", err
