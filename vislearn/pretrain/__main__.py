"""`vislearn pretrain COMMAND` (or `python -m vislearn.pretrain COMMAND`): representation learners whose encoders
every family loads by path (`vislearn.backbones.create_backbone(name, weights=RUN/encoder.pth)`)."""
from __future__ import annotations

import sys

from vislearn.common.cli import Command, dispatch

COMMANDS = [
    Command("mae", "vislearn.pretrain.train_mae", "MAE pre-training of ViT_P / ViT_C on a folder of images or videos"),
    Command("probe", "vislearn.pretrain.probe", "linear probe of encoders on an image set (C on val, test error)"),
    Command("compare", "vislearn.pretrain.compare", "MAE vs random, scratch and ImageNet MobileNetV2 over seeds"),
]
TITLE = "Pre-training: MAE (the MVP papers' encoder), with linear-probe and fine-tuning evaluation"


def main(argv: list[str] | None = None) -> int:
    return dispatch("vislearn pretrain", __doc__.split("\n\n")[0], COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
