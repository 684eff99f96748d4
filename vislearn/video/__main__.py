"""`vislearn video COMMAND` (or `python -m vislearn.video COMMAND`): Something-Else, compositional action
recognition (CVPR 2020): data, splits, hand/object tracking, STIN / scene / fusion / STRG models."""
from __future__ import annotations

import sys

from vislearn.common.cli import Command, dispatch

COMMANDS = [
    Command("data", "vislearn.video.data.__main__",
            "box annotations and videos: index-boxes, merge-boxes, inspect, extract-frames"),
    Command("synthetic", "vislearn.video.data.synthetic.__main__",
            "render the synthetic Something-Else-style data set (videos, boxes, labels)"),
    Command("distractors", "vislearn.video.data.synthetic.distractors",
            "boxes of the synthetic set's distractor objects"),
    Command("splits", "vislearn.video.splits.__main__",
            "compositional, shuffled and few-shot splits; validate; stats"),
    Command("tracking", "vislearn.video.tracking.__main__",
            "hand/object detector, tracker, identities, MOT and AP evaluation"),
    Command("train", "vislearn.video.actions.train", "train a model (STIN, scene, fusion, STRG) on a split"),
    Command("evaluate", "vislearn.video.actions.evaluate", "score a checkpoint (or an ensemble) on a split"),
    Command("fewshot", "vislearn.video.actions.fewshot", "the few-shot protocol: base training, k-shot fine-tuning"),
    Command("infer", "vislearn.video.actions.infer", "from raw videos to the action (optionally detector + tracker)"),
    Command("report", "vislearn.video.actions.report", "one self-contained HTML page of a run or table folder"),
    Command("convert", "vislearn.video.actions.convert", "official Something-Else checkpoints in"),
    Command("export", "vislearn.video.actions.export", "a trained model out as TorchScript or ONNX"),
    Command("table", "vislearn.video.actions.table",
            "the paper's table on the synthetic benchmark, end to end (make table-full)"),
]
TITLE = "Something-Else: compositional action recognition (STIN, scene stream, STRG, tracker)"


def main(argv: list[str] | None = None) -> int:
    return dispatch("vislearn video", __doc__.split("\n\n")[0], COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
