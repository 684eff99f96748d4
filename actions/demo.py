"""`python -m actions.demo`: the paper's table on the synthetic benchmark, end to end.

1. Generate the synthetic Something-Else-style data set (datasets.synthetic) unless it exists.
2. Make its compositional split and the shuffled control with the split tool (splits).
3. For each split and seed: train STIN+OIE+NL (boxes), the scene CNN (pixels), and their fusion
   (scene stream loaded from its run and frozen; STIN+OIE+NL initialised from its run and trained
   further with the fusion head), each
   selected on a held-out part of its training set; evaluate on the split's validation side; and
   fuse the scene and STIN scores (the paper's "I3D, STIN+OIE+NL" ensemble row).
   With --full (`make table-full`) also the STRG rows: STRG over the scene run's trunk, its feature
   fusion with STIN+OIE+NL (STRG frozen) and the "STRG, STIN+OIE+NL" score ensemble; and the paper's
   detected-box setting (`actions.detected_boxes`): STIN+OIE+NL trained and evaluated on tracked boxes
   (detector trained on the compositional split's training videos), beside the ground-truth-box row.
4. Print the table (top-1/top-5, mean ± standard deviation over seeds) and write it to
   OUT/results.md and OUT/results.json.
Every training run is resumable: running the demo again continues where it stopped.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from configs import CONFIG_DIR
from common.cli import Parser, command
from common.files import output_folder, write_text
from common.jsonio import read_json, write_json

from .config import load_config
from .metrics import topk_accuracy
from .report import format_table
from .train import train

ROWS = [("stin", "STIN+OIE+NL (boxes)"), ("scene", "Scene CNN (pixels)"),
        ("fusion", "STIN+OIE+NL + Scene (feature fusion)"), ("ensemble", "Scene, STIN+OIE+NL (score fusion)")]
STRG_ROWS = [("strg", "STRG (regions of the scene CNN)"), ("fusion_strg", "STIN+OIE+NL + STRG (feature fusion)"),
             ("ensemble_strg", "STRG, STIN+OIE+NL (score fusion)")]
# --full: the paper's detected-box setting (actions.detected_boxes), on the compositional split only: the
# detector trains on its training videos, which the shuffled split's validation side contains
TRACKED_ROWS = [("stin_tracked", "STIN+OIE+NL (tracked boxes)")]
TRACKED_SPLITS = ("compositional",)


def make_data(data: Path, videos: int, seed: int, workers: int, size: tuple[int, int]) -> None:
    from datasets.synthetic.__main__ import main as synthetic_main
    from splits.__main__ import main as splits_main

    if not (data / "annotations.json").exists():
        code = synthetic_main(["--out", str(data), "--videos", str(videos), "--seed", str(seed),
                               "--workers", str(workers), "--width", str(size[0]), "--height", str(size[1])]
                              + ([] if sys.stderr.isatty() else ["--quiet"]))
        if code:
            raise SystemExit(code)
    comp, shuf = data / "splits" / "compositional", data / "splits" / "shuffled"
    if not (comp / "labels.json").exists():
        code = splits_main(["compositional", "--labels", str(data / "something-something-v2-labels.json"),
                            "--train", str(data / "something-something-v2-train.json"),
                            "--val", str(data / "something-something-v2-validation.json"),
                            "--boxes", str(data / "annotations.json"), "--out", str(comp), "--seed", str(seed)])
        if code:
            raise SystemExit(code)
    if not (shuf / "labels.json").exists():
        code = splits_main(["shuffled", "--from", str(comp), "--out", str(shuf), "--seed", str(seed)])
        if code:
            raise SystemExit(code)


def run(config: str, overrides: list[str]) -> dict:
    cfg = load_config(CONFIG_DIR / "synthetic" / config, overrides)
    if not (Path(cfg.out) / "results.json").exists() or not (Path(cfg.out) / "scores.npz").exists():
        code = train(cfg, resume=True)
        if code:
            raise SystemExit(code)
    return read_json(Path(cfg.out) / "results.json")


def score_fusion(run_a: Path, run_b: Path) -> dict:
    a, b = np.load(run_a / "scores.npz"), np.load(run_b / "scores.npz")
    ids = sorted(set(a["video_id"].tolist()) & set(b["video_id"].tolist()))
    pa = {v: i for i, v in enumerate(a["video_id"].tolist())}
    pb = {v: i for i, v in enumerate(b["video_id"].tolist())}
    scores = (a["scores"][[pa[v] for v in ids]] + b["scores"][[pb[v] for v in ids]]) / 2
    labels = a["label"][[pa[v] for v in ids]]
    return {"top1": topk_accuracy(scores, labels, 1), "top5": topk_accuracy(scores, labels, 5), "videos": len(ids)}


def demo(args) -> int:
    t0 = time.perf_counter()
    data, out = output_folder(args.data, "--data"), output_folder(args.out, "--out")
    make_data(data, args.videos, args.data_seed, args.workers, (args.width, args.height))
    print(f"data ready in {time.perf_counter() - t0:.0f}s")
    table: dict = {}
    front_ends: dict = {}
    for split in args.splits:
        if args.full and split in TRACKED_SPLITS:
            from .detected_boxes import front_end

            front_ends[split] = front_end(data, out, split)
        for seed in args.seeds:
            common = [f"split={data / 'splits' / split}", f"boxes={data / 'annotations.json'}",
                      f"videos={data / 'videos'}", f"frame_size=[{args.width},{args.height}]",
                      f"seed={seed}"] + list(args.overrides)
            runs = {name: out / split / f"seed{seed}" / name
                    for name in ("stin", "scene", "fusion", "strg", "fusion_strg")}
            res = {
                "stin": run("stin_oie_nl.yaml", common + [f"out={runs['stin']}"]),
                "scene": run("scene.yaml", common + [f"out={runs['scene']}"]),
            }
            res["fusion"] = run("fusion.yaml", common + [f"out={runs['fusion']}",
                                                         f"model_args.scene_checkpoint={runs['scene'] / 'best.pt'}",
                                                         f"model_args.stin_checkpoint={runs['stin'] / 'best.pt'}"])
            ensembles = {"ensemble": score_fusion(runs["scene"], runs["stin"])}
            if args.full:
                res["strg"] = run("strg.yaml", common + [f"out={runs['strg']}",
                                                         f"model_args.scene_checkpoint={runs['scene'] / 'best.pt'}"])
                res["fusion_strg"] = run("fusion_strg.yaml", common + [
                    f"out={runs['fusion_strg']}", f"model_args.scene_checkpoint={runs['strg'] / 'best.pt'}",
                    f"model_args.stin_checkpoint={runs['stin'] / 'best.pt'}"])
                ensembles["ensemble_strg"] = score_fusion(runs["strg"], runs["stin"])
            if split in front_ends:
                res["stin_tracked"] = run("stin_oie_nl.yaml", common + [f"boxes={front_ends[split]['tracks']}",
                                                                        f"out={runs['stin'].parent / 'stin_tracked'}"])
            for key, r in res.items():
                ev = r["evaluation"]
                table.setdefault(key, {}).setdefault(split, []).append((ev["top1"], ev["top5"]))
            for key, ens in ensembles.items():
                table.setdefault(key, {}).setdefault(split, []).append((ens["top1"], ens["top5"]))
            print(f"[{split} seed {seed}] " + ", ".join(
                f"{k} {100 * v[split][-1][0]:.1f}" for k, v in table.items()) + f"  ({time.perf_counter() - t0:.0f}s)")
    header = ["model"] + [f"{s} {m}" for s in args.splits for m in ("top-1", "top-5")]
    rows = []
    summary: dict = {"seeds": list(args.seeds), "rows": {}}
    for key, title in ROWS + (STRG_ROWS + TRACKED_ROWS if args.full else []):
        if key not in table:
            continue
        row = [title]
        for split in args.splits:
            if split not in table[key]:
                row += ["-", "-"]
                continue
            vals = np.array(table[key][split]) * 100
            mean, std = vals.mean(0), vals.std(0, ddof=1) if len(vals) > 1 else np.zeros(2)
            row += [f"{mean[0]:.1f} ± {std[0]:.1f}", f"{mean[1]:.1f} ± {std[1]:.1f}"]
            summary["rows"].setdefault(key, {})[split] = {"top1": vals[:, 0].tolist(), "top5": vals[:, 1].tolist()}
        rows.append(row)
    text = format_table(rows, header)
    note = (f"Synthetic Something-Else benchmark ({data}), validation side of each split; mean ± std over "
            f"seeds {', '.join(map(str, args.seeds))}; {time.perf_counter() - t0:.0f}s wall.")
    if front_ends:
        from .detected_boxes import summary as front_end_summary

        note += "".join(f"\n{split}: {front_end_summary(fe)}" for split, fe in front_ends.items())
        summary["front_end"] = {split: {"detector": fe["detector"], "mot": fe["mot"]} for split, fe in front_ends.items()}
    print("\n" + text + "\n" + note)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "results.md", text + "\n\n" + note + "\n")
    summary["wall_seconds"] = time.perf_counter() - t0
    write_json(out / "results.json", summary, indent=1)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m actions.demo", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/synthetic", help="synthetic data folder (generated if missing)")
    p.add_argument("--out", default="runs/demo", help="folder for the runs and the table")
    p.add_argument("--videos", type=int, default=1000, help="videos to generate (when the data is missing)")
    # 128x96 keeps decoding and the scene CNN inside the demo's CPU budget (15 minutes on 2 cores);
    # the generator's default is 320x240 for anything bigger
    p.add_argument("--width", type=int, default=128, help="frame width of the generated videos (default 128)")
    p.add_argument("--height", type=int, default=96, help="frame height of the generated videos (default 96)")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the data set and of the splits")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds (default 0 1 2)")
    p.add_argument("--splits", nargs="+", default=["compositional", "shuffled"])
    p.add_argument("--workers", type=int, default=2, help="processes for data generation")
    p.add_argument("--full", action="store_true", help="also train and report the STRG rows (make table-full)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for every run (e.g. epochs=2)")
    return p


main = command(build_parser, demo)


if __name__ == "__main__":
    sys.exit(main())
