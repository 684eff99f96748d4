"""`vislearn pretrain retrieve --run RUN --query IMAGE_OR_FOLDER [--gallery SET:SPLIT | FOLDER] --top-k 8
--out sheet.png`: the nearest gallery items of each query image in a metric run's embedding (RUN/embedder.pt),
printed (query, rank, gallery item, class, distance) and drawn as a contact sheet: one row per query, the query
then its top-k, each match outlined green when its class is the query's, red when not (no outline when the
query's class is unknown).

A query's (or a folder gallery image's) class is its parent folder's name when that names a coarse class of the
run or one of its modes (e.g. `queries/banana/1.png` is of the class `book+banana`). The default gallery is the
test split of the run's set, every coarse class.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vislearn.common.cli import Parser, command, positive_int
from vislearn.common.errors import UserError
from vislearn.common.files import save_png
from vislearn.common.outputs import claim_file

from .data import MODE_SETS, load_split, parse_data_split
from .model import Embedder, load_embedder

CELL = 64  # pixels per image on the sheet
BORDER = 3
GREEN, RED, GREY = (40, 170, 60), (210, 40, 40), (235, 235, 235)


@dataclass
class Items:
    images: torch.Tensor  # uint8 [N,3,S,S] at the embedder's size
    names: list[str]  # path or SET:SPLIT#index
    classes: list[str | None]  # coarse class name or None


def class_of(folder_name: str, emb: Embedder) -> str | None:
    for c in emb.classes:
        if folder_name == c or folder_name in c.split("+"):
            return c
    return None


def image_files(path: Path, flag: str) -> list[Path]:
    from vislearn.backbones.imagesets.store import IMAGE_SUFFIXES  # noqa: PLC0415

    if not path.exists():
        raise UserError(f"{path}: {flag} not found (an image or a folder of images)")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and not p.name.startswith("."))
    if not files:
        raise UserError(f"{path}: no images for {flag} (expected {', '.join(IMAGE_SUFFIXES)} files)")
    return files


def read_items(path: Path, emb: Embedder, flag: str) -> Items:
    from vislearn.backbones.imagesets.load import _read_image  # noqa: PLC0415 (its one-line errors)

    files = image_files(path, flag)
    images = np.stack([_read_image(f, emb.size) for f in files]).transpose(0, 3, 1, 2)
    return Items(torch.from_numpy(np.ascontiguousarray(images)), [str(f) for f in files],
                 [class_of(f.parent.name, emb) for f in files])


def gallery_items(text: str, emb: Embedder) -> Items:
    if text.partition(":")[0] in MODE_SETS:
        spec, split = parse_data_split(text)
        if spec.name != emb.data:
            raise UserError(f"--gallery {text}: the run was trained on {emb.data}; use {emb.data}:SPLIT or a folder")
        part = load_split(spec, split, "all")
        return Items(part.images, [f"{spec.name}:{split}#{i}" for i in range(len(part))],
                     [spec.classes[c] for c in part.labels.tolist()])
    return read_items(Path(text), emb, "--gallery")


def nearest(query: np.ndarray, gallery: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices [Q, k], Euclidean distances [Q, k]) of the k nearest gallery embeddings of each query."""
    d = torch.cdist(torch.from_numpy(query).double(), torch.from_numpy(gallery).double())
    dist, idx = torch.topk(d, min(k, gallery.shape[0]), largest=False)
    return idx.numpy(), dist.numpy()


def cell(image: torch.Tensor, colour=None) -> np.ndarray:
    img = image.permute(1, 2, 0).numpy()
    rep = max(1, CELL // img.shape[0])
    img = np.repeat(np.repeat(img, rep, 0), rep, 1)[:CELL, :CELL]
    out = np.full((CELL + 2 * BORDER, CELL + 2 * BORDER, 3), 255, np.uint8)
    if colour is not None:
        out[:] = colour
    out[BORDER:BORDER + img.shape[0], BORDER:BORDER + img.shape[1]] = img
    return out


def contact_sheet(queries: Items, gallery: Items, idx: np.ndarray) -> np.ndarray:
    rows = []
    gap = np.full((CELL + 2 * BORDER, 8, 3), 255, np.uint8)
    for q in range(len(queries.names)):
        qc = queries.classes[q]
        tiles = [cell(queries.images[q], GREY), gap]
        for j in idx[q]:
            colour = None if qc is None else (GREEN if gallery.classes[j] == qc else RED)
            tiles.append(cell(gallery.images[j], colour))
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)


def retrieve(run: Path, query: Path, gallery: str | None, top_k: int, out: Path, overwrite: bool = False) -> dict:
    path = run / "embedder.pt"
    out = claim_file(out, overwrite=overwrite, inputs=[query, path])  # refused before anything is read
    if out.suffix.lower() != ".png":
        raise UserError(f"--out {out}: the contact sheet is a .png file")
    if not run.is_dir():
        raise UserError(f"{run}: run folder not found (a `vislearn pretrain metric --out RUN` folder)")
    if not path.exists():
        raise UserError(f"{path}: not found; the run has not finished (`vislearn pretrain metric ... --resume`)")
    emb = load_embedder(path)
    queries = read_items(Path(query), emb, "--query")
    gal = gallery_items(gallery or f"{emb.data}:test", emb)
    idx, dist = nearest(emb.embed(queries.images), emb.embed(gal.images), top_k)
    for q, name in enumerate(queries.names):
        print(f"query {name} (class {queries.classes[q] or '?'})")
        for r, (j, d) in enumerate(zip(idx[q], dist[q]), 1):
            mark = "" if queries.classes[q] is None else (" ok" if gal.classes[j] == queries.classes[q] else " x")
            print(f"  {r}. {gal.names[j]}  {gal.classes[j] or '?'}  {d:.4f}{mark}")
    save_png(out, contact_sheet(queries, gal, idx))
    print(f"contact sheet: {out}")
    return {"indices": idx, "distances": dist, "queries": queries.names}


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn pretrain retrieve", description="Nearest neighbours of query images in a metric run's "
               "embedding: top-k printed and drawn as a contact sheet (query, then its matches; green: same class).")
    p.add_argument("--run", required=True, help="run folder of `vislearn pretrain metric` (holds embedder.pt)")
    p.add_argument("--query", required=True, help="an image, or a folder of images (class = parent folder name)")
    p.add_argument("--gallery", help=f"SET:SPLIT ({', '.join(MODE_SETS)}; train|val|test) or a folder of images "
                   "(default: the run's set, test split)")
    p.add_argument("--top-k", type=positive_int, default=8, help="neighbours per query (default 8)")
    p.add_argument("--out", required=True, help="contact sheet .png")
    p.add_argument("--overwrite", action="store_true", help="replace --out if vislearn did not write it")
    return p


def run(args: argparse.Namespace) -> int:
    retrieve(Path(args.run), Path(args.query), args.gallery, args.top_k, Path(args.out), args.overwrite)
    sys.stdout.flush()
    return 0


main = command(build_parser, run)
