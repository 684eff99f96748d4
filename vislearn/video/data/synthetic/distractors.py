"""Boxes of the synthetic set's distractor objects: `vislearn video distractors --data DIR --out FILE`.

As in the real annotations, only the objects the action involves are boxed; the generator's distractors
(static objects elsewhere on the table) are not. A detector that boxes a distractor makes a false
positive, and telling that error apart from a missed or badly placed box needs the distractors'
boxes: this rebuilds each video's scene from its seed (`make_spec`, `build_scene`: the generator's own
draws, no rendering) and writes the distractors' boxes per frame, with the camera jitter, clipped to
the frame, in the Something-Else format (`standard_category` "distractor", `category` the noun), to be
given as ignore regions (`tracking evaluate-detector --ignore-boxes`). A distractor partly hidden by
the hand keeps its full box.

The rebuild is checked against `synthetic.json` (the nouns and the placed distractors); a data set
made by another version of the generator is refused.
"""
from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Iterable

import numpy as np

from vislearn.common.errors import UserError
from vislearn.common.files import input_file
from vislearn.common.jsonio import read_json
from ..annotations import frame_name
from .generate import SYNTHETIC, make_spec
from vislearn.common.drawing.draw import ObjState, visible_object_box
from .render import build_scene

CATEGORY = "distractor"


def _spec_kwargs(settings: dict) -> dict:
    """Generator options stored in synthetic.json that `make_spec` takes (newer generators have more)."""
    accepted = inspect.signature(make_spec).parameters
    return {k: v for k, v in settings.items() if k in accepted and k not in ("seed", "width", "height")}


def distractor_records(data: str | Path, video_ids: Iterable[str] | None = None) -> dict[str, list[dict]]:
    """Video id -> one Something-Else record per frame with the boxes of that frame's distractors."""
    meta_path = Path(data) / SYNTHETIC
    meta = read_json(input_file(meta_path, "synthetic data set description", "a synthetic.json file"))
    if not isinstance(meta, dict) or "settings" not in meta or "videos" not in meta:
        raise UserError(f"{meta_path}: not a synthetic data set description (no settings/videos)")
    settings, videos = meta["settings"], meta["videos"]
    ids = list(videos) if video_ids is None else [str(v) for v in video_ids]
    extra = _spec_kwargs(settings)
    out = {}
    for vid in ids:
        if vid not in videos:
            raise UserError(f"{meta_path}: no video {vid!r}")
        v = videos[vid]
        spec = make_spec(int(settings["seed"]), int(vid) - 1, int(settings["width"]), int(settings["height"]), **extra)
        scene = build_scene(spec.template, spec.nouns, spec.distractors, spec.frames, spec.width, spec.height,
                            np.random.default_rng([spec.seed, spec.index, 1]))  # render_spec's draws
        if (spec.nouns != v.get("nouns") or spec.frames != v.get("frames")
                or scene.extras["distractor_nouns"] != v.get("distractor_nouns")):
            raise UserError(f"{meta_path}: video {vid}: the generator here draws another scene (nouns "
                            f"{spec.nouns}, distractors {scene.extras['distractor_nouns']}; the file says "
                            f"{v.get('nouns')}, {v.get('distractor_nouns')}): made by another generator version "
                            f"({meta.get('version')}); regenerate the data set")
        records = []
        for t in range(spec.frames):
            sx, sy = (float(s) for s in scene.shift[t])
            labels = []
            for look, x, g in scene.distractors:
                box = visible_object_box(look, ObjState(x + sx, g - look.ehh + sy), spec.width, spec.height)
                if box is None or box[2] <= box[0] or box[3] <= box[1]:
                    continue
                labels.append({"box2d": {"x1": round(box[0], 2), "y1": round(box[1], 2), "x2": round(box[2], 2),
                                         "y2": round(box[3], 2)},
                               "category": look.noun.name, "standard_category": CATEGORY, "gt_annotation": CATEGORY})
            records.append({"name": frame_name(vid, t), "labels": labels, "nr_instances": len(labels),
                            "gt_placeholders": list(spec.nouns)})
        out[vid] = records
    return out


def main(argv: list[str] | None = None) -> int:
    from vislearn.common.cli import Parser, run_main
    from vislearn.common.files import new_output_file
    from vislearn.common.jsonio import write_json

    p = Parser(prog="vislearn video distractors", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="synthetic data set folder (with synthetic.json)")
    p.add_argument("--out", required=True, help="Something-Else box JSON to write (category: the noun, "
                   "standard_category 'distractor'); give it to `tracking train-detector / evaluate-detector "
                   "--ignore-boxes`")
    p.add_argument("--ids", nargs="*", help="only these video ids (default: all)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = p.parse_args(argv)

    def run() -> int:
        data = Path(args.data)  # the data set's own files are never replaced; another file only with --overwrite
        if data.exists() and not data.is_dir():
            raise UserError(f"{data}: is a file; --data expects the synthetic data set's folder")
        out = new_output_file(args.out, [data / SYNTHETIC, data / "annotations.json",
                                         *data.glob("something-something-v2-*.json")], args.overwrite)
        records = distractor_records(args.data, args.ids or None)
        write_json(out, records)
        boxes = sum(len(r["labels"]) for recs in records.values() for r in recs)
        print(f"wrote {out}: distractor boxes of {len(records)} videos ({boxes} boxes)")
        return 0

    return run_main(run)


if __name__ == "__main__":
    sys.exit(main())
