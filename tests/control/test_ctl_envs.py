"""The simulator layer on real MuJoCo and Meta-World: the experts solve each task and random actions do not, frames
and proprioception stay in step across processes, seeds decide episodes, and mistakes (an unknown task, an OpenGL
backend that does not work) are one line."""
from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import call, one_line
from vislearn.control.envs import (TASKS, RenderSettings, SawyerTaskEnv, ScriptedExpert, make_vector_env,
                                   run_episodes)
from vislearn.control.envs.tasks import EVAL_SEEDS

ROOT = Path(__file__).resolve().parents[2]
SMALL = RenderSettings(size=32)


def expert_act(task: str):
    expert = ScriptedExpert(task)
    return lambda obs: expert(obs["state"])


@pytest.mark.parametrize("task", list(TASKS))
def test_the_expert_solves_the_task_and_random_actions_do_not(task):
    vec = make_vector_env(task, 1, pixels=False)
    try:
        expert = run_episodes(vec, expert_act(task), range(EVAL_SEEDS, EVAL_SEEDS + 20))
        rng = np.random.default_rng(0)
        random = run_episodes(vec, lambda obs: rng.uniform(-1, 1, (1, 4)), range(EVAL_SEEDS, EVAL_SEEDS + 6))
    finally:
        vec.close()
    assert np.mean([e.success for e in expert]) >= 0.95, [(e.seed, e.length) for e in expert if not e.success]
    assert all(e.length < TASKS[task].horizon for e in expert if e.success)  # success ends the episode
    assert np.mean([e.success for e in random]) <= 0.2
    assert all(e.length == TASKS[task].horizon for e in random if not e.success)  # the horizon ends the others


def replay(task: str, seed: int, actions: np.ndarray, at: set[int], render: RenderSettings) -> dict:
    """A fresh single env's states and proprioception along `actions` from `seed` (those each action was chosen
    on), and its frames at the steps `at` (rendering costs ~30 ms a frame here, whatever the size)."""
    env = SawyerTaskEnv(task, pixels=False, render=render)
    try:
        obs, _ = env.reset(seed=seed)
        out = {"state": [], "proprio": [], "pixels": {}}
        for t, a in enumerate(actions):
            out["state"].append(obs["state"])
            out["proprio"].append(obs["proprio"])
            if t in at:
                out["pixels"][t] = env.frame(render.size)
            obs, *_ = env.step(a)
    finally:
        env.close()
    return out


def test_frames_and_proprioception_stay_in_step_across_processes():
    """In a 2-process vector env, the frame and proprioception of step t are those a fresh single env shows after
    replaying the same seed and actions up to t (no frame late or early, none from another worker's episode)."""
    seeds = [EVAL_SEEDS + 3, EVAL_SEEDS + 4, EVAL_SEEDS + 5]  # three episodes on two workers: one reuses a worker
    env = SawyerTaskEnv("reach", render=SMALL)  # this process renders first: forked workers used to hang then
    env.reset(seed=0)
    env.close()
    vec = make_vector_env("reach", 2, pixels=True, render=SMALL)
    try:
        episodes = run_episodes(vec, expert_act("reach"), seeds, keep=True)
    finally:
        vec.close()
    for e in episodes:
        got = e.arrays()
        n = e.length
        at = {0, 1, 2, n // 2, n - 2, n - 1}
        want = replay("reach", e.seed, got["actions"], at, SMALL)
        assert len(got["pixels"]) == n > 4
        np.testing.assert_array_equal(got["states"], np.stack(want["state"]))
        np.testing.assert_array_equal(got["proprio"], np.stack(want["proprio"]))
        for t, frame in want["pixels"].items():
            np.testing.assert_array_equal(got["pixels"][t], frame, err_msg=f"seed {e.seed} step {t}")
        # the gripper moves, and the frames with it (nothing here would pass on constants)
        assert np.abs(np.diff(got["proprio"][:, :3], axis=0)).sum() > 0.01
        assert (got["pixels"][1] != got["pixels"][n - 1]).any()


def test_a_seed_decides_the_episode():
    actions = np.random.default_rng(0).uniform(-1, 1, (8, 4)).astype(np.float32)
    env = SawyerTaskEnv("push", pixels=True, render=SMALL)

    def rollout(seed: int) -> tuple[np.ndarray, np.ndarray]:
        obs, _ = env.reset(seed=seed)
        states, pixels = [obs["state"]], [obs["pixels"]]
        for a in actions:
            obs, *_ = env.step(a)
            states.append(obs["state"])
            pixels.append(obs["pixels"])
        return np.stack(states), np.stack(pixels)

    try:
        s1, p1 = rollout(7)
        s3, p3 = rollout(8)
        s2, p2 = rollout(7)  # after another episode in the same env: a reset leaves nothing of it
    finally:
        env.close()
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(p1, p2)
    assert not np.allclose(s1[0], s3[0])  # another seed: the puck and the goal elsewhere from the start
    assert (p1 != p3).any()


def test_an_unknown_task_is_one_line():
    from vislearn.control import record

    rc, _, err = call(record.main, "--expert", "fly", "--out", "x.mp4")
    assert rc == 2
    line = one_line(err)
    assert "fly" in line and "reach" in line  # names the bad task and the choices
    with pytest.raises(Exception, match="unknown task"):
        make_vector_env("fly", 2)


def envs_cli(gl: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    env["MUJOCO_GL"] = gl
    return subprocess.run([sys.executable, "-m", "vislearn.control", "envs", *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=120)


def test_an_opengl_backend_that_does_not_work_is_one_line_naming_what_to_install():
    gl = "osmesa" if ctypes.util.find_library("OSMesa") is None else "no-such-backend"  # missing here, or unknown
    r = envs_cli(gl)
    assert r.returncode == 2, r.stderr
    line = one_line(r.stderr)
    assert line.startswith("error:") and "libosmesa6" in line and f"MUJOCO_GL={gl}" in line
    assert r.stdout == ""  # checked before the table is printed


def test_envs_lists_the_tasks_and_writes_a_labelled_still(tmp_path):
    from PIL import Image

    from vislearn.control import envs_cli as cli

    still = tmp_path / "tasks.png"
    rc, out, err = call(cli.main, "--still", still, "--size", "32")
    assert rc == 0, err
    for t in TASKS.values():
        assert t.name in out and t.metaworld in out
    assert f"MUJOCO_GL={os.environ['MUJOCO_GL']}" in out
    img = np.asarray(Image.open(still))
    assert img.shape[0] > 32 and img.shape[1] >= 4 * 32
    panels = [img[-36:-4, 4 + i * 36: 36 + i * 36] for i in range(4)]  # the four frames, under their labels
    assert all(p.std() > 5 for p in panels) and not np.array_equal(panels[0], panels[3])
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"user's")
    rc, _, err = call(cli.main, "--still", mine, "--size", "32")
    assert rc == 2 and "--overwrite" in one_line(err) and mine.read_bytes() == b"user's"
