"""What pixels cost in the simulator layer: Meta-World env steps/s without rendering against with frames at 64/96/128
px, the renderer's frames/s per setting against MuJoCo's default settings, and a 2-process vector env against one
process. Every figure sits next to its baseline measured in the same run (alternating the two, median of --reps), as
a ratio (> 1: faster than the baseline).

- steps/s: `SawyerTaskEnv(task)` stepped with zero actions (physics + observation), `pixels=False` as the baseline;
- frames/s: `env.render()` alone at --size, for `shadows` fast (512 shadow map, no multisampling: the default of
  `RenderSettings`), off, and MuJoCo's own (4096 map, 4x multisampling) as the baseline;
- vector env: `make_vector_env(task, 2)` (two worker processes, one frame each per step) against one in-process env,
  in env steps/s (frames/s) at --size.

    nice .venv/bin/python bench/control/bench_envs.py [--task reach] [--size 96] [--reps 3] [--frames 40]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from vislearn.control.envs import RenderSettings, SawyerTaskEnv, make_vector_env  # noqa: E402


def env_steps(task: str, pixels: bool, size: int, n: int) -> float:
    """Env steps/s of one in-process env (made and reset outside the timing)."""
    env = SawyerTaskEnv(task, pixels=pixels, render=RenderSettings(size=size))
    try:
        env.reset(seed=0)
        env.step(np.zeros(4, np.float32))  # the first frame makes the OpenGL context
        t0 = time.perf_counter()
        for _ in range(n):
            _, _, terminated, truncated, _ = env.step(np.zeros(4, np.float32))
            if terminated or truncated:  # (the horizon: a reset, counted in the time, as a rollout has them)
                env.reset()
        return n / (time.perf_counter() - t0)
    finally:
        env.close()


def render_fps(task: str, size: int, shadows: str, n: int) -> float:
    env = SawyerTaskEnv(task, pixels=False, render=RenderSettings(size=size, shadows=shadows), render_mode="rgb_array")
    try:
        env.reset(seed=0)
        env.render()
        t0 = time.perf_counter()
        for _ in range(n):
            env.render()
        return n / (time.perf_counter() - t0)
    finally:
        env.close()


def vector_steps(task: str, num_envs: int, size: int, n: int) -> float:
    """Env steps/s (all environments together) of a vector env with `num_envs` (1: in-process)."""
    vec = make_vector_env(task, num_envs, pixels=True, render=RenderSettings(size=size))
    try:
        vec.reset(seed=list(range(num_envs)))
        zero = np.zeros((num_envs, 4), np.float32)
        vec.step(zero)
        t0 = time.perf_counter()
        for _ in range(n):
            _, _, terminated, truncated, _ = vec.step(zero)
            if (terminated | truncated).any():
                vec.reset(options={"reset_mask": terminated | truncated})
        return n * num_envs / (time.perf_counter() - t0)
    finally:
        vec.close()


def paired(fn_a, fn_b, reps: int) -> tuple[float, float]:
    """Medians of two measurements taken alternately (machine noise hits both alike)."""
    a, b = [], []
    for _ in range(reps):
        a.append(fn_a())
        b.append(fn_b())
    return statistics.median(a), statistics.median(b)


def row(name: str, value: float, base: float, unit: str) -> None:
    print(f"  {name:<34}{value:9.1f} {unit:<9}baseline {base:9.1f}   ratio {value / base:.3g}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="reach")
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--frames", type=int, default=40, help="frames (steps) per measurement")
    args = p.parse_args()
    n, t = args.frames, args.task
    print(f"MUJOCO_GL={os.environ.get('MUJOCO_GL')}  task {t}  {n} frames per measurement, median of {args.reps}, "
          f"{os.cpu_count()} cores")
    print("env steps/s with frames (shadows fast) vs without rendering:")
    for size in (64, 96, 128):
        px, base = paired(lambda: env_steps(t, True, size, n), lambda: env_steps(t, False, size, 10 * n), args.reps)
        row(f"{size} px", px, base, "steps/s")
    print(f"renderer frames/s at {args.size} px vs MuJoCo's default settings (4096 shadow map, 4x multisampling):")
    for shadows in ("fast", "off"):
        fps, base = paired(lambda: render_fps(t, args.size, shadows, n),
                           lambda: render_fps(t, args.size, "default", max(8, n // 4)), args.reps)
        row(f"shadows {shadows}", fps, base, "frames/s")
    print(f"vector env at {args.size} px: 2 worker processes vs 1 env in-process (env steps/s = frames/s):")
    two, one = paired(lambda: vector_steps(t, 2, args.size, n), lambda: vector_steps(t, 1, args.size, n), args.reps)
    row("2 processes", two, one, "steps/s")


if __name__ == "__main__":
    main()
