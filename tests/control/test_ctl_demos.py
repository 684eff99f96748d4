"""`vislearn control demos` with the real simulator: stored demonstrations read back in step with what the
environment shows, a stopped run continued, folders of other settings refused, `load_demos`' one-line errors."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from vislearn.common.errors import UserError
from vislearn.common.jsonio import write_json
from vislearn.control.demos import INDEX, episode_file, load_demos, main, record_demos
from vislearn.control.envs import RenderSettings, SawyerTaskEnv
from vislearn.control.envs.tasks import DEMO_SEEDS, EVAL_SEEDS, demo_seed_base

pytestmark = pytest.mark.usefixtures("one_thread")
RENDER = RenderSettings(size=32)


@pytest.fixture(scope="module")
def reach_demos(tmp_path_factory):
    out = tmp_path_factory.mktemp("demos") / "reach"
    record_demos("reach", 2, out, RENDER, seed=0, num_envs=1, log=lambda *a: None)
    return out


def test_demos_are_stored_and_read_back_in_step_with_the_environment(reach_demos):
    d = load_demos(reach_demos)
    assert d.task == "reach" and d.render == RENDER and len(d.seeds) == 2
    assert d.seeds == [demo_seed_base(0), demo_seed_base(0) + 1]  # seeds from the demo base: never evaluation seeds
    assert DEMO_SEEDS > EVAL_SEEDS + 100_000 and demo_seed_base(1) - demo_seed_base(0) == 100_000
    assert d.pixels.dtype == np.uint8 and d.pixels.shape[1:] == (32, 32, 3)
    assert d.proprio.shape[1] == 8 and d.states.shape[1] == 39 and d.actions.shape[1] == 4
    assert len(d.pixels) == len(d.proprio) == len(d.states) == len(d.actions) == len(d.episode)
    index = json.loads((reach_demos / INDEX).read_text())
    assert index["expert_successes"] == 2 and index["version"] == 1
    assert [e["length"] for e in index["episodes"]] == np.bincount(d.episode).tolist()
    # replay the second episode's seed and actions in a fresh environment: frame t shows the state of step t
    ep = d.episode == 1
    pixels, proprio, states, actions = d.pixels[ep], d.proprio[ep], d.states[ep], d.actions[ep]
    env = SawyerTaskEnv("reach", pixels=True, render=RENDER)
    try:
        obs, _ = env.reset(seed=d.seeds[1])
        for t in range(len(actions)):
            assert np.array_equal(obs["pixels"], pixels[t]), f"frame {t}"
            assert np.array_equal(obs["proprio"], proprio[t]) and np.array_equal(obs["state"], states[t])
            obs, _, terminated, _, _ = env.step(actions[t])
        assert terminated  # a stored demonstration is a successful one
    finally:
        env.close()
    assert not np.array_equal(d.pixels[0], d.pixels[len(actions) // 2 + np.argmax(d.episode)])  # frames do change
    first = load_demos(reach_demos, 1, pixels=False)
    assert first.pixels is None and len(first.actions) == int(np.sum(d.episode == 0))
    assert np.array_equal(first.actions, d.actions[d.episode == 0])


def test_a_stopped_run_continues_and_keeps_what_it_wrote(reach_demos, tmp_path):
    cut = tmp_path / "cut"
    shutil.copytree(reach_demos, cut)  # keeps modification times: the files stay vislearn's
    index = json.loads((cut / INDEX).read_text())
    index["episodes"], index["seeds_tried"], index["expert_successes"] = index["episodes"][:1], 1, 1
    write_json(cut / INDEX, index)  # as a run killed after its first episode leaves it (written by vislearn)
    (cut / episode_file(1)).unlink()
    kept = (cut / episode_file(0)).stat().st_mtime_ns
    record_demos("reach", 2, cut, RENDER, seed=0, num_envs=1, log=lambda *a: None)
    assert (cut / episode_file(0)).stat().st_mtime_ns == kept
    a, b = load_demos(reach_demos), load_demos(cut)
    assert a.seeds == b.seeds
    for k in ("pixels", "proprio", "states", "actions"):
        assert np.array_equal(getattr(a, k), getattr(b, k)), k


@pytest.mark.parametrize("args, expect", [
    (["--task", "push"], "demonstrations of task 'reach'"),
    (["--task", "reach", "--size", "48"], "'size': 32"),
])
def test_a_folder_of_other_settings_is_one_line(reach_demos, capsys, args, expect):
    before = sorted(p.name for p in reach_demos.iterdir())
    assert main([*args, "--episodes", "3", "--out", str(reach_demos), "--num-envs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expect in err and "--overwrite" in err, err
    assert sorted(p.name for p in reach_demos.iterdir()) == before


def test_load_demos_refuses_in_one_line(reach_demos, tmp_path):
    with pytest.raises(UserError, match="not a demonstrations folder"):
        load_demos(tmp_path)
    with pytest.raises(UserError, match="holds 2 demonstrations, 5 asked for"):
        load_demos(reach_demos, 5)
    with pytest.raises(UserError, match="of task 'reach', not 'push'"):
        load_demos(reach_demos, task="push")
    broken = tmp_path / "broken"
    shutil.copytree(reach_demos, broken)
    (broken / episode_file(1)).write_bytes(b"PK\x03\x04 not really an npz")
    with pytest.raises(UserError, match="damaged demonstration file"):
        load_demos(broken)
    assert main(["--task", "nope", "--episodes", "1", "--out", str(tmp_path / "x")]) == 2
