"""`vislearn pretrain compare`: what MAE pre-training on hand-object frames buys on the object image set, over
seeds, against a random encoder, the same ViT trained from scratch, and the ImageNet MobileNetV2.

Per seed s (each step resumable; a finished step is read back, not run again):
1. MAE pre-training of the backbone on `--data` (frames of videos), seed s -> `OUT/mae-s{s}/encoder.pth`;
2. linear probes (`probe.py`: C chosen on val, test error reported) of that encoder and of the untrained
   backbone (seeded s); the ImageNet MobileNetV2 probe once (it has no seed);
3. fine-tuning (`vislearn.backbones.train.fit`, the whole network, AdamW, cosine) from the MAE encoder and from
   scratch, same recipe and seed -> final-epoch test error (no selection on test).
Writes OUT/results.json and OUT/results.md (mean ± std over seeds).
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from vislearn.common.cli import Parser, command
from vislearn.common.files import write_text
from vislearn.common.jsonio import read_json, write_json
from vislearn.common.outputs import claim_folder

from .probe import MOBILENET, load_encoder, load_splits, probe
from .train_mae import MAEConfig, pretrain


def cached(path: Path, work):
    """`work()`'s JSON result, kept in `path` (a finished step of a resumed comparison is not run again)."""
    if path.exists():
        return read_json(path)
    result = work()
    write_json(path, result, indent=1)
    return result


def finetune(out: Path, backbone: str, weights: str | None, args, seed: int) -> dict:
    from vislearn.backbones.train import TrainConfig, fit  # noqa: PLC0415

    cfg = TrainConfig(backbone=backbone, data=args.image_set, out=str(out), img_size=args.img_size,
                      optimizer="adamw", lr=args.ft_lr, wd=args.ft_wd, epochs=args.ft_epochs,
                      warmup_epochs=min(2.0, args.ft_epochs / 5), batch_size=64, seed=seed,
                      weights=weights, threads=args.threads)
    return fit(cfg, resume=True, log=lambda *a: None, progress=False)


def mean_std(values: list[float]) -> str:
    m = 100 * statistics.mean(values)
    s = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{m:.1f} ± {s:.1f}"


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    claim = claim_folder(out, kind="pretrain compare", lock=True, overwrite=args.overwrite)
    claim.check(["results.md", "results.json"], args.overwrite, inputs=[args.data])
    splits = load_splits(args.image_set, args.img_size)
    rows: dict[str, list[float]] = {}
    per_seed = []
    mobilenet = cached(out / "probe-mobilenet.json", lambda: probe(load_encoder(MOBILENET), splits))
    for seed in args.seeds:
        cfg = MAEConfig(data=args.data, out=str(out / f"mae-s{seed}"), backbone=args.backbone, img_size=args.img_size,
                        epochs=args.mae_epochs, steps_per_epoch=args.mae_steps, blr=args.blr, seed=seed,
                        max_frames=args.max_frames, threads=args.threads)
        mae = pretrain(cfg, resume=True, log=print)
        encoder = str(Path(cfg.out) / "encoder.pth")
        got = {
            "mae probe": cached(out / f"probe-mae-s{seed}.json", lambda: probe(load_encoder(encoder), splits)),
            "random probe": cached(out / f"probe-random-s{seed}.json", lambda: probe(
                load_encoder(f"random:{args.backbone}", args.img_size, seed), splits)),
        }
        if args.ft_epochs:
            got["mae fine-tuned"] = finetune(out / f"ft-mae-s{seed}", args.backbone, encoder, args, seed)
            got["scratch"] = finetune(out / f"ft-scratch-s{seed}", args.backbone, None, args, seed)
        errors = {k: (v["test_error"] if "test_error" in v else v["final"]["test_error"]) for k, v in got.items()}
        per_seed.append({"seed": seed, "mae_loss": [mae["first_loss"], mae["final_loss"]], **errors})
        for k, v in errors.items():
            rows.setdefault(k, []).append(v)
        print(f"seed {seed}: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in errors.items()), flush=True)
    n_classes = len(splits["train"].classes)
    lines = [f"Test error (%) on `{args.image_set}` ({n_classes} classes, {args.img_size} px), mean ± std over seeds "
             f"{', '.join(map(str, args.seeds))}; chance {100 * (1 - 1 / n_classes):.1f}.", "",
             "| encoder | evaluation | test error (%) |", "|---|---|---:|"]
    names = {"mae probe": (f"MAE {args.backbone}", "linear probe"),
             "random probe": (f"random {args.backbone}", "linear probe"),
             "mae fine-tuned": (f"MAE {args.backbone}", f"fine-tuned {args.ft_epochs} epochs"),
             "scratch": (f"{args.backbone} from scratch", f"trained {args.ft_epochs} epochs")}
    for key, values in rows.items():
        enc, how = names[key]
        lines.append(f"| {enc} | {how} | {mean_std(values)} |")
    lines.append(f"| ImageNet MobileNetV2 ({MOBILENET}) | linear probe | {100 * mobilenet['test_error']:.1f} |")
    text = "\n".join(lines) + "\n"
    write_text(out / "results.md", text)
    write_json(out / "results.json", {"args": {k: v for k, v in vars(args).items()}, "per_seed": per_seed,
                                      "mobilenet_probe": mobilenet}, indent=1)
    print(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn pretrain compare", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data/video/synthetic/videos", help="pre-training frames (videos, images)")
    p.add_argument("--image-set", default="objects", help="evaluation image set (default objects)")
    p.add_argument("--out", required=True, help="folder of the runs, the probes and results.md / results.json")
    p.add_argument("--backbone", default="vit_p_tiny", help="ViT encoder by name (default vit_p_tiny)")
    p.add_argument("--img-size", type=int, default=64, help="pre-training and image set size (default 64)")
    p.add_argument("--seeds", type=lambda t: [int(x) for x in t.split(",")], default=[0, 1, 2],
                   help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--mae-epochs", type=int, default=20, help="MAE epochs (default 20)")
    p.add_argument("--mae-steps", type=int, default=100, help="MAE steps of 64 frames per epoch")
    p.add_argument("--blr", type=float, default=4e-3, help="MAE base lr: lr = blr x 64 / 256 (default 4e-3)")
    p.add_argument("--max-frames", type=int, default=8000, help="MAE frame bank size (default 8000)")
    p.add_argument("--ft-epochs", type=int, default=10, help="fine-tuning / scratch epochs (0: probes only)")
    p.add_argument("--ft-lr", type=float, default=1e-3, help="fine-tuning / scratch AdamW lr (default 1e-3)")
    p.add_argument("--ft-wd", type=float, default=0.05, help="fine-tuning / scratch weight decay (default 0.05)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--overwrite", action="store_true", help="replace files in --out that vislearn did not write")
    return p


main = command(build_parser, run)
