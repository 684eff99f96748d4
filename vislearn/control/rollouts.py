"""A policy's success rate over seeded evaluation episodes: what `bc`, `evaluate` and `record` all report.

Evaluation episode i runs seed `seed_base + i` (default EVAL_SEEDS: never a demonstration seed, `envs.tasks`),
on `num_envs` environments in processes; the result of an episode depends on its seed and the policy only."""
from __future__ import annotations

import numpy as np

from .envs import RenderSettings, make_vector_env, run_episodes
from .envs.tasks import EVAL_SEEDS


def evaluate_policy(agent, task: str, episodes: int, num_envs: int = 1, seed_base: int = EVAL_SEEDS,
                    render: RenderSettings | None = None, keep: bool = False, on_episode=None) -> dict:
    """Run `agent` (an `agent.Agent`, or any `act(obs) -> actions`) on `episodes` seeded episodes of `task`.

    Returns {success_rate, mean_length, mean_return, episodes, seed_base, per_episode: [{seed, success, length,
    return}]}; with `keep`, also `rollouts`: the `envs.Episode`s with their frames (`record`)."""
    pixels = getattr(agent, "encoder", None) is not None or keep
    render = render or getattr(agent, "render", None) or RenderSettings()
    vec = make_vector_env(task, max(1, min(num_envs, episodes)), pixels=pixels, render=render)
    try:
        done = run_episodes(vec, agent, [seed_base + i for i in range(episodes)], keep=keep, on_episode=on_episode)
    finally:
        vec.close()
    per = [{"seed": e.seed, "success": bool(e.success), "length": int(e.length), "return": float(e.ret)}
           for e in done]
    out = {"success_rate": float(np.mean([p["success"] for p in per])) if per else float("nan"),
           "mean_length": float(np.mean([p["length"] for p in per])) if per else float("nan"),
           "mean_return": float(np.mean([p["return"] for p in per])) if per else float("nan"),
           "episodes": len(per), "seed_base": int(seed_base), "per_episode": per}
    if keep:
        out["rollouts"] = done
    return out
