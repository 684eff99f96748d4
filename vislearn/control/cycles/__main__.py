"""`vislearn control cycles COMMAND`: transfer a policy to a robot with other physics, another body or other sensors
through a correspondence learned by dynamics cycle-consistency from unpaired data (ICLR 2021), no fine-tuning."""
from __future__ import annotations

import sys

from vislearn.common.cli import Command, dispatch

COMMANDS = [
    Command("collect", "vislearn.control.cycles.collect", "random-action transitions in both domains of a pair, "
            "unpaired"),
    Command("train-policy", "vislearn.control.cycles.train_policy", "PPO in one domain: the source policy or the "
            "target oracle"),
    Command("fit", "vislearn.control.cycles.fit", "forward models, then state and action maps by dynamics cycles"),
    Command("transfer", "vislearn.control.cycles.transfer", "the source policy in the target through the maps: "
            "returns, video"),
    Command("evaluate", "vislearn.control.cycles.evaluate", "the table: maps, direct transfer, oracle, random, over "
            "seeds; report page"),
]


def main(argv: list[str] | None = None) -> int:
    return dispatch("vislearn control cycles", __doc__.split("\n\n")[0].split(": ", 1)[1], COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
