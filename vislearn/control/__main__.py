"""`vislearn control COMMAND` (or `python -m vislearn.control COMMAND`): control from pixels with frozen encoders (MVP)."""
from __future__ import annotations

import sys

from vislearn.common.cli import Command, dispatch

COMMANDS = [
    Command("envs", "vislearn.control.envs_cli", "the tasks, a still of each, the OpenGL backend and render speed"),
    Command("demos", "vislearn.control.demos", "record scripted-expert demonstrations with their rendered frames"),
    Command("bc", "vislearn.control.bc", "behaviour cloning with a frozen encoder (features cached per frame)"),
    Command("ppo", "vislearn.control.ppo", "PPO with the same policy, from pixels or states"),
    Command("evaluate", "vislearn.control.evaluate", "success rate of a policy over seeded episodes"),
    Command("record", "vislearn.control.record", "an mp4 of a policy's episodes, success marked"),
    Command("compare", "vislearn.control.compare", "the encoder comparison: tasks x encoders x demos x seeds, one table"),
    Command("humanoid", "vislearn.control.humanoid.__main__", "locomotion under domain randomisation: teacher, "
            "transformer/LSTM/MLP students, held-out dynamics"),
    Command("cycles", "vislearn.control.cycles.__main__", "cross-domain transfer by dynamics cycle-consistency: "
            "other physics, bodies or sensors"),
]
TITLE = "Control from pixels with frozen pretrained encoders (MVP): MuJoCo tasks, BC and PPO"


def main(argv: list[str] | None = None) -> int:
    return dispatch("vislearn control", __doc__.split("\n\n")[0], COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
