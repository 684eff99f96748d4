"""`vislearn segment COMMAND` (or `python -m vislearn.segment COMMAND`): Segment Anything, from data to masks."""
from __future__ import annotations

import sys

from vislearn.common.cli import Command, dispatch

COMMANDS = [
    Command("generate-data", "vislearn.segment.data.generate", "render images with instance and part masks in SA-1B's format"),
    Command("train", "vislearn.segment.train", "train SAM with simulated interactive prompts (focal + dice + IoU loss)"),
    Command("predict", "vislearn.segment.predict", "masks for point / box prompts (PNG, RLE JSON, overlay)"),
    Command("auto", "vislearn.segment.auto", "automatic masks of whole images: point grid, IoU/stability filters, NMS"),
    Command("engine", "vislearn.segment.engine", "the data engine: assisted-manual, semi-automatic, fully automatic"),
    Command("evaluate", "vislearn.segment.evaluate", "point / box mIoU, oracle mIoU, proposal recall, real frames"),
    Command("export", "vislearn.segment.export", "ONNX export of the image encoder and the prompt decoder"),
]
TITLE = "Segment Anything: promptable masks, automatic masks, the data engine, export"


def main(argv: list[str] | None = None) -> int:
    return dispatch("vislearn segment", __doc__.split("\n\n")[0], COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
