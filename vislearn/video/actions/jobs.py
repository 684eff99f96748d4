"""Independent runs side by side: a small graph of jobs, each run in a worker process with one torch thread.

The table trains many small models (streams x splits x seeds, the few-shot base models, their fine-tuning);
most do not depend on each other, and one process with two threads keeps only one of two cores busy on
these small ops. `run_jobs` starts each job when the jobs it comes `after` have finished, at most
`parallel` at once, in the order given (so a job that fills a cache others read can go first). A job's
output (its epoch lines) goes to its own log file; the caller hears one line when each job ends.
Every job is resumable on its own (training runs resume from their last checkpoint), so a killed table
continues where it stopped.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from vislearn.common.errors import UserError


@dataclass(frozen=True)
class Job:
    """One unit of work: `fn(*args)` in a worker process (`fn` must be a module-level function)."""

    name: str
    fn: Callable[..., Any]
    args: tuple = ()
    after: tuple[str, ...] = ()
    log: Path | None = None


@dataclass
class JobResult:
    name: str
    value: Any
    seconds: float
    log: Path | None = field(default=None)


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"


def _run_logged(fn: Callable[..., Any], args: tuple, log: Path | None) -> tuple[Any, float]:
    t = time.perf_counter()
    if log is None:
        return fn(*args), time.perf_counter() - t
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        value = fn(*args)
    return value, time.perf_counter() - t


def _check_graph(jobs: list[Job]) -> None:
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise ValueError(f"job names must be unique: {names}")
    seen: set[str] = set()
    for j in jobs:  # `after` must name earlier jobs: no cycles, and the given order is a valid order
        missing = [a for a in j.after if a not in seen]
        if missing:
            raise ValueError(f"job {j.name} comes after {missing}, which are not earlier jobs")
        seen.add(j.name)


def run_jobs(jobs: list[Job], parallel: int = 2, on_done: Callable[[JobResult], None] | None = None
             ) -> dict[str, JobResult]:
    """Run every job (each after the jobs it names), `parallel` worker processes at once.

    A job that raises stops the rest (running ones finish, pending ones are not started) and its error is
    raised here: a UserError as itself, anything else as a UserError naming the job and its log.
    """
    _check_graph(jobs)
    pending, running, done = list(jobs), {}, {}
    ctx = multiprocessing.get_context("spawn")  # torch in a forked child of a threaded parent can hang
    with ProcessPoolExecutor(max_workers=max(1, parallel), mp_context=ctx, initializer=_one_thread) as pool:
        while pending or running:
            for job in [j for j in pending if all(a in done for a in j.after)]:
                if len(running) >= max(1, parallel):
                    break
                pending.remove(job)
                running[pool.submit(_run_logged, job.fn, job.args, job.log)] = job
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                value, seconds = _result(future, job)
                done[job.name] = JobResult(job.name, value, seconds, job.log)
                if on_done:
                    on_done(done[job.name])
    return done


def _result(future: Future, job: Job) -> tuple[Any, float]:
    try:
        return future.result()
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001  (a worker's bug: say which job and where its output went)
        where = f"; its output: {job.log}" if job.log else ""
        raise UserError(f"{job.name}: failed ({type(e).__name__}: {e}){where}") from e
