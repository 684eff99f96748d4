"""The data layer of the image domain: `data.collect` stores each frame once and `Transitions` rebuilds the stacks
on demand; the rebuilt stacks equal, bit for bit, what `ImageObservation` returned step by step when the same
episodes are replayed with the same seeds and actions, including the first frame repeated after each reset. Real
MuJoCo rendering (skipped cleanly where no offscreen OpenGL renders)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import vislearn.control.envs  # noqa: F401  (MUJOCO_GL first)
from vislearn.common.errors import UserError
from vislearn.control.cycles import data as datamod
from vislearn.control.cycles.domains import Domain, make_env, variant_xml

pytestmark = pytest.mark.usefixtures("one_thread")
STEPS, EPISODE, SEED = 50, 20, 3  # 3 episodes: 20 + 20 + 10 steps, two resets inside the data


@pytest.fixture(scope="module")
def image_domain():
    d = Domain(task="HalfCheetah-v5", observation="image", image_size=32, frames=3)
    try:
        env = make_env(d)
    except UserError as e:
        pytest.skip(f"no offscreen OpenGL here: {e}")
    env.close()
    return d, variant_xml(d)


def test_rebuilt_stacks_equal_what_the_wrapper_returned(image_domain):
    d, xml = image_domain
    data = datamod.collect(d, xml, STEPS, EPISODE, SEED)
    assert len(data["act"]) == STEPS and int(data["episodes"]) == 3
    assert data["frames"].shape == (STEPS + 3, 32, 32)  # one frame per step plus each episode's first
    assert "obs" not in data  # no stacked copies on disk
    trans = datamod.Transitions.of(data)
    obs, act, nxt = trans.batch(torch.arange(STEPS))
    assert obs.dtype == torch.uint8 and tuple(obs.shape) == (STEPS, 3, 32, 32)
    # replay: same episode seeds, the recorded actions (also the same rng stream as collect's)
    rng = np.random.default_rng(SEED)
    env = make_env(d, xml)
    want_obs, want_next, want_states = [], [], []
    try:
        k = 0
        for episode in range(3):
            o, info = env.reset(seed=SEED * datamod.SEED_STRIDE + episode)
            assert (o == o[0]).all()  # after a reset: the first frame repeated
            for _ in range(min(EPISODE, STEPS - k)):
                a = rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32)
                np.testing.assert_array_equal(a, data["act"][k])
                o1, _, _, _, info1 = env.step(a)
                want_obs.append(o)
                want_next.append(o1)
                want_states.append(info["state"])
                o, info, k = o1, info1, k + 1
    finally:
        env.close()
    np.testing.assert_array_equal(obs.numpy(), np.stack(want_obs))
    np.testing.assert_array_equal(nxt.numpy(), np.stack(want_next))
    np.testing.assert_array_equal(data["states"], np.stack(want_states).astype(np.float32))  # stored as float32
    starts = [0, EPISODE, 2 * EPISODE]
    for s in starts:  # the first transition of each episode: its first frame three times
        assert (obs[s] == obs[s, 0]).all() and not (nxt[s, 2] == nxt[s, 1]).all()
        assert (nxt[s, :2] == obs[s, 0]).all()
    assert not (obs[1:] == obs[:-1]).all()  # the frames move (a stack of one frame everywhere would pass above)


def test_state_data_round_trips_through_the_file(tmp_path):
    d = Domain(task="Hopper-v5")
    data = datamod.collect(d, variant_xml(d), 300, 1000, 0)
    assert data["obs"].shape == (300, 11) and data["act"].shape == (300, 3)
    ends = np.flatnonzero(data["term"])
    assert len(ends) >= 1 and int(data["episodes"]) == len(ends) + 1  # Hopper falls under random actions
    # within an episode, next_obs is the following obs; across a reset it is not
    follow = np.all(data["next_obs"][:-1] == data["obs"][1:], axis=1)
    assert not follow[ends].any() and follow[np.setdiff1d(np.arange(299), ends)].all()
    datamod.save(tmp_path / "d.npz", data)
    back = datamod.load(tmp_path / "d.npz")
    for k in ("obs", "act", "next_obs", "term"):
        np.testing.assert_array_equal(back[k], data[k])
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a transitions file"):
        datamod.load(tmp_path / "junk.npz")
