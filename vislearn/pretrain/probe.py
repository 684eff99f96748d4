"""Evaluating an encoder on an image set (`vislearn.backbones.imagesets`): a linear probe, and fine-tuning.

**Linear probe.** The frozen encoder's features of every image (no augmentation), standardised with the train
split's mean and variance (MAE's probe puts a BatchNorm without affine before its linear layer: the same thing),
then a multinomial logistic regression (scikit-learn, L-BFGS). Its inverse regularisation C is chosen on the
**val** split from `CS`; the **test** error at that C is the number reported. Deterministic for fixed features,
and seconds on a CPU, where SGD over epochs would take minutes.

**Encoders compared** (`--encoder`): a run's `encoder.pth` (MAE or any vislearn encoder checkpoint, which says its
backbone, arguments and normalisation), `random:BACKBONE` (the same architecture, untrained, seeded), and
`mobilenet_v2_imagenet` (torchvision's ImageNet MobileNetV2, the verified local file; pooled 1280-d features at
`MOBILENET_SIZE` px). Fine-tuning is `vislearn pretrain compare` (`compare.py`), with
`vislearn.backbones.train.fit`.
"""
from __future__ import annotations

import argparse
import html
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vislearn.backbones import create_backbone
from vislearn.backbones.encoders import IMAGENET_MEAN, IMAGENET_STD, load_encoder_checkpoint
from vislearn.backbones.imagesets import LabelledImages, load_images
from vislearn.common.cli import Parser, command
from vislearn.common.jsonio import write_json
from vislearn.common.files import write_text
from vislearn.common.outputs import claim_file, claim_folder

from .contrastive.tasks import TASKS, task_splits
from .frames import normalise

CS = (0.01, 0.1, 1.0, 10.0)
MOBILENET = "mobilenet_v2_imagenet"
MOBILENET_SIZE = 128
REPORT_FILES = ("results.json", "index.html")


@dataclass
class Encoder:
    """A frozen encoder ready to embed images: the module, its input size and normalisation, and a name."""
    module: nn.Module
    img_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str
    pool: str = "token"  # ViTs: "token" (the class token, the backbone's own output) or "avg" (mean patch token)


class _MobileNetFeatures(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.features = net.features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))


def load_encoder(spec: str, img_size: int = 64, seed: int = 0, pool: str = "token") -> Encoder:
    """`spec`: an encoder checkpoint file, `random:BACKBONE`, `mobilenet_v2_imagenet` (see the module), or RUN@SPACE
    (an embedding space of a moco / resim / looc run: `contrastive/spaces.py`)."""
    if spec == MOBILENET:
        net = create_backbone("mobilenet_v2", pretrained=MOBILENET)
        return Encoder(_MobileNetFeatures(net).eval(), MOBILENET_SIZE, IMAGENET_MEAN, IMAGENET_STD, spec)
    if "@" in spec:  # a contrastive run's embedding space (`contrastive/spaces.py`)
        from .contrastive.spaces import space_encoder  # noqa: PLC0415

        module, size, _ = space_encoder(spec)
        return Encoder(module, size, IMAGENET_MEAN, IMAGENET_STD, spec)
    if spec.startswith("random:"):
        torch.manual_seed(seed)
        name = spec.split(":", 1)[1]
        module = create_backbone(name, img_size=img_size, num_classes=0)
        return Encoder(module.eval(), img_size, IMAGENET_MEAN, IMAGENET_STD, spec, pool)
    module, info = load_encoder_checkpoint(spec, num_classes=0)
    return Encoder(module.eval(), info.input_size, info.mean, info.std, os.fspath(spec), pool)


@torch.no_grad()
def embed(encoder: Encoder, images: torch.Tensor, batch: int = 256) -> np.ndarray:
    """Features [N, D] of uint8 images [N,3,H,W] (resized to the encoder's input size)."""
    out = []
    for i in range(0, len(images), batch):
        x = normalise(images[i:i + batch], encoder.mean, encoder.std)
        if x.shape[-1] != encoder.img_size:
            x = nn.functional.interpolate(x, size=(encoder.img_size, encoder.img_size), mode="bilinear",
                                          align_corners=False, antialias=True)
        m = encoder.module
        if encoder.pool == "avg" and hasattr(m, "forward_features"):
            tokens = m.forward_features(x)
            out.append(tokens[:, m.num_prefix_tokens:].mean(dim=1))
        else:
            out.append(m(x))
    return torch.cat(out).numpy().astype(np.float64)


def linear_probe(feats: dict[str, np.ndarray], labels: dict[str, np.ndarray], cs=CS, seed: int = 0) -> dict:
    """Logistic regression on standardised features; C chosen on val; errors on every split at that C."""
    from sklearn.exceptions import ConvergenceWarning  # noqa: PLC0415
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
    from sklearn.preprocessing import StandardScaler  # noqa: PLC0415
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    scaler = StandardScaler().fit(feats["train"])
    z = {k: scaler.transform(v) for k, v in feats.items()}
    best = None
    # one BLAS thread: on 2 shared cores the threaded L-BFGS is ~20x slower (measured: 1.36 s vs 0.07 s on
    # 6000 x 192 features); an iteration cap that is reached still gives a usable probe, so it is not a warning
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for c in cs:
            clf = LogisticRegression(C=c, max_iter=500, random_state=seed).fit(z["train"], labels["train"])
            val_error = 1.0 - clf.score(z["val"], labels["val"])
            if best is None or val_error < best[0]:
                best = (val_error, c, clf)
    val_error, c, clf = best
    result = {"C": c, "val_error": val_error, "train_error": 1.0 - clf.score(z["train"], labels["train"])}
    if "test" in z:
        result["test_error"] = 1.0 - clf.score(z["test"], labels["test"])
    return result


def probe(encoder: Encoder, splits: dict[str, LabelledImages], seed: int = 0) -> dict:
    feats = {k: embed(encoder, v.images) for k, v in splits.items()}
    labels = {k: v.labels.numpy() for k, v in splits.items()}
    return {"encoder": encoder.name, "pool": encoder.pool, "features": int(feats["train"].shape[1]),
            **linear_probe(feats, labels, seed=seed)}


def load_splits(data: str, img_size: int | None, seed: int = 0) -> dict[str, LabelledImages]:
    return {s: load_images(data, s, size=img_size, seed=seed) for s in ("train", "val", "test")}


# ----------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn pretrain probe", description="Linear probe of encoders on an image set (C chosen on "
               "val, test error reported); optionally fine-tuning. Prints one line per encoder.")
    p.add_argument("--encoder", action="append", required=True,
                   help=f"RUN/encoder.pth, random:BACKBONE or {MOBILENET} (repeat to compare)")
    p.add_argument("--data", default="objects", help="objects | digits | a folder | an .npz (default objects)")
    p.add_argument("--task", action="append", choices=TASKS, help="instead of --data, a task made from the object "
                   "set (repeat to compare): objects, colours (6 classes that differ only in colour), rotation "
                   "(4-way); see vislearn/pretrain/contrastive/tasks.py")
    p.add_argument("--report", help="a folder for results.json and index.html, the comparison table (encoders x "
                   "tasks)")
    p.add_argument("--img-size", type=int, default=64, help="image set size (default 64)")
    p.add_argument("--pool", choices=("token", "avg"), default="token", help="ViT feature: class token or mean")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="results JSON file")
    p.add_argument("--overwrite", action="store_true", help="replace --out if vislearn did not write it")
    return p


def run(args: argparse.Namespace) -> int:
    inputs = [e.split("@")[0] for e in args.encoder if os.path.exists(e.split("@")[0])]
    if args.out:  # refused before the work: a folder, a file vislearn did not write, an unwritable folder
        claim_file(args.out, overwrite=args.overwrite, inputs=inputs)
    if args.report:
        claim_folder(args.report, kind="pretrain probe", overwrite=args.overwrite, flag="--report").check(
            REPORT_FILES, args.overwrite, inputs)
    tasks = args.task or [args.data]
    encoders = [load_encoder(spec, args.img_size, args.seed, args.pool) for spec in args.encoder]
    results = []
    for task in tasks:
        splits = task_splits(task, args.img_size) if args.task else load_splits(args.data, args.img_size)
        for spec, encoder in zip(args.encoder, encoders):
            r = {"task": task, **probe(encoder, splits, args.seed)}
            results.append(r)
            print(f"{task}: {spec}: test error {r['test_error']:.4f} (val {r['val_error']:.4f}, C={r['C']})")
    if args.out:
        write_json(args.out, {"data": args.data, "img_size": args.img_size, "results": results}, indent=1)
    if args.report:
        write_probe_report(Path(args.report), results, vars(args))
    sys.stdout.flush()
    return 0


def write_probe_report(folder: Path, results: list[dict], args: dict) -> None:
    """results.json and index.html: one row per encoder, one column per task (test error, val error and C)."""
    tasks = list(dict.fromkeys(r["task"] for r in results))
    encoders = list(dict.fromkeys(r["encoder"] for r in results))
    cell = {(r["encoder"], r["task"]): r for r in results}
    head = "".join(f"<th>{html.escape(t)}</th>" for t in tasks)
    rows = "".join("<tr><td>{}</td>{}</tr>".format(html.escape(e), "".join(
        f"<td>{100 * cell[e, t]['test_error']:.1f}% <small>(val {100 * cell[e, t]['val_error']:.1f}%, "
        f"C={cell[e, t]['C']})</small></td>" for t in tasks)) for e in encoders)
    write_json(folder / "results.json", {"args": {k: v for k, v in args.items() if k != "overwrite"},
                                         "results": results}, indent=1)
    write_text(folder / "index.html", f"""<!doctype html><meta charset="utf-8"><title>linear probes</title>
<h1>Linear probes: test error (lower is better)</h1>
<p>Logistic regression on standardised frozen features; C chosen on val from {list(CS)}; test error at that C.</p>
<table border="1" cellpadding="4"><tr><th>encoder</th>{head}</tr>{rows}</table>
""")


main = command(build_parser, run)
