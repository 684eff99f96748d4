"""`vislearn video evaluate --checkpoint C --split DIR`: score every video of a split file.

Top-1/top-5 over every video (nothing dropped), per-class accuracy, multi-view testing
(`--views 2x3` = 2 temporal clips x 3 spatial crops, softmax-averaged), and score-level ensembles
of separately trained models (`--ensemble C2 C3 --weights 1 1 1`: the paper's "I3D, STIN+OIE+NL"
rows). Writes `scores.npz` and `results.json` into `--out` when given.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from vislearn.common.cli import Parser, command
from vislearn.common.errors import UserError
from vislearn.common.files import atomic_path
from vislearn.common.jsonio import write_json
from vislearn.common.text import printable
from vislearn.video.data.split_layout import split_files
from vislearn.video.data.ssv2 import class_names as ordered_names
from vislearn.video.data.ssv2 import load_labels, load_records

from .checkpoints import config_of, load_model_checkpoint, model_from_checkpoint
from .data import eval_loader, make_dataset, model_inputs
from .distributed import DistInfo, pick_device
from .engine import predict
from .metrics import summarize
from .models import fuse_scores
from vislearn.common.tables import format_table
from .report import report_at_end


def parse_views(text: str) -> tuple[int, int]:
    try:
        clips, crops = (int(x) for x in text.lower().split("x"))
        if clips < 1 or crops < 1:
            raise ValueError
    except ValueError:
        raise UserError(f"--views must look like CLIPSxCROPS (e.g. 2x3), got {text!r}") from None
    return clips, crops


def save_scores(path: Path, video_ids, scores: np.ndarray, labels: np.ndarray, class_names) -> None:
    """scores.npz as every scoring command writes it (the report's contact sheets and `evaluate --ensemble`
    read these four arrays), atomically: a killed run leaves the old file or the new one."""
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, video_id=np.array(video_ids), scores=scores, label=labels,
                            class_names=np.array(class_names))


def publish_results(out: Path, results: dict, name: str = "results.json", beside: tuple[str, ...] = ()) -> None:
    """How a scoring command ends: its results JSON, one line naming it (and the files `beside` it,
    written before), then the folder's report.html, made from the files just written."""
    write_json(out / name, results, indent=1)
    print("wrote " + " and ".join(str(out / n) for n in (name, *beside)))
    report_at_end(out)


def score_checkpoint(path: str, args, device: torch.device) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    ckpt = load_model_checkpoint(path)
    names = list(ckpt["class_names"])
    cfg = config_of(ckpt, {"split": args.split, "boxes": args.boxes, "videos": args.videos,
                           "workers": args.workers, "eval_views": list(parse_views(args.views)),
                           "batch_size": args.batch_size}, path)
    files = split_files(cfg.split)
    labels = load_labels(files.labels)
    if ordered_names(labels) != names:
        raise UserError(f"{files.labels}: its classes differ from those {path} was trained on")
    records_file = files.records(args.set)
    model = model_from_checkpoint(ckpt, device, path)
    records = load_records(records_file, labels)
    if not records:
        raise UserError(f"{records_file}: no records to evaluate")
    ds = make_dataset(cfg, records, labels, **model_inputs(model), train=False,
                      views=tuple(cfg.eval_views), source=str(records_file))
    if len(ds) == 0:
        raise UserError(f"{records_file}: none of its {len(records)} videos can be scored ({ds.report})")
    if ds.report["kept"] < ds.report["records"]:
        print(printable(f"{path}: {ds.report['records'] - ds.report['kept']} of {ds.report['records']} videos cannot be "
                        f"scored ({ds.report}); they are left out"), file=sys.stderr)
    dist = DistInfo(device=device)
    ids, scores, y = predict(model, eval_loader(ds, cfg, dist), device, dist=dist, amp=cfg.amp, amp_cpu=cfg.amp_cpu,
                             progress=sys.stderr.isatty(), desc=Path(path).parent.name or "eval")
    return names, ids, scores, y


OUT_FILES = ("scores.npz", "results.json", "report.html")


def _an_evaluation(out: Path) -> bool:
    """Whether `out` holds the results.json of `evaluate --out` (a folder written before manifests: its
    files are taken as ours)."""
    from vislearn.common.jsonio import read_json

    try:
        results = read_json(out / "results.json")
    except (OSError, UserError):
        return False
    return isinstance(results, dict) and isinstance(results.get("models"), dict)


def check_out(args) -> None:
    """--out before any work: a folder of evaluate's own (never a training run's: its results.json and
    report.html are the training's), writable, without files of these names that vislearn did not write
    (unless --overwrite)."""
    from vislearn.common.outputs import claim_folder, read_manifest

    out = Path(args.out)
    if out.is_dir() and not read_manifest(out).get("kind") and (out / "config.yaml").is_file() \
            and any((out / n).is_file() for n in ("last.pt", "best.pt")):  # a run written before manifests
        raise UserError(f"{out}: holds the outputs of `vislearn video train` (a training run); `vislearn video "
                        f"evaluate` does not write there: choose another --out")
    claim_folder(out, OUT_FILES, kind="video evaluate", overwrite=args.overwrite,
                 inputs=[args.checkpoint, *(args.ensemble or [])], flag="--out", adopt=_an_evaluation(out))


def evaluate(args) -> int:
    if args.out:
        check_out(args)
    device = pick_device(args.device)
    paths = [args.checkpoint] + list(args.ensemble or [])
    weights = args.weights or [1.0] * len(paths)
    if len(weights) != len(paths):
        raise UserError(f"--weights: {len(weights)} weights for {len(paths)} checkpoints")
    runs = [score_checkpoint(p, args, device) for p in paths]
    names = runs[0][0]
    common = sorted(set.intersection(*(set(r[1]) for r in runs)))
    if not common:
        raise UserError("no video could be scored by every model")
    rows, results = [], {"set": args.set, "split": args.split, "views": args.views, "models": {}}
    aligned, labels = [], None
    for path, (_, ids, scores, y) in zip(paths, runs):
        pos = {v: i for i, v in enumerate(ids)}
        sel = [pos[v] for v in common]
        s, labels = scores[sel], y[sel]
        summary = summarize(s, labels, names)
        results["models"][path] = summary
        rows.append([path, summary["videos"], f"{100 * summary['top1']:.2f}", f"{100 * summary['top5']:.2f}"])
        aligned.append(s)
    fused = fuse_scores(aligned, weights, probabilities=True).numpy()
    if len(paths) > 1:
        summary = summarize(fused, labels, names)
        results["ensemble"] = {"weights": weights, **summary}
        rows.append(["ensemble (" + ", ".join(f"{w:g}" for w in weights) + ")", summary["videos"],
                     f"{100 * summary['top1']:.2f}", f"{100 * summary['top5']:.2f}"])
    final = results.get("ensemble") or next(iter(results["models"].values()))
    print(format_table([[printable(r[0]), *r[1:]] for r in rows], ["model", "videos", "top-1", "top-5"]))
    worst = sorted(((a, n) for n, a in final["per_class"].items() if a is not None))[:5]
    # class names come from the labels file: `printable` (no terminal escapes)
    print("lowest per-class top-1: " + "; ".join(f"{printable(n)} {100 * a:.0f}%" for a, n in worst))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        save_scores(out / "scores.npz", common, fused, labels, names)
        results.update({k: v for k, v in (("boxes", args.boxes), ("videos", args.videos)) if v})  # for the report
        publish_results(out, results, beside=("scores.npz",))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn video evaluate", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a checkpoint written by actions.train (best.pt)")
    p.add_argument("--split", help="split folder (default: the one the checkpoint was trained on)")
    p.add_argument("--set", default="validation", help="which record list of the split to score (default validation)")
    p.add_argument("--views", default="1x1", help="CLIPSxCROPS test views, softmax-averaged (default 1x1)")
    p.add_argument("--ensemble", nargs="*", help="more checkpoints whose scores are fused with the first")
    p.add_argument("--weights", nargs="*", type=float, help="one weight per checkpoint for score fusion")
    p.add_argument("--boxes", help="box file/store (default: the checkpoint's)")
    p.add_argument("--videos", help="video folder (default: the checkpoint's)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--out", help="folder for results.json, scores.npz and report.html (not a training run's folder)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files of those names in --out that vislearn did not write")
    return p


main = command(build_parser, evaluate)


if __name__ == "__main__":
    sys.exit(main())
