"""`vislearn pretrain COMMAND` (or `python -m vislearn.pretrain COMMAND`): representation learners whose encoders
every family loads by path (`vislearn.backbones.create_backbone(name, weights=RUN/encoder.pth)`)."""
from __future__ import annotations

import sys

from vislearn.common.cli import Command, dispatch

COMMANDS = [
    Command("mae", "vislearn.pretrain.train_mae", "MAE pre-training of ViT_P / ViT_C on a folder of images or videos"),
    Command("probe", "vislearn.pretrain.probe", "linear probe of encoders on an image set (C on val, test error)"),
    Command("compare", "vislearn.pretrain.compare", "MAE vs random, scratch and ImageNet MobileNetV2 over seeds"),
    Command("moco", "vislearn.pretrain.contrastive.moco", "MoCo-v2 (momentum encoder, queue, InfoNCE): the baseline "
            "of resim and looc"),
    Command("resim", "vislearn.pretrain.contrastive.resim", "ReSim: MoCo-v2 + region similarity of sliding windows "
            "on C3/C4 (ICCV 2021)"),
    Command("looc", "vislearn.pretrain.contrastive.looc", "LooC: one embedding space per augmentation left out of "
            "the invariance (ICLR 2021)"),
    Command("convert", "vislearn.pretrain.contrastive.official", "an official MoCo / ReSim checkpoint -> an encoder "
            "checkpoint every family loads"),
    Command("metric", "vislearn.pretrain.metric.train", "metric learning (triplet, margin) with the nearest-positive "
            "rule against class collapse (ICCV 2021)"),
    Command("retrieve", "vislearn.pretrain.metric.retrieve", "nearest-neighbour query of images with a metric run: "
            "top-k and a contact sheet"),
]
TITLE = ("Pre-training: MAE (the MVP papers' encoder), MoCo-v2, ReSim, LooC and metric learning, with linear-probe "
         "and fine-tuning evaluation")


def main(argv: list[str] | None = None) -> int:
    return dispatch("vislearn pretrain", __doc__.split("\n\n")[0], COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
