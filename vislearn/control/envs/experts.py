"""The scripted experts: Meta-World's hand-written policy of each task, on the full state."""
from __future__ import annotations

import numpy as np

from .tasks import get_task


class ScriptedExpert:
    """`expert(states)` -> actions [N, 4] for a batch of full states [N, 39] (obs["state"])."""

    def __init__(self, task: str):
        import warnings

        from metaworld.policies import ENV_POLICY_MAP

        # the experts' gains push some actions past [-1, 1]; Meta-World warns on every call, we clip
        warnings.filterwarnings("ignore", message="Constant.*may be too high", category=UserWarning)

        self.task = get_task(task)
        self._policy = ENV_POLICY_MAP[self.task.metaworld]()

    def __call__(self, states: np.ndarray) -> np.ndarray:
        states = np.atleast_2d(states)
        return np.stack([np.clip(self._policy.get_action(s), -1.0, 1.0) for s in states]).astype(np.float32)
