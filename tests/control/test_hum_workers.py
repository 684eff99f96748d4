"""Environments over worker processes step exactly as in one process (same seeds, same observations, rewards and
episode ends), and their state comes back exactly after `restore` (resume with workers)."""
import numpy as np

from vislearn.control.humanoid.env import EnvSettings, LocoEnvs
from vislearn.control.humanoid.randomization import Randomization
from vislearn.control.humanoid.workers import ProcEnvs


def seed_of(i, k):
    return 500 + 1000 * i + k


def run(envs, actions):
    out = []
    for a in actions:
        r, te, tr, fin = envs.step(a)
        out.append((r.copy(), te.copy(), tr.copy(), sorted(fin), envs.obs.copy(), envs.priv.copy()))
    return out


def same(a, b) -> bool:
    return len(a) == len(b) and all(
        x[3] == y[3] and all(np.array_equal(u, v) for u, v in zip(x[:3] + x[4:], y[:3] + y[4:])) for x, y in zip(a, b))


def test_workers_step_as_one_process_and_restore_exactly():
    settings = EnvSettings(episode_seconds=0.3)  # 15 steps: episodes end and restart inside the test
    rand = Randomization()
    actions = np.random.default_rng(0).uniform(-1, 1, size=(40, 5, 6))
    one = LocoEnvs(settings, 5, rand, seed_of)
    one.start()
    procs = ProcEnvs(settings, 5, rand, seed_of, workers=2)
    try:
        procs.start()
        assert np.array_equal(one.obs, procs.obs) and np.array_equal(one.priv, procs.priv)
        first = run(one, actions[:20])
        assert same(first, run(procs, actions[:20]))
        assert any(step[3] for step in first)  # some episodes ended (and restarted from their seeds)
        saved = procs.state()
        later = run(procs, actions[20:])
        assert same(later, run(one, actions[20:]))
        procs.restore(saved)
        assert same(later, run(procs, actions[20:]))
    finally:
        procs.close()
