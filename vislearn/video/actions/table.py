"""`vislearn video table`: the paper's table on the synthetic benchmark, end to end.

1. Generate the synthetic Something-Else-style data set (video.data.synthetic, with SSv2's noun-verb
   bias) unless it exists, and make with the split tool (splits) its compositional split, the
   shuffled control (same videos, random per-class split: the natural noun-verb co-occurrence on
   both sides) and a few-shot split (half the classes base, the others novel; k-shot sets in
   several draws).
2. For each split and seed: train STIN+OIE+NL (boxes), the scene stream (pixels; whatever
   configs/video/synthetic/scene.yaml says) and their feature fusion (scene stream loaded from its run
   and frozen, STIN+OIE+NL initialised from its run and trained further with the fusion head),
   each selected on a held-out part of its training set; evaluate on the split's validation
   side; fuse the scene and STIN scores (the paper's "I3D, STIN+OIE+NL" score-ensemble row), with equal
   weights and with weights fitted on out-of-fold scores (video.actions.table_crossfit: the runs' held-out
   slice, or with --folds K the K-fold cross-fitted runs, which also give the cross-fitted fusion head and
   the same head on STIN's fold models alone). On the compositional split, --folds also runs 2 compositional
   folds (the split made again on its training list): the ensemble weights come from them, and the scene
   stream enters the cross-fitted head only if its weight there is above 0.
3. Few-shot, as the paper's few-shot table: the same models trained on the base classes
   (`--fewshot-seeds`, default the first seed); then for each k-shot set and draw, the base model
   with a new output layer for the novel classes, only that layer fine-tuned (on the frozen
   model's penultimate features, vislearn video fewshot), evaluated on the novel classes' validation
   videos; the ensemble row fuses the fine-tuned STIN and scene scores of the same draw.
   With --full (`make table-full`) also the STRG rows: STRG over the scene run's trunk, its
   feature fusion with STIN+OIE+NL (STRG frozen) and the "STRG, STIN+OIE+NL" score ensemble; and the
   paper's detected-box setting (video.actions.detected_boxes): STIN+OIE+NL trained and evaluated on tracked
   boxes (detector trained on the compositional split's training videos, its object detections rescored with
   their tracks' context fitted on the same videos), beside the ground-truth row, and
   the score ensembles of the tracked-box STIN with the scene stream and with STRG (the paper measures its
   combinations with detected boxes).
4. Print the table (top-1/top-5, mean ± standard deviation over seeds; few-shot novel top-1, mean
   ± 95% confidence interval over the draws) and write OUT/results.md, OUT/results.json and
   OUT/compositional_gap.png (each model's shuffled vs compositional top-1).
Every training run is resumable: running the demo again continues where it stopped. A finished run is read
back only if it was trained on the same split, boxes and videos (else one line, and the run is kept).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from vislearn.common.cli import Parser, command, positive_int
from vislearn.common.demo import DemoOutcome, Measure
from vislearn.common.errors import UserError
from vislearn.common.files import atomic_path, output_folder, write_text
from vislearn.common.outputs import check_writable, claim_folder
from vislearn.common.jsonio import read_json, write_json
from vislearn.video.data.split_layout import split_files

from .config import TrainConfig
from .crossfit import COMPOSITIONAL_FOLDS, FOLD_RULES, FOLDS_DIR, fold_splits
from .detected_boxes import DETECTOR_FOLDS
from .table_crossfit import finished_folds, fitted_ensemble, fitted_fewshot, fold_average_ensemble, fused
from .fewshot import finetune_last_layers, mean_ci, stage_split
from .metrics import topk_accuracy
from vislearn.common.tables import format_table
from .report import report_at_end
from .jobs import Job, JobResult, run_jobs
from .table_rows import run_config
from .table_rows import (COMPOSITIONAL_ONLY_KEYS, CROSSFIT_ALONE, CROSSFIT_FUSION, CROSSFIT_KEYS, ENSEMBLES, FITTED,
                         JOINT_STREAMS, PIXEL_KEYS, ROW_ORDER, STREAMS, STRG_FOLD_AVERAGE, STRG_STREAMS, TRACKED,
                         TRACKED_ENSEMBLES, TRACKED_FITTED, TRACKED_SPLITS, Stream)
from .train import data_diff, train


class Clock:
    """Wall seconds per component of the demo (written to results.json)."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.parts: dict[str, float] = {}

    def add(self, name: str, since: float) -> None:
        self.parts[name] = self.parts.get(name, 0.0) + time.perf_counter() - since

    def total(self) -> float:
        return time.perf_counter() - self.t0


# --------------------------------------------------------------------------- data
def data_settings(args) -> dict:
    return {"videos": args.videos, "seed": args.data_seed, "width": args.width, "height": args.height,
            "noun_bias": args.noun_bias}


def check_data(data: Path, args) -> None:
    """An existing data folder must have been made with the asked settings."""
    if not (data / "annotations.json").exists():
        return
    want = data_settings(args)
    meta = data / "synthetic.json"
    have = read_json(meta).get("settings", {}) if meta.exists() else {}
    have = {k: have.get(k, "none" if k == "noun_bias" else None) for k in want}  # version 1.0 had no noun bias
    if have != want:
        diff = ", ".join(f"{k} {have[k]} (asked {want[k]})" for k in want if have[k] != want[k])
        raise UserError(f"{data}: holds a data set made with other settings: {diff}; "
                        f"choose another --data or remove that folder")


def demo_data(data: Path) -> None:
    """The quick demo's data set (this command's defaults) in `data`, made unless it is there: other systems'
    demos (MAE pre-training on hand-object frames) use its videos."""
    make_data(Path(data), build_parser().parse_args(["--data", str(data)]))


def make_data(data: Path, args) -> None:
    """Generate the data set and make its splits, each unless it is there."""
    from vislearn.video.data.synthetic.__main__ import main as synthetic_main
    from vislearn.video.splits.__main__ import main as splits_main

    check_data(data, args)
    if not (data / "annotations.json").exists():
        code = synthetic_main(["--out", str(data), "--videos", str(args.videos), "--seed", str(args.data_seed),
                               "--workers", str(args.workers), "--width", str(args.width), "--height",
                               str(args.height), "--noun-bias", args.noun_bias]
                              + ([] if sys.stderr.isatty() else ["--quiet"]))
        if code:
            raise SystemExit(code)
    meta = [f"--labels={data / 'something-something-v2-labels.json'}",
            f"--train={data / 'something-something-v2-train.json'}",
            f"--val={data / 'something-something-v2-validation.json'}"]
    comp, shuf, few = (data / "splits" / name for name in ("compositional", "shuffled", "fewshot"))
    steps = [(comp / "labels.json", ["compositional", *meta, "--boxes", str(data / "annotations.json"),
                                     "--out", str(comp), "--seed", str(args.data_seed)]),
             (shuf / "labels.json", ["shuffled", "--from", str(comp), "--out", str(shuf), "--seed", str(args.data_seed)])]
    if args.shots:
        n_classes = len(read_json(data / "something-something-v2-labels.json"))
        base = args.base_classes or n_classes // 2
        steps.append((few / "finetune_labels.json", ["fewshot", *meta, "--out", str(few), "--base-classes", str(base),
                                                     "--shots", *map(str, args.shots), "--draws", str(args.draws),
                                                     "--seed", str(args.data_seed)]))
    for done, argv in steps:
        if not done.exists():
            code = splits_main(argv)
            if code:
                raise SystemExit(code)


# --------------------------------------------------------------------------- training and scoring
def finished(cfg: TrainConfig) -> bool:
    """The run in cfg.out is complete. One that was trained on other data (say, boxes from an earlier tracker) is
    refused with one line, not reused: its scores would answer another question."""
    out = Path(cfg.out)
    done = ((out / "results.json").exists() and (out / "scores.npz").exists()
            and (cfg.holdout_fraction == 0 or (out / "holdout_scores.npz").exists()))
    if done and (out / "config.yaml").exists():
        import yaml

        diff = data_diff(yaml.safe_load((out / "config.yaml").read_text()) or {}, cfg)
        if diff:
            raise UserError(f"{out}: a finished run trained on other data ({'; '.join(diff)}); give the table "
                            f"another --out (the run is kept)")
    return done


def train_job(config: str, overrides: list[str]) -> dict:
    """One training run (a worker process's job), resumed where it stopped; returns its results."""
    cfg = run_config(config, overrides)
    if not finished(cfg):
        code = train(cfg, resume=True)
        if code:
            raise UserError(f"{cfg.out}: training stopped with exit code {code}; its log is beside it")
    return read_json(Path(cfg.out) / "results.json")


def finetune_job(config: str, overrides: list[str], folder: Path, shots: list[int], draws: int) -> dict:
    """The few-shot fine-tuning of one base run (a worker process's job): {k: [top-1 of each draw]}."""
    cfg = run_config(config, overrides)
    run = Path(cfg.out)
    shots_done = finetune_last_layers(run, cfg, folder, run, shots, draws, log=lambda *a: None)
    return {k: [d["top1"] for d in draws_] for k, draws_ in shots_done.items()}


def stream_jobs(streams: list[Stream], common: list[str], root: Path, prefix: str) -> list[Job]:
    """A training job per stream into root/<key>, each after the runs of the same seed it starts from."""
    runs = {s.key: root / s.key for s in streams}
    return [Job(f"{prefix}/{s.key}", train_job,
                (s.config, common + [f"out={runs[s.key]}"] + s.starts_from(runs)),
                after=tuple(f"{prefix}/{k}" for k in s.needs), log=root / f"{s.key}.log")
            for s in streams]


def fold_runs(crossfit: list[Stream], common: list[str], root: Path, prefix: str, split: Path, folds: int,
              seed: int, by: str) -> tuple[list[Job], list[tuple[str, list[list[str]]]], list[Path]]:
    """The fold runs of the streams `crossfit` (folds `by` combination, video or compositional) into
    root/<folds dir>/<key>/fold<i>: (jobs, (config, overrides per fold) per stream, fold split folders). A
    stream that starts from another (STRG from the scene stream) starts from that stream's run of the same
    fold, which never saw the fold's held-out videos either."""
    where = FOLDS_DIR[by]
    splits = fold_splits(split, root / where, folds, seed, by)
    jobs, per_stream = [], []
    for s in crossfit:
        fold_run = [{k: root / where / k / f"fold{i}" for k in (s.key, *s.needs)} for i in range(len(splits))]
        overrides = [common + [f"split={f}", f"out={fold_run[i][s.key]}"] + s.starts_from(fold_run[i])
                     for i, f in enumerate(splits)]
        per_stream.append((s.config, overrides))
        jobs += [Job(f"{prefix}/{where}/{s.key}/fold{i}", train_job, (s.config, o),
                     after=tuple(f"{prefix}/{where}/{k}/fold{i}" for k in s.needs),
                     log=root / where / f"{s.key}_fold{i}.log") for i, o in enumerate(overrides)]
    return jobs, per_stream, splits


def fold_jobs(streams: list[Stream], common: list[str], root: Path, prefix: str, split: Path, folds: int,
              seed: int, by: str, compositional: bool = False) -> list[Job]:
    """K-fold cross-fitting (folds `by` combination, video or compositional) of the streams in CROSSFIT_KEYS
    (video.actions.crossfit): a run per stream and fold into root/<folds dir>/<key>/fold<i>, and the
    cross-fitted feature fusion over them into root/<folds dir>/fusion.

    On a `compositional` split the 2 compositional folds are run as well (about half the videos each, so
    cheap): the score ensembles' weights come from them (`weights_folds`), and a stream whose weight there
    is 0 is left out of the fusion head (`crossfit_fusion_job`). STRG (`--full`) is run on these 2 folds only
    (COMPOSITIONAL_ONLY_KEYS: 2 half runs of about 9 minutes, against 5 x 15 for the K folds), so the STRG
    ensembles' weights come from them too."""
    crossfit = [s for s in streams if s.key in CROSSFIT_KEYS]
    if folds < 2 or not crossfit:
        return []
    from .table_crossfit import crossfit_fusion_job

    jobs, per_stream, splits = fold_runs(crossfit, common, root, prefix, split, folds, seed, by)
    select, compositional_only = None, set()  # the fusion head does not wait for the compositional-only runs
    if compositional and by != "compositional":
        more_streams = crossfit + [s for s in streams if s.key in COMPOSITIONAL_ONLY_KEYS]
        more, more_per_stream, _ = fold_runs(more_streams, common, root, prefix, split, COMPOSITIONAL_FOLDS, seed,
                                             "compositional")
        compositional_only = {j.name for j in more if j.name.split("/")[-2] in COMPOSITIONAL_ONLY_KEYS}
        short = too_small_to_train(more_per_stream)
        if short:  # a tiny data set: its halves would not fill one batch
            print(f"[{prefix}] compositional folds left out: {short}; the ensemble weights come from the "
                  f"{FOLDS_DIR[by]} folds and the fusion head is not gated", flush=True)
        else:
            jobs += more
            select = (str(root), [s.key for s in crossfit], FOLDS_DIR["compositional"])
    if {s.key for s in crossfit} >= set(CROSSFIT_KEYS):
        jobs.append(Job(f"{prefix}/{CROSSFIT_FUSION[0]}", crossfit_fusion_job,
                        (per_stream, [str(f) for f in splits], str(split), str(root / FOLDS_DIR[by] / "fusion"), seed,
                         select), after=tuple(j.name for j in jobs if j.name not in compositional_only),
                        log=root / FOLDS_DIR[by] / "fusion.log"))
    return jobs


def too_small_to_train(per_stream: list[tuple[str, list[list[str]]]]) -> str:
    """Why some fold run would have fewer training videos (after its held-out part) than one batch, or ""."""
    from vislearn.video.data.ssv2 import load_labels, load_records

    from .data import holdout_split

    for config, per_fold in per_stream:
        for overrides in per_fold:
            cfg = run_config(config, overrides)
            files = split_files(cfg.split)
            labels = load_labels(files.labels)
            kept, _ = holdout_split(load_records(files.train, labels), labels, cfg.holdout_fraction, cfg.seed)
            if len(kept) < cfg.batch_size:
                return f"{files.train} leaves {len(kept)} training videos, fewer than batch_size {cfg.batch_size}"
    return ""


def weights_folds(root: Path, split: str, args) -> str:
    """The folder of fold runs whose out-of-fold scores fit the score ensembles' weights: the compositional
    folds on the compositional split when they were run (they meet the noun shortcut failing, as its
    validation side does; `crossfit.compositional_folds`), else the `--fold-by` folds."""
    comp = FOLDS_DIR["compositional"]
    ran = split == "compositional" and args.folds >= 2 and finished_folds(root, CROSSFIT_KEYS, comp)
    return comp if ran else FOLDS_DIR[args.fold_by]


def with_overrides(job: Job, *more: str, after: tuple[str, ...] = ()) -> Job:
    """`job` with more `key=value` overrides (its args are (config, overrides, ...)) and more jobs before it."""
    args = (job.args[0], [*job.args[1], *more], *job.args[2:]) if more else job.args
    return Job(job.name, job.fn, args, (*after, *job.after), job.log)


def plan(jobs: list[Job], parallel: int, user_overrides: list[str]) -> list[Job]:
    """Order and settings for running side by side on a small machine.

    The first scene-stream job fills the frame-feature cache; the other pixel runs wait for it, so the frozen
    blocks run once per video instead of once per run side by side. It trains with two threads: the
    box-only runs beside it are short, and nothing else can run until it is done. With several jobs at once,
    every other job reads its data in its own process (`workers=0`: from the cache that is cheap, and a loader
    process per job would put four busy processes on two cores), unless the overrides set `workers`."""
    first = next((j.name for j in jobs if j.name.endswith("/scene")), None)
    own_loader = parallel > 1 and not any(o.startswith("workers=") for o in user_overrides)
    ordered = [j for j in jobs if j.name == first] + [j for j in jobs if j.name != first]
    out = []
    for j in ordered:
        if j.name == first:
            out.append(with_overrides(j, "threads=2"))
            continue
        reads_pixels = any(part in PIXEL_KEYS for part in j.name.split("/"))
        wait = (first,) if first and reads_pixels and first not in j.after else ()
        runs = j.fn in (train_job, finetune_job)  # jobs whose args are (config, overrides, ...)
        out.append(with_overrides(j, *(["workers=0"] if own_loader and runs else []), after=wait))
    return out


def fewshot_jobs(streams: list[Stream], data: Path, root: Path, common: list[str], args, seed: int) -> list[Job]:
    """Base training on the few-shot split's base classes, then last-layer fine-tuning per k and draw; with
    --folds, the base streams cross-fitted too (the learned ensemble's weights come from the base classes)."""
    folder = data / "splits" / "fewshot"
    files = {n: folder / n for n in ("base_labels.json", "base_training_set.json", "base_validation_set.json")}
    base_split = stage_split(root / "base_split", *files.values())
    common = common + [f"split={base_split}"]
    prefix = f"fewshot/{root.name}"
    jobs = stream_jobs(streams, common, root, prefix)
    for s, base in zip(streams, list(jobs)):
        overrides = base.args[1]
        jobs.append(Job(f"{base.name}/finetune", finetune_job, (s.config, overrides, folder, list(args.shots), args.draws),
                        after=(base.name,), log=root / f"{s.key}_finetune.log"))
    folds = [j for j in fold_jobs(streams, common, root, prefix, base_split, args.folds, seed, args.fold_by)
             if j.fn is train_job]  # the base classes' fold runs (their weights), no fused head
    return jobs + folds


def fewshot_rows(streams: list[Stream], ensembles: list[str], fitted: list[str], root: Path, done: dict, args
                 ) -> dict[str, dict]:
    """The few-shot columns of one seed from its finished jobs, the score ensembles of each draw added."""
    prefix = f"fewshot/{root.name}"
    out: dict[str, dict] = {s.key: {"base": done[f"{prefix}/{s.key}"].value["evaluation"]["top1"],
                                    "shots": done[f"{prefix}/{s.key}/finetune"].value} for s in streams}
    for key in ensembles:
        a, b = ENSEMBLES[key][1]
        out[key] = {"base": fused([root / a / "scores.npz", root / b / "scores.npz"])["top1"], "shots": {}}
        for k in args.shots:
            stages = sorted((root / a / "finetune" / f"{k}shot").glob("draw_*"))
            out[key]["shots"][k] = [fused([st / "scores.npz", root / b / "finetune" / f"{k}shot" / st.name /
                                           "scores.npz"])["top1"] for st in stages]
    for key in fitted:
        out[key] = fitted_fewshot(root, FITTED[key][1], list(args.shots), FOLDS_DIR[args.fold_by])
    return out


# --------------------------------------------------------------------------- the table
COMBINED = ("fusion", "fusion_joint", "fusion_crossfit", "ensemble", "ensemble_fit")
STRG_STIN = ("fusion_strg", "ensemble_strg", "ensemble_strg_fit", STRG_FOLD_AVERAGE[0])


def findings(table: dict, few: dict, splits: list[str], shots: list[int]) -> list[str]:
    """The paper's qualitative findings (and issue 31's goals), checked on the measured means."""
    lines = []
    mean = {k: {s: float(np.mean([v[0] for v in table[k][s]])) for s in splits if s in table[k]} for k in table}
    if {"compositional", "shuffled"} <= set(splits) and {"stin", "scene"} <= set(mean):
        gap = {k: mean[k]["shuffled"] - mean[k]["compositional"] for k in ("stin", "scene")}
        lines.append(f"- the scene stream loses more than STIN from shuffled to compositional: "
                     f"{'yes' if gap['scene'] > gap['stin'] else 'no'} "
                     f"(gap {100 * gap['scene']:.1f} vs {100 * gap['stin']:.1f} points)")
    comp = {k: v["compositional"] for k, v in mean.items() if "compositional" in v}
    if {"stin", "scene"} <= set(comp):
        best = max(comp["stin"], comp["scene"])
        for key in (k for k in COMBINED if k in comp):
            lines.append(f"- {key} at least the best single stream on the compositional split: "
                         f"{'yes' if comp[key] >= best else 'no'} ({100 * comp[key]:.1f} vs {100 * best:.1f})")
    if {"fusion_crossfit", CROSSFIT_ALONE[0]} <= set(comp):  # the fusion's gain over the fold average alone
        lines.append(f"- fusion_crossfit above the same head on STIN's fold models alone (what the scene stream "
                     f"adds): {'yes' if comp['fusion_crossfit'] > comp[CROSSFIT_ALONE[0]] else 'no'} "
                     f"({100 * comp['fusion_crossfit']:.1f} vs {100 * comp[CROSSFIT_ALONE[0]]:.1f})")
    if {"strg", "scene"} <= set(comp):
        lines.append(f"- STRG beats the scene stream on the compositional split: "
                     f"{'yes' if comp['strg'] > comp['scene'] else 'no'} "
                     f"({100 * comp['strg']:.1f} vs {100 * comp['scene']:.1f})")
    if any(k in comp for k in STRG_STIN):
        top = max(comp, key=comp.get)
        lines.append(f"- an STRG + STIN row is the best row on the compositional split: "
                     f"{'yes' if top in STRG_STIN else 'no'} (best {top} {100 * comp[top]:.1f})")
    if {"stin", "stin_tracked"} <= set(comp):
        kept = comp["stin_tracked"] / comp["stin"]
        lines.append(f"- STIN keeps at least 72% of its ground-truth-box top-1 on tracked boxes (the paper's "
                     f"37.2 / 51.4): {'yes' if kept >= 0.72 else 'no'} ({100 * kept:.0f}%)")
        best = max(comp["stin_tracked"], comp.get("scene", 0.0))
        for key in (k for k in TRACKED_ENSEMBLES + TRACKED_FITTED if k in comp):
            lines.append(f"- {key} at least the best single stream with tracked boxes: "
                         f"{'yes' if comp[key] >= best else 'no'} ({100 * comp[key]:.1f} vs {100 * best:.1f})")
    if few and "ensemble" in few:
        for k in shots:
            means = {key: float(np.mean(v["shots"][k])) for key, v in few.items() if v["shots"].get(k)}
            top = max(means, key=means.get)
            ens = {key: means[key] for key in means if key.startswith("ensemble")}
            lines.append(f"- an ensemble best on the novel classes at {k} shots: "
                         f"{'yes' if top.startswith('ensemble') else 'no'} (best ensemble {max(ens, key=ens.get)} "
                         f"{100 * max(ens.values()):.1f}, best row {top} {100 * means[top]:.1f})")
    return lines


def plot_gap(path: Path, rows: list[tuple[str, str]], table: dict) -> None:
    """Bars of each model's shuffled and compositional top-1 (mean, std over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(rows) + 2), 4.2))
    x = np.arange(len(rows))
    means = {}
    for i, (split, colour) in enumerate((("shuffled", "tab:blue"), ("compositional", "tab:orange"))):
        vals = [100 * np.array([v[0] for v in table[key][split]]) for key, _ in rows]
        means[split] = np.array([v.mean() for v in vals])
        ax.bar(x + (i - 0.5) * 0.38, means[split], 0.38, yerr=[v.std(ddof=1) if len(v) > 1 else 0 for v in vals],
               capsize=3, color=colour, label=split)
    for xi, a, b in zip(x, means["shuffled"], means["compositional"]):
        ax.text(xi, max(a, b) + 4, f"gap {a - b:+.1f}", ha="center", fontsize=8)
    ax.set_xticks(x, [title.replace(" (", "\n(") for _, title in rows], fontsize=7)
    ax.set_ylabel("top-1 (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Compositional gap: shuffled vs compositional top-1 (mean ± std over seeds)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


TABLE_FILES = ("demo.json", "results.md", "results.json", "compositional_gap.png", "report.html")


def demo(args) -> int:
    clock = Clock()
    if args.fewshot_seeds is None:
        args.fewshot_seeds = args.seeds[:1]
    if args.folds is None:
        args.folds = COMPOSITIONAL_FOLDS if args.fold_by == "compositional" else 5 if args.full else 0
    if args.folds < 0 or args.folds == 1:
        raise UserError(f"--folds must be 0 (no cross-fitting) or at least 2, got {args.folds}")
    if args.fold_by == "compositional" and args.folds != COMPOSITIONAL_FOLDS:
        raise UserError(f"--fold-by compositional makes {COMPOSITIONAL_FOLDS} folds (the two sides of a compositional "
                        f"split of the training list), got --folds {args.folds}")
    data, out = output_folder(args.data, "--data"), output_folder(args.out, "--out")
    if args.draws < 1 or args.videos < 1:
        raise UserError("--draws and --videos must be at least 1")
    if not (data / "annotations.json").exists():
        check_writable(data, "--data")  # it will be generated there
    # the table's own files; a table folder of an earlier version (demo.json, no manifest) is taken as it is.
    # Each run folder below is claimed and locked by its own training.
    claim_folder(out, TABLE_FILES, kind="video table", overwrite=args.overwrite,
                 adopt=(out / "demo.json").is_file())
    fingerprint = {**data_settings(args), "data": str(data.resolve()), "shots": list(args.shots),
                   "draws": args.draws, "base_classes": args.base_classes}
    check_data(data, args)
    if (out / "demo.json").exists() and read_json(out / "demo.json") != fingerprint:
        raise UserError(f"{out}: holds the runs of a demo with other data or few-shot settings "
                        f"({out / 'demo.json'}); choose another --out or remove it")
    if not (out / "demo.json").exists() and any((out / split).exists() for split in ("compositional", "shuffled")):
        raise UserError(f"{out}: holds runs of an older demo (no demo.json says on which data); "
                        f"choose another --out or remove it")
    t = time.perf_counter()
    make_data(data, args)
    clock.add("data and splits", t)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "demo.json", fingerprint, indent=1)
    print(f"data ready in {clock.total():.0f}s")
    streams = STREAMS + (JOINT_STREAMS + STRG_STREAMS if args.full else [])
    ensembles = ["ensemble"] + (["ensemble_strg"] if args.full else [])
    fitted = ["ensemble_fit"] + (["ensemble_strg_fit"] if args.full else [])
    base = [f"boxes={data / 'annotations.json'}", f"videos={data / 'videos'}",
            f"frame_size=[{args.width},{args.height}]"]
    front_ends: dict = {}
    if args.full and not args.no_tracked:
        from .detected_boxes import front_end

        for split in (sp for sp in args.splits if sp in TRACKED_SPLITS):
            t = time.perf_counter()
            front_ends[split] = front_end(data, out, split, detector_folds=args.detector_folds)
            clock.add(f"{split}: detector and tracks", t)
    jobs: list[Job] = []
    for split in args.splits:
        for seed in args.seeds:
            common = base + [f"split={data / 'splits' / split}", f"seed={seed}"] + list(args.overrides)
            root = out / split / f"seed{seed}"
            jobs += stream_jobs(streams, common, root, f"{split}/seed{seed}")
            jobs += fold_jobs(streams, common, root, f"{split}/seed{seed}", data / "splits" / split, args.folds, seed,
                              args.fold_by, compositional=split == "compositional")
            if split in front_ends:
                also = [f"train_boxes_also={data / 'annotations.json'}"] if args.tracked_training == "both" else []
                jobs += stream_jobs([TRACKED], common + [f"boxes={front_ends[split]['tracks']}"] + also, root,
                                    f"{split}/seed{seed}")
    for seed in (args.fewshot_seeds if args.shots else []):
        jobs += fewshot_jobs(streams, data, out / "fewshot" / f"seed{seed}", base + [f"seed={seed}"] + list(args.overrides),
                             args, seed)

    def progress(r: JobResult) -> None:
        clock.parts[r.name] = r.seconds
        top1 = r.value.get("evaluation", {}).get("top1") if isinstance(r.value, dict) else None
        what = f"top-1 {100 * top1:.1f}" if top1 is not None else "done"
        print(f"[{r.name}] {what} ({r.seconds:.0f}s; {clock.total():.0f}s in all; log {r.log})", flush=True)

    done = run_jobs(plan(jobs, args.jobs, list(args.overrides)), args.jobs, progress)
    table: dict = {}
    fits: dict = {}  # the fitted ensembles' weights per row, split and seed (results.json)
    for split in args.splits:
        for seed in args.seeds:
            root = out / split / f"seed{seed}"
            keys_here = ([s.key for s in streams] + ([TRACKED.key] if split in front_ends else [])
                         + ([CROSSFIT_FUSION[0]] if f"{split}/seed{seed}/{CROSSFIT_FUSION[0]}" in done else []))
            for key in keys_here:
                r = done[f"{split}/seed{seed}/{key}"].value["evaluation"]
                table.setdefault(key, {}).setdefault(split, []).append((r["top1"], r["top5"]))
                if key == CROSSFIT_FUSION[0]:  # its job also fits the head on STIN's fold models alone
                    r = done[f"{split}/seed{seed}/{key}"].value["first_stream_alone"]["evaluation"]
                    table.setdefault(CROSSFIT_ALONE[0], {}).setdefault(split, []).append((r["top1"], r["top5"]))
            tracked = split in front_ends
            for key in ensembles + (TRACKED_ENSEMBLES if tracked else []):
                ens = fused([root / name / "scores.npz" for name in ENSEMBLES[key][1]])
                table.setdefault(key, {}).setdefault(split, []).append((ens["top1"], ens["top5"]))
            for key in fitted + (TRACKED_FITTED if tracked else []):  # tracked rows come with --full: STRG is there
                ens = fitted_ensemble(root, FITTED[key][1], weights_folds(root, split, args))
                table.setdefault(key, {}).setdefault(split, []).append((ens["top1"], ens["top5"]))
                fits.setdefault(key, {}).setdefault(split, []).append({"seed": seed, **ens["fit"]})
            if args.full and f"{split}/seed{seed}/{CROSSFIT_FUSION[0]}" in done:  # STRG with STIN's fold models
                key = STRG_FOLD_AVERAGE[0]
                ens = fold_average_ensemble(root, root / FOLDS_DIR[args.fold_by] / "fusion", "strg",
                                            weights_folds(root, split, args))
                table.setdefault(key, {}).setdefault(split, []).append((ens["top1"], ens["top5"]))
                fits.setdefault(key, {}).setdefault(split, []).append({"seed": seed, **ens["fit"]})
    few: dict = {}
    for seed in (args.fewshot_seeds if args.shots else []):
        part = fewshot_rows(streams, ensembles, fitted, out / "fewshot" / f"seed{seed}", done, args)
        for key, v in part.items():
            if "fit" in v:
                fits.setdefault(key, {}).setdefault("fewshot", []).append({"seed": seed, **v["fit"]})
            few.setdefault(key, {"base": [], "shots": {k: [] for k in args.shots}})
            few[key]["base"].append(v["base"])
            for k in args.shots:
                few[key]["shots"][k] += v["shots"].get(k, [])

    keys = [k for k in ROW_ORDER if k in table or k in few]
    titles = ({s.key: s.title for s in STREAMS + JOINT_STREAMS + STRG_STREAMS + [TRACKED]}
              | {k: v[0] for k, v in {**ENSEMBLES, **FITTED}.items()} | dict([CROSSFIT_FUSION, CROSSFIT_ALONE, STRG_FOLD_AVERAGE]))
    header = ["model"] + [f"{s} {m}" for s in args.splits for m in ("top-1", "top-5")]
    if args.shots:
        header += ["few-shot base top-1"] + [f"novel {k}-shot top-1" for k in args.shots]
    rows, summary = [], {"seeds": list(args.seeds), "fewshot_seeds": list(args.fewshot_seeds), "draws": args.draws,
                         "data": fingerprint, "rows": {}}
    for key in keys:
        row, entry = [titles[key]], {"title": titles[key]}
        for split in args.splits:
            if split not in table.get(key, {}):
                row += ["-", "-"]
                continue
            vals = np.array(table[key][split]) * 100
            mean, std = vals.mean(0), vals.std(0, ddof=1) if len(vals) > 1 else np.zeros(2)
            spread = len(vals) > 1  # one seed has no spread to show
            row += [f"{mean[i]:.1f}" + (f" ± {std[i]:.1f}" if spread else "") for i in (0, 1)]
            entry[split] = {"top1": vals[:, 0].tolist(), "top5": vals[:, 1].tolist(),
                            "top1_mean": float(mean[0]), "top1_std": float(std[0]),
                            "top5_mean": float(mean[1]), "top5_std": float(std[1])}
        if args.shots:
            if key in few:
                b = 100 * np.array(few[key]["base"])
                row.append(f"{b.mean():.1f}" + (f" ± {b.std(ddof=1):.1f}" if len(b) > 1 else ""))
                entry["fewshot"] = {"base_top1": b.tolist(), "shots": {}}
                for k in args.shots:
                    m, ci = mean_ci(few[key]["shots"][k])
                    row.append(f"{100 * m:.1f} ± {100 * ci:.1f}")
                    entry["fewshot"]["shots"][str(k)] = {"top1": [100 * v for v in few[key]["shots"][k]],
                                                         "top1_mean": 100 * m, "top1_ci95": 100 * ci}
            else:
                row += ["-"] * (1 + len(args.shots))
        rows.append(row)
        summary["rows"][key] = entry
    text = format_table(rows, header)
    from vislearn.video.splits.stats import noun_bias
    from vislearn.video.data.ssv2 import load_records

    bias = noun_bias(load_records(data / "something-something-v2-train.json")
                     + load_records(data / "something-something-v2-validation.json"))
    summary["noun_bias"] = bias
    if "accuracy_gain" in bias:
        measured = (f"the noun's top template is right {100 * bias['noun_top_template_accuracy']:.1f}% of the time, "
                    f"{100 * bias['noun_top_template_accuracy_shuffled']:.1f}% with nouns shuffled; mutual information "
                    f"{100 * bias['mutual_information_share']:.1f}% of the template entropy beyond chance")
    else:
        measured = "too few videos per noun to measure it"
    lines = [f"Synthetic Something-Else benchmark ({data}: {args.videos} videos, noun bias {args.noun_bias}: "
             f"{measured}). Top-1/top-5 (%) on the validation side of each split, mean ± std over seeds "
             f"{', '.join(map(str, args.seeds))}."]
    if args.shots:
        n_draws = len(few.get('stin', {}).get('shots', {}).get(args.shots[0], []))
        lines.append(f"Few-shot: base classes trained with seed(s) {', '.join(map(str, args.fewshot_seeds))} "
                     f"(base top-1 on the base classes' validation videos); novel top-1 after training only a new "
                     f"last layer (to convergence, on the frozen base model's features) on k videos per novel "
                     f"class, mean ± 95% CI over {n_draws} (seed, draw) pairs.")
    lines.append(f"{clock.total():.0f}s wall.")
    if front_ends:
        from .detected_boxes import summary as front_end_summary

        trained_on = ("tracks and ground-truth boxes" if args.tracked_training == "both"
                      else "tracks only (the paper's protocol)")
        lines += [f"{split}: {front_end_summary(fe)} The tracked-box row's box model trains on each training "
                  f"video's {trained_on}." for split, fe in front_ends.items()]
        summary["front_end"] = {split: {**{k: fe[k] for k in ("detector", "context", "mot", "mot_train", "detector_folds")},
                                        "tracked_training": args.tracked_training}
                                for split, fe in front_ends.items()}
    checks = findings(table, few, list(args.splits), list(args.shots))
    if checks:
        lines += ["", "The paper's qualitative findings on these means:"] + checks
    note = "\n".join(lines)
    print("\n" + text + "\n\n" + note)
    write_text(out / "results.md", text + "\n\n" + note + "\n")
    if {"compositional", "shuffled"} <= set(args.splits):
        plot_gap(out / "compositional_gap.png", [(k, titles[k]) for k in keys
                                                 if {"compositional", "shuffled"} <= set(table.get(k, {}))], table)
    summary["findings"] = checks
    summary["fitted"] = fits
    summary["wall_seconds"] = clock.total()
    summary["seconds"] = {k: round(v, 1) for k, v in clock.parts.items()}
    summary["args"] = vars(args)
    summary["ensembles"] = {k: list(ENSEMBLES[k][1])  # for the report
                            for k in ensembles + (TRACKED_ENSEMBLES if front_ends else [])}
    write_json(out / "results.json", summary, indent=1)
    print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in clock.parts.items()))
    report_at_end(out)
    return 0


def quick_demo(data: Path, out: Path, jobs: int = 2, extra: list[str] = ()) -> DemoOutcome:
    """`make demo`'s Something-Else row: the table with one seed (compositional and shuffled columns,
    few-shot columns), the headline figures beside chance and the paper's qualitative findings.
    `extra`: more arguments of `vislearn video table` (later ones win), e.g. a smaller data set."""
    code = main(["--data", str(data), "--out", str(out), "--seeds", "0", "--jobs", str(jobs), *extra])
    if code:
        raise SystemExit(code)
    summary = read_json(out / "results.json")
    rows, n_classes = summary["rows"], len(read_json(data / "something-something-v2-labels.json"))
    chance = f"chance {100 / n_classes:.1f}"
    measures = [Measure(f"{rows[key]['title']}: compositional top-1 (%)",
                        f"{rows[key]['compositional']['top1_mean']:.1f}", chance)
                for key in ("stin", "scene", "fusion", "ensemble") if "compositional" in rows.get(key, {})]
    if {"stin", "scene"} <= set(rows):
        gap = {k: rows[k]["shuffled"]["top1_mean"] - rows[k]["compositional"]["top1_mean"] for k in ("stin", "scene")}
        measures.append(Measure("shuffled minus compositional top-1, scene vs STIN (points)",
                                f"{gap['scene']:.1f} vs {gap['stin']:.1f}", "paper: the scene stream loses more"))
    shots = summary["args"]["shots"]
    if shots and "fewshot" in rows.get("ensemble", {}):
        k = str(shots[0])
        novel = n_classes - (summary["args"]["base_classes"] or n_classes // 2)
        measures.append(Measure(f"few-shot {k}-shot novel top-1, score ensemble (%)",
                                f"{rows['ensemble']['fewshot']['shots'][k]['top1_mean']:.1f}",
                                f"chance {100 / novel:.1f}"))
    return DemoOutcome(measures, out / "report.html", summary.get("findings", []))


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn video table", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/video/synthetic", help="synthetic data folder (generated if missing)")
    p.add_argument("--out", default="runs/table", help="folder for the runs and the table")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files of the table's names in --out that vislearn did not write")
    p.add_argument("--videos", type=int, default=1000, help="videos to generate (when the data is missing)")
    # 128x96 keeps decoding and the scene CNN inside the demo's CPU budget (15 minutes on 2 cores);
    # the generator's default is 320x240 for anything bigger
    p.add_argument("--width", type=int, default=128, help="frame width of the generated videos (default 128)")
    p.add_argument("--height", type=int, default=96, help="frame height of the generated videos (default 96)")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the data set and of the splits")
    p.add_argument("--noun-bias", choices=["ssv2", "none"], default="ssv2",
                   help="nouns drawn with SSv2's noun-verb bias (default) or independently of the verb")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds (default 0 1 2)")
    p.add_argument("--splits", nargs="+", default=["compositional", "shuffled"], choices=["compositional", "shuffled"])
    p.add_argument("--shots", nargs="*", type=int, default=[5, 10],
                   help="few-shot k values (default 5 10; none: no few-shot columns)")
    p.add_argument("--draws", type=int, default=5, help="draws of each k-shot set (default 5)")
    p.add_argument("--base-classes", type=int, default=0, help="few-shot base classes (default: half the classes)")
    p.add_argument("--fewshot-seeds", nargs="+", type=int, default=None,
                   help="training seeds of the few-shot base models (default: the first of --seeds)")
    p.add_argument("--workers", type=positive_int, default=2, help="processes for data generation (default 2)")
    p.add_argument("--jobs", type=positive_int, default=2,
                   help="trainings at once, each a process with one thread (default 2: one per core)")
    p.add_argument("--full", action="store_true",
                   help="also the joint fine-tuning, cross-fitted and STRG rows and the tracked-box row (make table-full)")
    p.add_argument("--folds", type=int, default=None,
                   help="K-fold cross-fitting of STIN and the scene stream for the learned combinations (default 5 "
                        "with --full, else 0: the fitted ensemble then uses the runs' held-out slice)")
    p.add_argument("--fold-by", choices=FOLD_RULES, default="combination",
                   help="what a fold keeps together: whole action-object combinations (default; out-of-fold scores "
                        "on new combinations), single videos, or the two sides of a compositional split of the "
                        "training list (2 folds: a noun's verb group flips between a fold's training and "
                        "scored videos, as between training and validation)")
    p.add_argument("--no-tracked", action="store_true",
                   help="with --full, leave out the tracked-box row (its detectors and tracks take about 30 minutes)")
    p.add_argument("--detector-folds", type=int, default=DETECTOR_FOLDS, choices=[0, *range(2, 11)], metavar="K",
                   help=f"with --full, the tracked-box row's track-context rescoring is fitted on out-of-fold "
                        f"detections of the training videos, from K detectors each trained on the other folds "
                        f"(default {DETECTOR_FOLDS}, about 16 minutes; 0: on the detections of the detector that "
                        f"trained on them)")
    p.add_argument("--tracked-training", choices=("both", "tracks"), default="both",
                   help="with --full, what the tracked-box row's box model trains on: each training video with its "
                        "tracks and with its ground-truth boxes (default both), or its tracks only (the paper's "
                        "protocol); it is evaluated on tracks either way")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for every run (e.g. epochs=2)")
    return p


main = command(build_parser, demo)


if __name__ == "__main__":
    sys.exit(main())
