"""`LocoEnvs` split over worker processes (`ProcEnvs`), so that every core steps physics while the main process runs
the policy: worker w owns environments [w * n / W, (w + 1) * n / W) as a `LocoEnvs` of its own and answers the
main process's commands over a pipe. Environment i draws its episodes from the same seeds as in one process, so a
run's results do not depend on the number of workers (tested), and `state` / `restore` gather and scatter the
workers' states (exact resume). Workers are forked (they never run torch nor OpenGL)."""
from __future__ import annotations

import multiprocessing as mp
from typing import Callable

import numpy as np


class _Offset:
    """A worker's seed function: its local environment j is the run's environment `start + j` (picklable)."""

    def __init__(self, seed_of: Callable[[int, int], int], start: int):
        self.seed_of, self.start = seed_of, start

    def __call__(self, j: int, k: int) -> int:
        return self.seed_of(self.start + j, k)


def _serve(conn, args) -> None:
    from .env import LocoEnvs

    settings, n, rand, seed_of, robot = args
    envs = LocoEnvs(settings, n, rand, seed_of, robot)
    while True:
        cmd, payload = conn.recv()
        if cmd == "start":
            envs.start()
            conn.send((envs.obs.copy(), envs.priv.copy()))
        elif cmd == "step":
            reward, term, trunc, finished = envs.step(payload)
            conn.send((reward, term, trunc, finished, envs.obs.copy(), envs.priv.copy(), envs.final_priv.copy()))
        elif cmd == "state":
            conn.send(envs.state())
        elif cmd == "restore":
            envs.restore(payload)
            conn.send((envs.obs.copy(), envs.priv.copy()))
        elif cmd == "close":
            conn.close()
            return


class ProcEnvs:
    """The `LocoEnvs` interface training uses (start, step, state, restore, obs, priv, final_priv, sizes) over
    `workers` processes."""

    def __init__(self, settings, n: int, rand, seed_of: Callable[[int, int], int], workers: int):
        from .env import LocoEnvs

        workers = max(1, min(workers, n))
        self.n = n
        probe = LocoEnvs(settings, 1, rand, seed_of)  # sizes, robot, control period (and a bad robot fails here)
        self.robot, self.obs_dim, self.priv_dim, self.n_act = probe.robot, probe.obs_dim, probe.priv_dim, probe.n_act
        self.control_dt = probe.control_dt
        bounds = np.linspace(0, n, workers + 1).astype(int)
        self.slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        ctx = mp.get_context("fork")
        self.conns, self.procs = [], []
        for s in self.slices:
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_serve, args=(child, (settings, s.stop - s.start, rand, _Offset(seed_of, s.start),
                                                         self.robot)), daemon=True)
            p.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(p)
        self.obs = np.zeros((n, self.obs_dim), dtype=np.float32)
        self.priv = np.zeros((n, self.priv_dim), dtype=np.float32)
        self.final_priv = self.priv.copy()

    def _gather(self, replies) -> None:
        for s, (obs, priv) in zip(self.slices, replies):
            self.obs[s], self.priv[s] = obs, priv

    def start(self) -> None:
        for c in self.conns:
            c.send(("start", None))
        self._gather([c.recv() for c in self.conns])

    def step(self, actions: np.ndarray):
        for s, c in zip(self.slices, self.conns):
            c.send(("step", np.asarray(actions)[s]))
        reward, term, trunc = np.zeros(self.n), np.zeros(self.n, dtype=bool), np.zeros(self.n, dtype=bool)
        finished = []
        for s, c in zip(self.slices, self.conns):
            r, te, tr, fin, obs, priv, final = c.recv()
            reward[s], term[s], trunc[s] = r, te, tr
            self.obs[s], self.priv[s], self.final_priv[s] = obs, priv, final
            finished += [(s.start + i, *rest) for i, *rest in fin]
        return reward, term, trunc, finished

    def state(self) -> dict:
        for c in self.conns:
            c.send(("state", None))
        return {"workers": [c.recv() for c in self.conns]}

    def restore(self, st: dict) -> None:
        parts = st["workers"]
        if len(parts) != len(self.conns):
            from vislearn.common.errors import UserError

            raise UserError(f"last.pt: saved with {len(parts)} environment workers; resume with as many")
        for c, part in zip(self.conns, parts):
            c.send(("restore", part))
        self._gather([c.recv() for c in self.conns])

    def close(self) -> None:
        for c, p in zip(self.conns, self.procs):
            try:
                c.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
