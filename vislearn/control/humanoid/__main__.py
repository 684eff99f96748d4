"""`vislearn control humanoid COMMAND`: Locomotion policies under domain randomisation, teacher then student."""
from __future__ import annotations

import sys

from vislearn.common.cli import Command, dispatch

COMMANDS = [
    Command("train-teacher", "vislearn.control.humanoid.train_teacher", "PPO with an MLP on the privileged state"),
    Command("train-student", "vislearn.control.humanoid.train_student",
            "a transformer / LSTM / MLP on the observation history, RL + KL to the teacher"),
    Command("evaluate", "vislearn.control.humanoid.evaluate",
            "success and tracking error on training and held-out dynamics; mid-episode adaptation"),
    Command("record", "vislearn.control.humanoid.record", "an mp4 of a policy, commanded and actual velocity drawn"),
]


def main(argv: list[str] | None = None) -> int:
    return dispatch("vislearn control humanoid", __doc__.split("\n\n")[0].split(": ", 1)[1], COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
