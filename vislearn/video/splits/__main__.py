"""Command line: `vislearn video splits {compositional,shuffled,fewshot,validate,stats} ...`.

Exit codes: 0 success; 1 validation failed (a protocol check failed); 2 bad input (missing or
malformed files, unknown templates, records without placeholders, an empty result, ...);
130 interrupted. Bad input gives one line on stderr, "error: <file>: <what is wrong>", never a
traceback.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from vislearn.common.cli import Parser, run_main
from vislearn.common.errors import UserError
from vislearn.common.outputs import claim_folder

EPILOG = """\
examples:
  vislearn video splits compositional --labels L.json --train T.json --val V.json --boxes annotations.json --out runs/comp
  vislearn video splits compositional --data path/to/ssv2 --out runs/comp          (finds something-something-v2-*.json)
  vislearn video splits shuffled --from runs/comp --out runs/comp_shuffled
  vislearn video splits fewshot --labels L.json --train T.json --val V.json --out runs/fewshot --shots 5 10 --draws 5
  vislearn video splits validate runs/comp
  vislearn video splits stats runs/comp --out runs/comp_stats
  vislearn video splits stats path/to/ssv2          (noun-verb bias of the metadata, beside real SSv2's)

exit codes: 0 ok, 1 a protocol check failed (validate), 2 bad input, 130 interrupted
"""


OVERWRITE_HELP = ("replace files of the split's names in --out that vislearn did not write (its own, from an earlier "
                  "run, are replaced anyway)")


def _add_metadata_args(p: argparse.ArgumentParser, val_required: bool) -> None:
    p.add_argument("--data", type=Path, metavar="DIR",
                   help="SSv2 metadata folder; supplies --labels/--train/--val from the standard file names "
                        "(something-something-v2-labels.json, -train.json, -validation.json)")
    p.add_argument("--labels", type=Path, help="labels file: {class name: index}")
    p.add_argument("--train", type=Path, help="training records [{id, label, template, placeholders}]")
    p.add_argument("--val", type=Path, help="validation records" + ("" if val_required else
                                                                   " (optional: pooled with --train)"))


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(
        prog="vislearn video splits",
        description="Make and check Something-Else splits of SSv2 metadata: the compositional split "
                    "(train 1A + 2B / validation 1B + 2A), its shuffled control, the few-shot split.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    p = sub.add_parser("compositional", help="search a compositional split and write it in the official format",
                       description="Pool the records, canonicalise nouns, search template groups 1/2 and noun sets "
                                   "A/B maximising P*classes_with_both_sides + videos_kept - balance*sum_c|train_c - "
                                   "validation_c|, and write labels.json, train.json, validation.json, objectsA.json, "
                                   "objectsB.json, noun_map.json, report.json.")
    _add_metadata_args(p, val_required=False)
    p.add_argument("--boxes", type=Path, metavar="FILE_OR_STORE",
                   help="Something-Else box annotations (JSON file or box store folder); videos without boxes are dropped")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rule", choices=["all-same-set", "first-noun", "single-noun"], default="all-same-set",
                   help="which nouns of a multi-object video count (default: all, and they must share a set)")
    p.add_argument("--min-per-side", type=int, default=1, help="videos each class needs on each side (default 1)")
    p.add_argument("--min-noun-videos", type=int, default=1,
                   help="drop videos with a noun seen in fewer videos than this (default 1: keep all)")
    p.add_argument("--balance", type=float, default=0.5,
                   help="weight of sum over classes of |train - validation| in the objective (default 0.5)")
    p.add_argument("--noun-balance", type=float, default=0.0,
                   help="weight of |#nouns A - #nouns B| in the objective (default 0)")
    p.add_argument("--merge-heads", type=int, default=0, metavar="N",
                   help="map 'plastic bottle' to 'bottle' when the head noun has >= N videos (default 0: off)")
    p.add_argument("--restarts", type=int, default=4, help="seeded random starts of the local search (default 4)")
    p.add_argument("--quiet", action="store_true", help="no summary, no progress bar")

    p = sub.add_parser("shuffled", help="the shuffled control of a split: same videos, random per-class split",
                       description="Same pooled videos, same classes, same per-class training/validation counts, "
                                   "split at random (seeded).")
    p.add_argument("--from", dest="src", type=Path, required=True, metavar="DIR", help="a compositional split folder")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("fewshot", help="base/novel classes with k-shot fine-tuning sets",
                       description="Base classes keep their training/validation sets; novel classes get k-shot "
                                   "fine-tuning sets (K independent draws) and a validation set.")
    _add_metadata_args(p, val_required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("--base-classes", type=int, default=None,
                   help="number of base classes (default: 88 for SSv2's 174 classes, as the paper; else half the "
                        "classes of the labels file, rounded down)")
    p.add_argument("--base-labels", type=Path, help="use the base classes of this labels file (e.g. the official one)")
    p.add_argument("--shots", type=int, nargs="+", default=[5, 10], help="k values (default 5 10)")
    p.add_argument("--draws", type=int, default=1, help="independent draws of the k-shot sets (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("validate", help="check a split folder against the protocol",
                       description="Checks what the folder holds (official folders with only labels/objects too) "
                                   "and prints a table. Exit 1 naming the offending pairs or ids if a check fails.")
    p.add_argument("folder", type=Path)
    p.add_argument("--pairs", choices=["all", "first"], default=None,
                   help="nouns of a video that form verb-noun pairs (default: the split's rule from report.json, "
                        "else all)")
    p.add_argument("--quiet", action="store_true", help="print only failures")

    p = sub.add_parser("stats", help="noun-verb bias of SSv2 metadata; class counts, drops and plots of a split",
                       description="PATH is SSv2 metadata (a folder with something-something-v2-train.json / "
                                   "-validation.json, or one record-list file): prints its noun-verb bias beside real "
                                   "SSv2's. Or a split folder: class counts per side, nouns per set, drops, the "
                                   "noun-verb bias of each side; with --out also writes stats.json, class_counts.csv "
                                   "and class_distribution.png there (the split itself is never changed). The bias is measured on single-object templates and "
                                   "nouns with >= --min-noun-videos videos: how often a noun's most frequent "
                                   "template is the video's (against the nouns shuffled among the videos), the "
                                   "mutual information beyond the shuffled control as a share of the template "
                                   "entropy, and the share of a template's videos its 3 most frequent nouns cover.")
    p.add_argument("folder", type=Path, metavar="PATH")
    p.add_argument("--out", type=Path, default=None,
                   help="split folders: also write stats.json, class_counts.csv and class_distribution.png into "
                        "this folder (default: print only; describing a split never changes it)")
    p.add_argument("--overwrite", action="store_true", help="replace files of those names in --out that vislearn "
                                                            "did not write")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--min-noun-videos", type=int, default=10,
                   help="nouns with fewer videos are left out of the bias figures (default 10, as measured on SSv2)")
    return ap


def _metadata(args, need_val: bool) -> tuple[Path, Path, Path | None]:
    if args.data is not None:
        from vislearn.video.data.ssv2 import find_metadata

        if not args.data.is_dir():
            raise UserError(f"{args.data}: folder not found")
        found = find_metadata(args.data)
        args.labels = args.labels or found.get("labels")
        args.train = args.train or found.get("train")
        args.val = args.val or found.get("validation")
    missing = [flag for flag, v in (("--labels", args.labels), ("--train", args.train)) if v is None]
    if need_val and args.val is None:
        missing.append("--val")
    if missing:
        where = f" (not found in {args.data})" if args.data is not None else ""
        raise UserError(f"missing {', '.join(missing)}{where}")
    return args.labels, args.train, args.val


def split_files(io) -> list[str]:
    """The files of a compositional (or shuffled) split folder."""
    return [io.LABELS, io.TRAIN, io.VALIDATION, io.OBJECTS_A, io.OBJECTS_B, io.NOUN_MAP, io.REPORT]


def _check_out(out: Path, inputs: list, names: list[str], overwrite: bool) -> None:
    """Before any work: --out must be a writable folder (not another command's), none of the files written
    there (`names`) may be an input, and one that exists and that vislearn did not write is replaced only
    with --overwrite (`vislearn.common.outputs`)."""
    claim_folder(out, names, kind="video splits", overwrite=overwrite, inputs=inputs, flag="--out")


def cmd_compositional(args) -> int:
    from . import compositional as comp
    from . import io

    labels, train, val = _metadata(args, need_val=False)
    _check_out(args.out, [labels, train, val, args.boxes], split_files(io), args.overwrite)
    options = comp.Options(rule=args.rule, min_per_side=args.min_per_side, min_noun_videos=args.min_noun_videos,
                           balance=args.balance, noun_balance=args.noun_balance, restarts=args.restarts,
                           merge_heads=args.merge_heads, seed=args.seed)
    options.check()
    t0 = time.perf_counter()
    pool = comp.load_pool(labels, train, val)
    boxes = None
    if args.boxes is not None:
        from vislearn.video.data.box_store import open_boxes

        if not args.boxes.exists():
            raise UserError(f"{args.boxes}: file not found")
        boxes = open_boxes(args.boxes)
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=options.restarts, desc="search", unit="start", disable=None, leave=False)
    try:
        result = comp.make_compositional(pool, options, boxes=boxes, boxes_source=str(args.boxes) if boxes else None,
                                         progress=(lambda r: bar.update(1)) if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    result.report["seconds"]["total"] = round(time.perf_counter() - t0, 3)
    comp.write_result(args.out, result)
    if not args.quiet:
        print(comp.summary(result, args.out))
    return 0


def cmd_shuffled(args) -> int:
    from . import io, shuffled

    names = split_files(io)
    _check_out(args.out, [Path(args.src) / n for n in names], names, args.overwrite)
    report = shuffled.run_shuffled(args.src, args.out, args.seed)
    if not args.quiet:
        print(shuffled.summary(report, args.out))
    return 0


def cmd_fewshot(args) -> int:
    from . import fewshot
    from . import io

    labels, train, val = _metadata(args, need_val=True)
    written = [io.BASE_LABELS, io.FINETUNE_LABELS, io.BASE_TRAIN, io.BASE_VAL, io.REPORT, io.DRAWS_DIR]
    written += [io.finetune_name(k, part) for k in args.shots for part in ("train", "val")]
    written += [f"{io.DRAWS_DIR}/draw_{d}/{io.finetune_name(k, part)}" for d in range(1, args.draws)
                for k in args.shots for part in ("train", "val")]
    _check_out(args.out, [labels, train, val, args.base_labels], written, args.overwrite)
    result = fewshot.run_fewshot(labels, train, val, args.out, args.base_classes, args.shots, args.draws, args.seed,
                                 args.base_labels)
    if not args.quiet:
        print(fewshot.summary(result, args.out))
    return 0


def cmd_validate(args) -> int:
    from . import validate as v

    checks, kind = v.validate(args.folder, args.pairs)
    bad = v.failed(checks)
    if not args.quiet:
        print(f"{kind} split: {args.folder}")
        print(v.format_table(checks))
    elif bad:
        print(v.format_table(bad))
    if bad:
        print(f"error: {args.folder}: {len(bad)} check(s) failed: " + "; ".join(f"{c.name}: {c.detail}" for c in bad),
              file=sys.stderr)
        return 1
    return 0


def cmd_stats(args) -> int:
    from . import stats

    if args.min_noun_videos < 1:
        raise UserError("--min-noun-videos must be at least 1")
    if stats.is_metadata(args.folder):
        text, _ = stats.metadata_stats(args.folder, args.min_noun_videos)
    elif args.folder.is_dir() and not any(args.folder.glob("*.json")):
        raise UserError(f"{args.folder}: no JSON files: neither SSv2 metadata (something-something-v2-train.json, "
                        f"-validation.json) nor a split folder (labels.json, train.json, validation.json, ...)")
    else:
        if args.out is not None:
            claim_folder(args.out, ["stats.json", "class_counts.csv", "class_distribution.png"],
                         overwrite=args.overwrite, inputs=[args.folder], flag="--out")
        text, _ = stats.stats(args.folder, plot=not args.no_plot, out=args.out, min_noun_videos=args.min_noun_videos)
    print(text)
    return 0


COMMANDS = {"compositional": cmd_compositional, "shuffled": cmd_shuffled, "fewshot": cmd_fewshot,
            "validate": cmd_validate, "stats": cmd_stats}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return run_main(lambda: COMMANDS[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
