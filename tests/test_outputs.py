"""The output rules of vislearn.common (issue 24): a writer replaces only files vislearn made (a manifest in
each output folder), a folder belongs to one command, one writer per run folder (a lock the OS drops when
its holder dies), and unwritable outputs are refused before the work. Real files, real processes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from vislearn.common import outputs
from vislearn.common.errors import UserError
from vislearn.common.files import atomic_file, new_output_file, write_text
from vislearn.common.lock import lock_folder, unlock_folder
from cli_helpers import unwritable

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


@pytest.fixture(autouse=True)
def fresh_session():
    with outputs.session():
        yield


def test_a_claimed_folder_replaces_only_files_vislearn_wrote(tmp_path):
    out = tmp_path / "run"
    claim = outputs.claim_folder(out, ["a.json", "b.json"], kind="video test")
    assert not out.exists()  # a claim without a lock changes nothing
    write_text(out / "a.json", "1")
    assert outputs.ours(out / "a.json")
    assert outputs.read_manifest(out)["kind"] == "video test"
    claim.release()
    # a re-run replaces its own file
    claim = outputs.claim_folder(out, ["a.json"], kind="video test")
    write_text(out / "a.json", "2")
    claim.release()
    # a user's file of an output's name is refused, also at write time (a name the claim forgot), unchanged
    (out / "b.json").write_text("mine")
    with pytest.raises(UserError, match="b.json: exists and was not written by vislearn.*--overwrite"):
        outputs.claim_folder(out, ["a.json", "b.json"], kind="video test")
    claim = outputs.claim_folder(out, ["a.json"], kind="video test")
    with pytest.raises(UserError, match="b.json: exists and was not written by vislearn"):
        write_text(out / "b.json", "theirs")
    assert (out / "b.json").read_text() == "mine"
    claim.release()
    # one of ours changed by the user is no longer ours
    (out / "a.json").write_text("edited by hand")
    with pytest.raises(UserError, match="a.json: exists"):
        outputs.claim_folder(out, ["a.json"], kind="video test")
    # --overwrite
    claim = outputs.claim_folder(out, ["a.json", "b.json"], kind="video test", overwrite=True)
    write_text(out / "b.json", "ours now")
    claim.release()
    assert outputs.ours(out / "b.json")
    assert not list(out.glob("*.json.*")) and sorted(p.name for p in out.glob("*.json")) == ["a.json", "b.json"]


def test_a_folder_belongs_to_one_command(tmp_path):
    out = tmp_path / "run"
    with outputs.session():
        outputs.claim_folder(out, ["results.json"], kind="video train")
        write_text(out / "results.json", "{}")
    with pytest.raises(UserError, match=r"run: holds the outputs of `vislearn video train` \(results.json are its own\)"):
        outputs.claim_folder(out, ["results.json"], kind="video evaluate")
    outputs.claim_folder(out, ["report.html"]).release()  # a guest (no kind) may add its file


def test_adopt_takes_files_without_a_record_but_not_changed_ones(tmp_path):
    out = tmp_path / "old_run"
    out.mkdir()
    (out / "last.pt").write_text("a run written before manifests")
    outputs.claim_folder(out, ["last.pt"], adopt=True).release()  # a claim that writes nothing records nothing
    assert not (out / outputs.MANIFEST).exists()
    claim = outputs.claim_folder(out, ["last.pt"], adopt=True)
    write_text(out / "last.pt", "resumed")
    claim.release()
    (out / "last.pt").write_text("changed by hand")
    with pytest.raises(UserError, match="last.pt: exists"):
        outputs.claim_folder(out, ["last.pt"], adopt=True)


def test_single_output_files(tmp_path):
    f = tmp_path / "out.json"
    f.write_text("user's")
    with pytest.raises(UserError, match="out.json: exists; pass --overwrite"):
        new_output_file(f, [], overwrite=False)
    assert new_output_file(f, [], overwrite=True) == f
    with pytest.raises(UserError, match="is the input"):
        new_output_file(f, [f], overwrite=True)
    # in a folder with a manifest that records it, a re-run replaces it
    with outputs.session():
        outputs.claim_folder(tmp_path / "run")
        write_text(tmp_path / "run" / "x.json", "1")
    assert new_output_file(tmp_path / "run" / "x.json", [], overwrite=False)


def test_unwritable_output_folders_are_refused_before_the_work(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    with unwritable(ro):
        with pytest.raises(UserError, match=f"^{ro}: folder is not writable \\(--out\\)$"):
            outputs.claim_folder(ro, ["x.json"])
        with pytest.raises(UserError, match=f"^{ro}: folder is not writable, so {ro / 'new' / 'deeper'} cannot be made there"):
            outputs.claim_folder(ro / "new" / "deeper")
        with pytest.raises(UserError, match=f"^{ro}: folder is not writable"):
            new_output_file(ro / "x.json", [], overwrite=False)
        with pytest.raises(OSError) as e:  # a write without a claim names the output, not a temporary file
            with atomic_file(ro / "x.json") as f:
                f.write("x")
        assert e.value.filename == str(ro / "x.json")
    assert list(ro.iterdir()) == []


def test_the_writability_check_as_a_user():
    """The check as a non-root user (chmod 0o555), in a process that gives up root (runs where the
    tests run as root; as a user, the test above already is this one)."""
    if os.geteuid() != 0:
        pytest.skip("not root: test_unwritable_output_folders_are_refused_before_the_work covers it")
    with tempfile.TemporaryDirectory(dir="/tmp") as top:  # pytest's folders are closed to other users
        os.chmod(top, 0o755)
        ro = Path(top) / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        code = (f"import os\nfrom vislearn.common.outputs import claim_folder\n"  # imported as root, then a user
                f"os.setgid(65534); os.setuid(65534)\n"
                f"try:\n    claim_folder({str(ro)!r}, ['x.json'])\nexcept Exception as e:\n    print(e)\n")
        res = subprocess.run([sys.executable, "-c", code], env=ENV, cwd="/", capture_output=True, text=True, timeout=60)
        if "Permission denied" in res.stderr or "No module named" in res.stderr:
            pytest.skip(f"the unprivileged process cannot run the package here: {res.stderr.strip()[-200:]}")
        assert res.stdout.strip() == f"{ro}: folder is not writable (--out)", res.stderr
        assert list(ro.iterdir()) == []


def test_a_lock_for_the_claim_made_a_folder_that_goes_when_nothing_was_written(tmp_path):
    out = tmp_path / "a" / "b"
    claim = outputs.claim_folder(out, lock=True)
    assert out.is_dir()
    claim.release()
    assert not (tmp_path / "a").exists()


HOLD = "import sys, time\nfrom vislearn.common.lock import lock_folder\nlock_folder(sys.argv[1])\nprint('held', flush=True)\ntime.sleep(600)\n"


def test_one_writer_per_folder_and_a_killed_holder_frees_it(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=rf"^{out}: another process \(pid {proc.pid}\) is writing into this folder; "
                                            rf"wait for it to end or choose another out=$"):
            outputs.claim_folder(out, lock=True, flag="out=")
        assert sorted(os.listdir(out)) == []  # the lock is the folder's own: no lock file
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    claim = outputs.claim_folder(out, lock=True)  # the OS dropped the dead holder's lock
    lock_folder(out)  # re-entrant in one process
    unlock_folder(out)
    claim.release()


KILLED_AFTER_RENAME = (
    "import os, sys\nfrom vislearn.common import files, outputs\n"
    "outputs.claim_folder(sys.argv[1], lock=True, kind='test')\n"
    "real = os.replace\n"
    "def replace_then_die(a, b):\n    real(a, b)\n    os._exit(9)\n"
    "files.os.replace = replace_then_die\n"
    "files.write_text(os.path.join(sys.argv[1], 'a.txt'), 'x')\n")


def test_a_run_killed_just_after_publishing_a_file_leaves_one_that_is_ours(tmp_path):
    """The window between the rename and the manifest record: a run killed there (as CI once did to
    generate-data) must leave a file its re-run may replace or trim, not one it refuses as the user's."""
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", KILLED_AFTER_RENAME, str(out)], env=ENV)
    assert proc.returncode == 9 and (out / "a.txt").read_text() == "x"
    assert outputs.ours(out / "a.txt")
    claim = outputs.claim_folder(out, lock=True, kind="test")
    write_text(out / "a.txt", "y")  # replaced without --overwrite
    claim.release()
    assert (out / "a.txt").read_text() == "y"


def test_the_manifest_is_updated_by_two_processes_at_once(tmp_path):
    out = tmp_path / "shared"
    out.mkdir()
    (out / outputs.MANIFEST).write_text("")
    assert outputs.read_manifest(out) == {}  # read (and kept) before the others write
    code = ("import sys\nfrom vislearn.common.files import write_text\n"
            "for i in range(60): write_text(f'{sys.argv[1]}/{sys.argv[2]}{i}.txt', 'x')\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(out), tag], env=ENV) for tag in "ab"]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    files = outputs.read_manifest(out)["files"]
    assert len(files) == 120 and all(outputs.ours(out / n) for n in files)


def test_a_manifest_written_into_again_and_again_is_compacted(tmp_path):
    out = tmp_path / "run"
    with outputs.session():
        outputs.claim_folder(out, kind="video test")
        for i in range(50):
            write_text(out / "metrics.jsonl", f"{i}\n")
        write_text(out / "gone.json", "{}")
    (out / "gone.json").unlink()
    with (out / outputs.MANIFEST).open("a") as f:
        f.write('{"name": "torn", "si')  # a kill in mid-append
    assert len((out / outputs.MANIFEST).read_text().splitlines()) == 53
    outputs._compact(os.path.realpath(out), limit=0)
    assert (out / outputs.MANIFEST).read_text().splitlines() == [
        '{"kind":"video test"}', f'{{"name":"metrics.jsonl","size":3,"mtime_ns":{(out / "metrics.jsonl").stat().st_mtime_ns}}}']
    assert outputs.ours(out / "metrics.jsonl") and outputs.read_manifest(out)["kind"] == "video test"
