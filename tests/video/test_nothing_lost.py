"""Nothing lost, nothing cryptic (issue 17): outputs never clobber user files or inputs, are atomic
(also under a full disk and Ctrl-C), silent wrong results are refused, and every user mistake is one
line with exit code 2. Real parts: the real Something-Else sample, videos encoded here, models
trained here, the CLIs in-process and, where a signal or a file size limit is needed, as processes."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from box_data import make_box_split, run_args
from vislearn.common.outputs import HIDDEN
from conftest import coded_frames, encode_video
from cli_helpers import call, default_sigint, one_line, snapshot, unwritable

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def train_main(*argv):
    from vislearn.video.actions.train import main

    return call(main, *argv)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def box_split(tmp_path_factory):
    return make_box_split(tmp_path_factory.mktemp("boxes"), videos=40, frames=8)


@pytest.fixture(scope="module")
def run(box_split, tmp_path_factory) -> Path:
    """A finished 1-epoch training run of a tiny STIN+OIE on the box split."""
    out = tmp_path_factory.mktemp("run") / "run"
    rc, _, err = train_main(*run_args(box_split, out))
    assert rc == 0, err
    return out


@pytest.fixture(scope="module")
def mp4(tmp_path_factory) -> Path:
    """Video 1000 of the box split as a 12-fps H.264 .mp4 (64x48)."""
    return encode_video(tmp_path_factory.mktemp("mp4") / "1000.mp4", coded_frames(12))


# ------------------------------------------------------------------------------------ data loss

def test_index_boxes_refuses_a_folder_that_is_not_a_store(sample_annotations, tmp_path):
    from vislearn.video.data.__main__ import main

    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    rc, _, err = call(main, "index-boxes", sample_annotations, "--out", out, "--quiet")
    assert rc == 2 and "not a box store" in one_line(err)
    assert (out / "notes.txt").read_text() == "my notes" and len(list(out.iterdir())) == 1


def test_box_store_has_normal_permissions_and_replaces_a_store(sample_annotations, tmp_path):
    from vislearn.video.data.__main__ import main
    from vislearn.video.data.box_store import BoxStore

    out = tmp_path / "store"
    for _ in range(2):  # the second run replaces the first store
        rc, _, err = call(main, "index-boxes", sample_annotations, "--out", out, "--quiet")
        assert rc == 0, err
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask
    assert len(BoxStore(out)) == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]  # nothing left beside it


def test_a_store_is_there_at_every_instant_while_it_is_replaced(sample_annotations, tmp_path):
    """A process replaces the store 40 times while this one looks at it: a kill at any of the
    instants looked at would leave exactly what is seen, so the store must never be missing."""
    from vislearn.video.data.box_store import index_boxes

    out = tmp_path / "store"
    index_boxes([sample_annotations], out)
    code = f"from vislearn.video.data.box_store import index_boxes\nfor _ in range(40): index_boxes([{str(sample_annotations)!r}], {str(out)!r})\n"
    proc = subprocess.Popen([sys.executable, "-c", code], env=ENV, cwd=ROOT, stderr=subprocess.PIPE)
    looks = missing = 0
    while proc.poll() is None:
        looks += 1
        missing += not (out / "meta.json").is_file() or not (out / "xyxy.npy").is_file()
    assert proc.returncode == 0, proc.stderr.read().decode()
    assert looks > 1000 and missing == 0, f"store missing at {missing} of {looks} looks"


def test_a_killed_build_keeps_the_old_store_and_its_leftovers_are_removed(sample_annotations, tmp_path):
    from vislearn.video.data.box_store import BoxStore, index_boxes

    out = tmp_path / "store"
    index_boxes([sample_annotations], out)
    code = textwrap.dedent(f"""
        import os, signal
        from vislearn.common.files import atomic_folder
        with atomic_folder({str(out)!r}, replace=True) as tmp:
            (tmp / "half.npy").write_bytes(b"x")
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert subprocess.run([sys.executable, "-c", code], env=ENV, cwd=ROOT).returncode == -signal.SIGKILL
    assert len(BoxStore(out)) == 7  # the old store, whole
    assert len(list(tmp_path.glob(".store.building.*"))) == 1
    index_boxes([sample_annotations], out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_infer_refuses_to_render_onto_its_input(run, box_split, mp4, tmp_path):
    from vislearn.video.actions.infer import main

    video = tmp_path / mp4.name
    shutil.copy(mp4, video)
    before = video.read_bytes()
    rc, _, err = call(main, video, "--checkpoint", run / "best.pt", "--boxes", box_split[1], "--render", tmp_path)
    assert rc == 2 and "input" in one_line(err) and str(video) in err
    assert video.read_bytes() == before
    rc, _, err = call(main, video, "--checkpoint", run / "best.pt", "--boxes", box_split[1], "--render",
                      tmp_path / "r")
    assert rc == 0, err  # another folder is fine
    assert (tmp_path / "r" / "1000.mp4").stat().st_size > 0


def test_interrupted_infer_keeps_the_previous_json(run, box_split, mp4, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    boxes = json.loads(box_split[1].read_text())  # 400 videos with boxes: more than a loaded machine gets through
    boxes = {f"{2000 + k}": boxes[str(1000 + k % 40)] for k in range(400)}  # before the signal lands
    text = json.dumps(boxes)
    for k in range(40):  # a frame is named for its own video (index-boxes refuses another's)
        text = text.replace(f'"{1000 + k}/', '"VID/')
    boxes = {vid: json.loads(json.dumps(recs).replace('"VID/', f'"{vid}/')) for vid, recs in json.loads(text).items()}
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    for vid in boxes:
        os.symlink(mp4, videos / f"{vid}.mp4")
    out = tmp_path / "out.jsonl"
    out.write_text("previous results\n")
    proc = subprocess.Popen([sys.executable, "-m", "vislearn.video.actions.infer", str(videos), "--checkpoint", str(run / "best.pt"),
                             "--boxes", str(tmp_path / "boxes.json"), "--json", str(out), "--threads", "1", "--overwrite"],
                            env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    for line in proc.stdout:  # interrupt once the first video is done
        if line.startswith("== "):
            proc.send_signal(signal.SIGINT)
            break
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert out.read_text() == "previous results\n"
    partial = [json.loads(line) for line in (tmp_path / "out.jsonl.partial").read_text().splitlines()]
    assert 1 <= len(partial) < 400 and "out.jsonl.partial" in err


def test_full_disk_during_training(box_split, tmp_path):
    """`ulimit -f` stands in for a full disk: metrics.jsonl keeps whole lines, a failed checkpoint
    write is one line, leaves no temporary file, and the previous checkpoint stays intact."""
    out = tmp_path / "run"
    args = run_args(box_split, out, epochs=8)
    code = textwrap.dedent(f"""
        import contextlib, io, json, resource, sys
        from pathlib import Path
        from vislearn.video.actions.train import main
        out, args = Path({str(out)!r}), {args!r}
        def call(argv, limit):
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
            err = io.StringIO()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                try:
                    rc = main(argv)
                except BaseException as e:  # the old code's traceback
                    import traceback; traceback.print_exc(file=err); rc = 1
            resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            return rc, err.getvalue()
        res = {{"full": call(args, resource.RLIM_INFINITY)}}
        config, metrics = (out / "config.yaml").stat().st_size, (out / "metrics.jsonl").stat().st_size
        assert config < metrics, (config, metrics)
        more = [a for a in args if not a.startswith("epochs=")] + ["epochs=9", "--resume"]
        res["metrics_limit"] = call(more, (config + metrics) // 2)
        res["metrics_files"] = sorted(p.name for p in out.iterdir())
        res["metrics_text"] = (out / "metrics.jsonl").read_text()
        res["checkpoint_limit"] = call(more, metrics + 1000)
        res["checkpoint_files"] = sorted(p.name for p in out.iterdir())
        print(json.dumps(res))
    """)
    proc = subprocess.run([sys.executable, "-c", code], env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["full"][0] == 0, res["full"][1]
    # metrics.jsonl cannot be rewritten: refused in one line, the file keeps its 8 whole lines
    rc, err = res["metrics_limit"]
    assert rc == 2 and "metrics.jsonl" in one_line(err) and "file too large" in err
    assert [json.loads(line)["epoch"] for line in res["metrics_text"].splitlines()] == list(range(8))
    assert not [n for n in res["metrics_files"] if n.startswith(".") and n not in HIDDEN]  # the manifest aside
    # the checkpoint cannot be written: one line, no temporary file, the previous checkpoint loads
    rc, err = res["checkpoint_limit"]
    assert rc == 2 and "previous checkpoint is intact" in one_line(err) and "last.pt" in err
    assert not [n for n in res["checkpoint_files"] if (n.startswith(".") and n not in HIDDEN) or n.endswith(".tmp")]
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 7
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 8


# ---------------------------------------------------------------------------- silent wrong results

def bad_box_file(path: Path, **box) -> Path:
    rec = {"name": "7/0001.jpg", "labels": [{"box2d": {"x1": 1, "y1": 2, "x2": 30, "y2": 40, **box},
                                             "category": "cup", "standard_category": "0000"}]}
    path.write_text(json.dumps({"7": [rec]}))
    return path


def test_coordinates_beyond_float32_are_refused(tmp_path):
    from vislearn.common.errors import UserError
    from vislearn.video.data.__main__ import main
    from vislearn.video.data.annotations import AnnotationFile

    path = bad_box_file(tmp_path / "b.json", x2=1e300)
    with pytest.raises(UserError, match="box2d.x2"):
        AnnotationFile.load(path).get("7")
    rc, _, err = call(main, "inspect", "--boxes", path)
    assert rc == 2 and "b.json: video 7, frame 7/0001.jpg" in one_line(err)


def test_infer_notes_boxes_far_outside_the_frame(tmp_path):
    from vislearn.video.actions.infer import box_notes
    from vislearn.video.data.annotations import AnnotationFile

    for box in ({"x1": -1e6}, {"y1": -5e4}, {"x2": 1e6}):
        vb = AnnotationFile.load(bad_box_file(tmp_path / "b.json", **box)).get("7")
        assert any("beyond the 64x48 frame" in n for n in box_notes(vb, 12, (64, 48))), box
    vb = AnnotationFile.load(bad_box_file(tmp_path / "b.json")).get("7")
    assert box_notes(vb, 12, (64, 48)) == []


def test_more_placeholders_than_the_template_names_is_an_error(tmp_path):
    from vislearn.video.splits.__main__ import main

    templates = ["Pushing [something] from left to right", "Moving [something] up", "Lifting [something]",
                 "Dropping [something]"]
    labels = {t.replace("[", "").replace("]", ""): str(i) for i, t in enumerate(templates)}
    nouns = ["cup", "pen", "box", "ball"]
    records = [{"id": str(100 + k), "label": "x", "template": t, "placeholders": [n]}
               for k, (t, n) in enumerate((t, n) for t in templates for n in nouns for _ in range(3))]
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    (tmp_path / "val.json").write_text(json.dumps(records[1::2]))
    train = records[::2] + [{"id": "999", "label": "x", "template": templates[1], "placeholders": ["cup", "spoon"]}]
    (tmp_path / "train.json").write_text(json.dumps(train))
    rc, _, err = call(main, "compositional", "--labels", tmp_path / "labels.json", "--train", tmp_path / "train.json",
                      "--val", tmp_path / "val.json", "--out", tmp_path / "out", "--quiet")
    line = one_line(err)
    assert rc == 2 and "train.json" in line and "id 999" in line and "Moving [something] up" in line
    assert not (tmp_path / "out" / "objectsA.json").exists()


def test_an_empty_evaluation_set_is_refused_before_training(box_split, tmp_path):
    split = tmp_path / "split"
    shutil.copytree(box_split[0], split)
    (split / "validation.json").write_text("[]")
    rc, _, err = train_main(*run_args((split, box_split[1]), tmp_path / "run", epochs=3))
    assert rc == 2 and "validation.json: no records to evaluate" in one_line(err)
    assert not (tmp_path / "run" / "last.pt").exists()


# --------------------------------------------------------------------- tracebacks that are one line

def test_a_folder_where_a_json_file_is_expected(tmp_path):
    from vislearn.common.errors import UserError
    from vislearn.common.jsonio import read_json
    from vislearn.video.tracking.__main__ import main

    with pytest.raises(UserError, match="is a folder"):
        read_json(tmp_path)
    rc, _, err = call(main, "track", "--detections", tmp_path, "--out", tmp_path / "t.json")
    assert rc == 2 and f"{tmp_path}: is a folder" in one_line(err)


def test_batch_larger_than_the_training_set(box_split, tmp_path):
    rc, _, err = train_main(*run_args(box_split, tmp_path / "run", batch_size=1000))
    assert rc == 2 and "batch_size 1000" in one_line(err)


def test_resume_with_other_model_args_names_the_keys(run, box_split, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    rc, _, err = train_main(*run_args(box_split, copy, epochs=2, **{"model_args.feature_dim": 16}), "--resume")
    line = one_line(err)
    assert rc == 2 and "feature_dim: 8 -> 16" in line and "last.pt" in line


def test_outputs_that_are_files_of_the_wrong_kind(run, box_split, mp4, sample_annotations, tmp_path):
    from vislearn.video.data.__main__ import main as datasets_main

    afile = tmp_path / "afile"
    afile.write_text("keep")
    rc, _, err = train_main(*run_args(box_split, afile))
    assert rc == 2 and f"{afile}: is a file" in one_line(err)
    rc, _, err = call(datasets_main, "index-boxes", sample_annotations, "--out", afile, "--quiet")
    assert rc == 2 and f"{afile}: is a file" in one_line(err)
    from vislearn.video.actions.infer import main as infer_main

    rc, _, err = call(infer_main, mp4, "--checkpoint", run / "best.pt", "--boxes", box_split[1], "--json", tmp_path)
    assert rc == 2 and "--json" in one_line(err)
    assert afile.read_text() == "keep"


def test_training_never_writes_onto_the_checkpoint_it_starts_from(run, box_split, tmp_path):
    own = tmp_path / "run"
    own.mkdir()
    shutil.copy(run / "best.pt", own / "best.pt")
    before = (own / "best.pt").read_bytes()
    rc, _, err = train_main(*run_args(box_split, own, init_checkpoint=own / "best.pt"))
    assert rc == 2 and "is the input" in one_line(err) and "best.pt" in err
    assert (own / "best.pt").read_bytes() == before


def test_run_main_one_line_for_os_errors_traceback_for_bugs(tmp_path, capsys):
    import errno

    from vislearn.common.cli import run_main
    from vislearn.common.files import atomic_file, refuse_input_overwrite

    def disk_full():
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.json"))

    assert run_main(disk_full) == 2
    assert one_line(capsys.readouterr().err) == f"error: {tmp_path / 'x.json'}: disk full"
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback (exit 1 from the interpreter)
        run_main(lambda: 1 / 0)
    target = tmp_path / "t.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target) as f:
        f.write("half")
        raise RuntimeError("failed halfway")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["t.txt"]
    os.link(target, tmp_path / "hard.txt")
    os.symlink(target, tmp_path / "soft.txt")
    for out in ("hard.txt", "soft.txt", "t.txt"):
        with pytest.raises(Exception, match="is the input"):
            refuse_input_overwrite([tmp_path / out], [target])
    with pytest.raises(Exception, match="holds the input"):
        refuse_input_overwrite([tmp_path], [target])
    refuse_input_overwrite([tmp_path / "other.txt"], [target])


class Payload:
    """Pickled by reference: a file holding it could run code when loaded without weights_only."""


def test_checkpoint_load_errors_are_one_line_and_never_advise_unsafe_loading(run, tmp_path):
    from vislearn.video.actions.evaluate import main

    evil = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": Payload()}, evil)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((run / "best.pt").read_bytes()[:3000])
    for path in (evil, truncated):
        rc, _, err = call(main, "--checkpoint", path, "--device", "cpu")
        line = one_line(err)
        assert rc == 2 and f"{path}: not a checkpoint this tool can load safely" in line
        assert "weights_only" not in err
    assert "could run code" in call(main, "--checkpoint", evil)[2]


def test_extract_frames_into_an_existing_folder_offers_overwrite(sample_dir, tmp_path):
    from vislearn.video.data.__main__ import main

    video = sample_dir / "frames" / "151201"
    rc, _, err = call(main, "extract-frames", video, "--out", tmp_path)
    assert rc == 0, err
    rc, _, err = call(main, "extract-frames", video, "--out", tmp_path)
    assert rc == 1 and "--overwrite" in one_line(err) and "overwrite=True" not in err
    rc, _, err = call(main, "extract-frames", video, "--out", tmp_path, "--overwrite")
    assert rc == 0 and len(list((tmp_path / "151201").glob("*.jpg"))) == 33
    rc, _, err = call(main, "extract-frames", tmp_path / "151201", "--out", tmp_path, "--overwrite")
    assert rc == 2 and "input" in one_line(err)  # would replace the folder it reads
    assert len(list((tmp_path / "151201").glob("*.jpg"))) == 33


# ----------------------------------------------------------- round two (issue 24): the output rules applied

def test_evaluate_never_writes_into_a_training_run(run, box_split, tmp_path):
    """Item 4: `evaluate --out RUN` of a training run replaced the run's results.json and report.html."""
    from vislearn.common.outputs import MANIFEST
    from vislearn.video.actions.evaluate import main

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    for legacy in (False, True):  # a run written before manifests (no record of its files) too
        if legacy:
            (copy / MANIFEST).unlink(missing_ok=True)
        before = snapshot(copy)
        rc, _, err = call(main, "--checkpoint", copy / "best.pt", "--out", copy, "--device", "cpu")
        assert rc == 2 and f"{copy}: " in one_line(err) and "vislearn video train" in err, err
        assert snapshot(copy) == before
    for _ in range(2):  # a folder of its own, and a re-run replaces its own files
        rc, _, err = call(main, "--checkpoint", copy / "best.pt", "--out", tmp_path / "eval", "--device", "cpu")
        assert rc == 0, err
    assert (tmp_path / "eval" / "results.json").is_file() and snapshot(copy) == before
    (tmp_path / "eval" / MANIFEST).unlink()  # an evaluation written before manifests is taken as ours
    rc, _, err = call(main, "--checkpoint", copy / "best.pt", "--out", tmp_path / "eval", "--device", "cpu")
    assert rc == 0, err


def test_two_trainings_into_one_folder_one_is_refused(box_split, tmp_path):
    """Item 5: two trainings into the same out= at once both exited 0, the folder holding the second's
    results. Two real processes started together: one trains, the other is refused in one line."""
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "vislearn", "video", "train", *run_args(box_split, out, epochs=20)]
    procs = [subprocess.Popen(argv, env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    res = [(p.pid, *p.communicate(timeout=600), p.returncode) for p in procs]
    assert sorted(r[3] for r in res) == [0, 2], res
    (winner, _, _, _), (_, _, err, _) = sorted(res, key=lambda r: r[3])
    line = one_line(err)
    assert line in (f"error: {out}: another process (pid {winner}) is writing into this folder; wait for it to end "
                    f"or choose another out=",  # refused while the other trains
                    f"error: {out}: already holds a run (last.pt); pass --resume to continue it or choose another out=")
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == list(range(20)) and json.loads((out / "results.json").read_text())["epochs"] == 20


def test_a_second_training_is_refused_while_the_first_runs_and_a_killed_one_resumes(box_split, tmp_path):
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "vislearn", "video", "train", *run_args(box_split, out, epochs=100000)]
    first = subprocess.Popen(argv, env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in first.stdout:  # it holds the folder from before it reads the data
            if line.startswith("data:"):
                break
        second = subprocess.run(argv, env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert second.returncode == 2 and one_line(second.stderr) == (
            f"error: {out}: another process (pid {first.pid}) is writing into this folder; wait for it to end or "
            f"choose another out="), second.stderr
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    while not (out / "last.pt").exists():  # killed before its first checkpoint: start again
        rc, _, err = train_main(*run_args(box_split, out, epochs=1), "--resume")
        assert rc == 0, err
    rc, _, err = train_main(*run_args(box_split, out, epochs=1), "--resume")  # the OS dropped the dead run's lock
    assert rc == 0, err


HOLD = "import sys, time\nfrom vislearn.common.lock import lock_folder\nlock_folder(sys.argv[1])\nprint('held', flush=True)\ntime.sleep(600)\n"


@contextlib.contextmanager
def held(folder: Path):
    """Another process holding the lock of `folder` (as a running training does); yields its pid."""
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], env=ENV, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc.pid
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_train_detector_is_refused_while_another_process_writes_its_folder(sample_annotations, tmp_path):
    """Item 5, the detector: a run folder another process writes into is refused in one line, nothing changed."""
    from vislearn.video.tracking.__main__ import main

    out, videos = tmp_path / "det", tmp_path / "videos"
    videos.mkdir()
    with held(out) as pid:
        rc, _, err = call(main, "train-detector", "--boxes", sample_annotations, "--videos", videos, "--out", out,
                          "--device", "cpu", "--quiet")
    assert rc == 2 and one_line(err) == (f"error: {out}: another process (pid {pid}) is writing into this folder; "
                                         f"wait for it to end or choose another --out")
    assert list(out.iterdir()) == []


def test_no_command_replaces_a_file_it_did_not_make(run, box_split, mp4, tmp_path):
    """Item 6: each of these replaced an existing unrelated file without --overwrite. Now: one line naming
    the file and --overwrite, exit 2, the file unchanged; with --overwrite it is replaced."""
    from vislearn.video.actions.infer import main as infer_main
    from vislearn.video.actions.report import main as report_main
    from vislearn.video.data.__main__ import main as data_main
    from vislearn.video.data.synthetic.distractors import main as distractors_main
    from vislearn.video.splits.__main__ import main as splits_main
    from vislearn.video.tracking.__main__ import main as tracking_main

    split, ann = box_split
    f = tmp_path / "mine.json"
    d = tmp_path / "mine"
    d.mkdir()
    rundir = tmp_path / "run"
    shutil.copytree(run, rundir)
    s = ["--labels", split / "labels.json", "--train", split / "train.json", "--val", split / "validation.json"]
    infer = [mp4, "--checkpoint", run / "best.pt", "--boxes", ann]
    cases = [  # (CLI, argv, the user's file, replaced with --overwrite: argv works)
        (tracking_main, ["detect", mp4, "--detector", run / "best.pt", "--out", f, "--quiet"], f, False),
        (tracking_main, ["track", "--detections", ann, "--out", f], f, True),
        (data_main, ["merge-boxes", ann, "--out", f], f, True),
        (infer_main, [*infer, "--json", f], f, True),
        (infer_main, [*infer, "--render", d], d / "1000.mp4", False),
        (infer_main, [*infer, "--render", d], d / "1000_sheet.png", True),
        (distractors_main, ["--data", d, "--out", f], f, False),
        (splits_main, ["compositional", *s, "--out", d, "--quiet"], d / "train.json", False),
        (splits_main, ["compositional", *s, "--out", d, "--quiet"], d / "labels.json", False),
        (splits_main, ["shuffled", "--from", split, "--out", d, "--quiet"], d / "train.json", False),
        (splits_main, ["fewshot", *s, "--out", d, "--quiet"], d / "base_labels.json", False),
        (report_main, [rundir], rundir / "report.html", True),
    ]
    bad = []
    for main, argv, target, works in cases:
        for p in [f, *d.iterdir()]:
            p.unlink(missing_ok=True)
        target.write_text("the user's own")
        rc, _, err = call(main, *argv)
        lines = err.strip().splitlines()
        if rc != 2 or len(lines) != 1 or str(target) not in err or "--overwrite" not in err \
                or target.read_bytes() != b"the user's own":
            bad.append(f"{' '.join(map(str, argv))} over {target.name}: exit {rc}: {err.strip()[-300:]}")
        elif works:
            rc, _, err = call(main, *argv, "--overwrite")
            if rc != 0 or target.read_bytes() == b"the user's own":
                bad.append(f"{' '.join(map(str, argv))} --overwrite: exit {rc}: {err.strip()[-300:]}")
    assert not bad, "\n".join(bad)
    # what vislearn wrote there itself, it may write again: report, render
    for argv in ([rundir], [rundir]):
        rc, _, err = call(report_main, *argv)
        assert rc == 0, err
    # a run written before manifests: its report.html is recognised as a page of ours
    from vislearn.common.outputs import MANIFEST

    legacy = tmp_path / "legacy"
    shutil.copytree(run, legacy)
    (legacy / MANIFEST).unlink()
    rc, _, err = call(report_main, legacy)
    assert rc == 0, err
    for p in [*d.iterdir()]:
        p.unlink()
    for _ in range(2):
        rc, _, err = call(infer_main, *infer, "--render", d)
        assert rc == 0, err


def test_split_stats_describe_a_folder_without_changing_it(box_split, tmp_path):
    """Item 7: `splits stats DIR` wrote stats.json, class_counts.csv and a PNG into the split it describes:
    it failed on a read-only split, and `evaluate --set` then offered "stats". Now it writes only with --out."""
    from vislearn.video.data.split_layout import split_files
    from vislearn.video.splits.__main__ import main

    split = tmp_path / "split"
    shutil.copytree(box_split[0], split)
    before = snapshot(split)
    with unwritable(split):
        rc, text, err = call(main, "stats", split, "--min-noun-videos", "1")
    assert rc == 0 and "classes: 4" in text, err
    assert snapshot(split) == before and "stats" not in split_files(split).sets
    rc, text, err = call(main, "stats", split, "--out", tmp_path / "st", "--min-noun-videos", "1")
    assert rc == 0, err
    assert {p.name for p in (tmp_path / "st").glob("*") if not p.name.startswith(".")} == \
        {"stats.json", "class_counts.csv", "class_distribution.png"}
    assert snapshot(split) == before


def test_unwritable_outputs_are_refused_before_the_work(run, box_split, tmp_path):
    """Permission errors named the temporary file and came after all the work: now one line naming the
    folder, exit 2, before anything is read."""
    from vislearn.video.actions.evaluate import main as evaluate_main

    ro = tmp_path / "ro"
    ro.mkdir()
    with unwritable(ro):
        rc, out, err = train_main(*run_args(box_split, ro / "run"))
        assert rc == 2 and one_line(err) == f"error: {ro}: folder is not writable, so {ro / 'run'} cannot be made there (out=)"
        assert "data:" not in out  # before the work
        rc, out, err = call(evaluate_main, "--checkpoint", run / "best.pt", "--out", ro, "--device", "cpu")
        assert rc == 2 and one_line(err) == f"error: {ro}: folder is not writable (--out)" and "top-1" not in out
    assert list(ro.iterdir()) == []


# ------------------------------------------------------------------------------------------- sweep

def sweep_cases(d: Path, f: Path, ann: Path, split: Path, ckpt: Path, video: Path, o: Path) -> list:
    """(CLI, argv) pairs: each gives a folder where a file is expected or a file where a folder is."""
    s = ["--labels", split / "labels.json", "--train", split / "train.json", "--val", split / "validation.json"]
    return [
        ("datasets", ["index-boxes", d, "--out", o / "s", "--quiet"]),
        ("datasets", ["index-boxes", ann, "--out", f, "--quiet"]),
        ("datasets", ["merge-boxes", d, "--out", o / "m.json"]),
        ("datasets", ["merge-boxes", ann, "--out", d]),
        ("datasets", ["inspect", "--boxes", d]),
        ("datasets", ["inspect", "--boxes", ann, "--videos", f]),
        ("datasets", ["extract-frames", video, "--out", f]),
        ("synthetic", ["--out", f, "--videos", "1", "--quiet"]),
        ("splits", ["compositional", "--labels", d, "--train", split / "train.json", "--out", o / "c", "--quiet"]),
        ("splits", ["compositional", *s, "--out", f, "--quiet"]),
        ("splits", ["shuffled", "--from", f, "--out", o / "sh", "--quiet"]),
        ("splits", ["fewshot", "--labels", d, "--train", split / "train.json", "--val", split / "validation.json",
                    "--out", o / "fs", "--quiet"]),
        ("splits", ["fewshot", *s, "--out", f, "--quiet"]),
        ("splits", ["validate", f]),
        ("splits", ["stats", f]),
        ("tracking", ["train-detector", "--boxes", d, "--videos", d, "--out", o / "det"]),
        ("tracking", ["train-detector", "--boxes", ann, "--videos", f, "--out", o / "det"]),
        ("tracking", ["train-detector", "--boxes", ann, "--videos", d, "--out", f]),
        ("tracking", ["detect", video, "--detector", d, "--out", o / "d.json", "--quiet"]),
        ("tracking", ["detect", video, "--detector", ckpt, "--out", d, "--quiet"]),
        ("tracking", ["track", "--detections", d, "--out", o / "t.json"]),
        ("tracking", ["track", "--detections", ann, "--out", d]),
        ("tracking", ["evaluate", "--gt", d, "--pred", ann]),
        ("train", ["--config", d]),
        ("train", [f"split={f}", "epochs=1"]),
        ("train", [f"split={split}", f"boxes={d}", "epochs=1", "device=cpu", f"out={o / 'r'}"]),
        ("evaluate", ["--checkpoint", d]),
        ("evaluate", ["--checkpoint", ckpt, "--split", f, "--device", "cpu"]),
        ("evaluate", ["--checkpoint", ckpt, "--out", f, "--device", "cpu"]),
        ("fewshot", ["--config", d, "--fewshot", d]),
        ("fewshot", ["--fewshot", f, f"out={o / 'few'}"]),
        ("fewshot", ["--fewshot", d, f"out={f}"]),
        ("infer", [video, "--checkpoint", d]),
        ("infer", [video, "--checkpoint", ckpt, "--boxes", d]),
        ("infer", [video, "--checkpoint", ckpt, "--boxes", ann, "--json", d]),
        ("infer", [video, "--checkpoint", ckpt, "--boxes", ann, "--render", f]),
        ("demo", ["--data", f, "--out", o / "demo"]),
        ("demo", ["--out", f]),
    ]


def cli(name: str):
    import importlib

    module = {"datasets": "vislearn.video.data.__main__", "synthetic": "vislearn.video.data.synthetic.__main__", "splits": "vislearn.video.splits.__main__",
              "tracking": "vislearn.video.tracking.__main__", "train": "vislearn.video.actions.train", "evaluate": "vislearn.video.actions.evaluate",
              "fewshot": "vislearn.video.actions.fewshot", "infer": "vislearn.video.actions.infer", "demo": "vislearn.video.actions.table"}[name]
    return importlib.import_module(module).main


def test_sweep_every_cli_folder_for_file_and_file_for_folder(run, box_split, mp4, tmp_path):
    d, f, o = tmp_path / "adir", tmp_path / "afile.txt", tmp_path / "outputs"
    d.mkdir()
    f.write_text("not what you think")
    cases = sweep_cases(d, f, box_split[1], box_split[0], run / "best.pt", mp4, o)
    assert {name for name, _ in cases} == {"datasets", "synthetic", "splits", "tracking", "train", "evaluate",
                                           "fewshot", "infer", "demo"}
    subcommands = {(name, argv[0]) for name, argv in cases if name in ("datasets", "splits", "tracking")}
    assert len(subcommands) == 4 + 5 + 4  # every subcommand of the three multi-command CLIs
    bad = []
    for name, argv in cases:
        rc, _, err = call(cli(name), *argv)
        lines = [line for line in err.strip().splitlines() if line.strip()]
        if rc != 2 or len(lines) != 1 or "Traceback" in err:
            bad.append(f"{name} {' '.join(map(str, argv))}: exit {rc}: {err.strip()[-300:]}")
    assert not bad, "\n".join(bad)
    assert f.read_text() == "not what you think" and not any(d.iterdir())
