"""The table's job graph (vislearn.video.actions.jobs): real worker processes, order, errors."""
import os
import time

import pytest

from vislearn.common.errors import UserError
from vislearn.video.actions.jobs import Job, run_jobs


def stamp(path, name, pause):
    """Append `name start` / `name end` lines to a file shared by the workers."""
    with open(path, "a") as f:
        f.write(f"{name} start {os.getpid()}\n")
    time.sleep(pause)
    with open(path, "a") as f:
        f.write(f"{name} end\n")
    return name.upper()


def refuse(message):
    raise UserError(message)


def crash():
    raise ZeroDivisionError("bug")


def test_jobs_run_side_by_side_and_after_what_they_need(tmp_path):
    log = tmp_path / "order.txt"
    jobs = [Job("a", stamp, (log, "a", 1.0)), Job("b", stamp, (log, "b", 1.0)),
            Job("c", stamp, (log, "c", 0.0), after=("a", "b"), log=tmp_path / "c.log")]
    done = run_jobs(jobs, parallel=2)
    assert {k: r.value for k, r in done.items()} == {"a": "A", "b": "B", "c": "C"}
    lines = [line.split() for line in log.read_text().splitlines()]
    events = [(name, what) for name, what, *_ in lines]
    assert {events[0], events[1]} == {("a", "start"), ("b", "start")}  # a and b overlapped
    assert lines[0][2] != lines[1][2]  # in two processes
    assert events.index(("c", "start")) > max(events.index(("a", "end")), events.index(("b", "end")))
    assert (tmp_path / "c.log").exists()


def test_a_user_error_in_a_job_is_raised_as_is_and_stops_what_waits():
    jobs = [Job("bad", refuse, ("data.json: broken",)), Job("later", refuse, ("never",), after=("bad",))]
    with pytest.raises(UserError, match="data.json: broken"):
        run_jobs(jobs, parallel=2)


def test_a_bug_names_the_job_and_its_log(tmp_path):
    with pytest.raises(UserError, match=r"boom: failed \(ZeroDivisionError: bug\); its output: .*boom.log"):
        run_jobs([Job("boom", crash, log=tmp_path / "boom.log")], parallel=1)


def test_after_must_name_an_earlier_job():
    with pytest.raises(ValueError, match="not earlier jobs"):
        run_jobs([Job("a", refuse, ("x",), after=("b",)), Job("b", refuse, ("y",))])
