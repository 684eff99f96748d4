"""`vislearn backbones COMMAND` (or `python -m vislearn.backbones COMMAND`): the encoders every family takes by name
(`vislearn.backbones.create_backbone(name, **kwargs)`): ViT_P / ViT_C, MobileNetV2, video trunks."""
from __future__ import annotations

import sys

from vislearn.common.cli import Command, dispatch

COMMANDS = [
    Command("list", "vislearn.backbones.registry", "every backbone by name, with its parameters and flops"),
    Command("imageset", "vislearn.backbones.imagesets.command",
            "render the image set for classification (24 object classes) as an ImageFolder tree or an .npz"),
    Command("train", "vislearn.backbones.train", "train an image classifier on a backbone (ViT_P / ViT_C, ...)"),
    Command("claims", "vislearn.backbones.claims", "the ViT_C paper's claims at CPU scale: the grid, table and EDF plot"),
]
TITLE = "Backbones: ViT_P / ViT_C (Early Convolutions Help Transformers See Better), MobileNetV2, video trunks"


def main(argv: list[str] | None = None) -> int:
    return dispatch("vislearn backbones", __doc__.split("\n\n")[0], COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
