"""Many environments at once, over processes (gymnasium's AsyncVectorEnv) so that every core renders, and a loop
that runs a list of seeded episodes on them.

Episodes are handed to whichever environment is free and each one starts from its own seed, so an episode's
result depends on its seed and the policy only, not on how many processes ran them or in which order."""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from . import gl
from .sawyer import RenderSettings, SawyerTaskEnv
from .tasks import get_task


def make_vector_env(task: str, num_envs: int = 1, pixels: bool = True, render: RenderSettings = RenderSettings(),
                    asynchronous: bool | None = None) -> gym.vector.VectorEnv:
    """`num_envs` copies of task `task`; in worker processes when `asynchronous` (default: more than one)."""
    get_task(task)  # an unknown name fails here, in one line, not in a worker
    render.check()
    gl.import_mujoco()  # so does a broken OpenGL backend (MUJOCO_GL)
    fns = [functools.partial(SawyerTaskEnv, task, pixels, render) for _ in range(num_envs)]
    mode = gym.vector.AutoresetMode.DISABLED  # run_episodes resets each environment with its episode's seed
    if asynchronous if asynchronous is not None else num_envs > 1:
        # forked (gymnasium's default here): a worker makes its own OpenGL context on its first frame and never
        # runs torch, so nothing of the parent's it must not share; spawn would ask every script for a main guard
        # ... except after this process rendered: a forked worker would hang making its OpenGL context, so workers
        # come from a fresh server process then (forkserver: a script needs the usual `if __name__ == "__main__"`)
        return gym.vector.AsyncVectorEnv(fns, autoreset_mode=mode, context="forkserver" if gl.rendered_here() else None)
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=mode)


@dataclass
class Episode:
    seed: int
    success: bool = False
    length: int = 0
    ret: float = 0.0
    # filled with keep=True: the observations each action was chosen on, and the actions
    pixels: list = field(default_factory=list)
    proprio: list = field(default_factory=list)
    states: list = field(default_factory=list)
    actions: list = field(default_factory=list)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"proprio": np.stack(self.proprio), "states": np.stack(self.states), "actions": np.stack(self.actions)}
        if self.pixels:
            out["pixels"] = np.stack(self.pixels)
        return out


def _take(obs: dict, i: int) -> dict:
    return {k: v[i] for k, v in obs.items()}


def run_episodes(vec: gym.vector.VectorEnv, act: Callable[[dict], np.ndarray], seeds: Sequence[int],
                 keep: bool = False, on_episode: Callable[[Episode], None] | None = None) -> list[Episode]:
    """Run one episode per seed; `act(obs)` maps the batched observations of all environments to actions [N, 4]
    (rows of idle environments are ignored). Returns the episodes in the order of `seeds`; `on_episode` is called
    as each one ends (progress, saving)."""
    n = vec.num_envs
    todo = list(seeds)
    running: list[Episode | None] = [None] * n
    done: dict[int, Episode] = {}
    obs, _ = vec.reset(seed=[int(todo.pop(0)) if todo else None for _ in range(n)])
    for i in range(n):
        running[i] = Episode(int(seeds[i])) if i < len(seeds) else None
    while any(e is not None for e in running):
        actions = np.asarray(act(obs), dtype=np.float32)
        if keep:
            for i, e in enumerate(running):
                if e is not None:
                    o = _take(obs, i)
                    if "pixels" in o:
                        e.pixels.append(o["pixels"].copy())
                    e.proprio.append(o["proprio"].copy())
                    e.states.append(o["state"].copy())
                    e.actions.append(actions[i].copy())
        obs, reward, terminated, truncated, info = vec.step(actions)
        finished = np.zeros(n, dtype=bool)
        for i, e in enumerate(running):
            if e is None:
                finished[i] = terminated[i] or truncated[i]
                continue
            e.length += 1
            e.ret += float(reward[i])
            if terminated[i] or truncated[i]:
                e.success = bool(info["success"][i])
                done[e.seed] = e
                if on_episode is not None:
                    on_episode(e)
                running[i] = None
                finished[i] = True
        if finished.any():
            new_seeds: list[int | None] = [None] * n
            for i in np.flatnonzero(finished):
                if todo:
                    new_seeds[i] = int(todo.pop(0))
                    running[i] = Episode(new_seeds[i])
            obs, _ = vec.reset(seed=new_seeds, options={"reset_mask": finished})
    return [done[int(s)] for s in seeds]
