"""The feature cache: a frozen encoder's features of every frame of a demonstrations folder, computed once.

A frozen encoder gives a frame the same feature in every epoch, every run and every number of demonstrations, so
BC trains on `DIR/features/<slug>.npy` (float32 [frames of all stored episodes, dim], episodes in demos.json's
order) instead of running the encoder 400 times over the frames. The JSON sidecar beside it says what the
features are of: the spec, the encoder's file (size and sha256 of a `ckpt:` / `mvp:` file), the seed of a
`random:` encoder, the episodes (file, seed, length) and the sha256 of the .npy itself. Anything that differs
(another file under the same path, a re-recorded folder) or a cache that does not read back whole (a damaged or
edited .npy) is recomputed, never trusted. Both files are written atomically, the .npy first."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from vislearn.common.errors import UserError
from vislearn.common.files import atomic_path
from vislearn.common.jsonio import write_json
from vislearn.common.outputs import claim_folder, session
from vislearn.common.weights import file_sha256

from .demos import demos_info, load_demos
from .encoders import EncoderSpec, build_encoder, encode_frames, parse_spec

CACHE_FORMAT = "vislearn-control-features"
CACHE_VERSION = 1


def encoder_identity(spec: EncoderSpec, seed: int = 0) -> dict:
    """What the features of `spec` depend on besides the spec's text: its weight file's size and sha256 (`ckpt:`,
    `mvp:`), or the seed of random weights (`random:`)."""
    ident: dict = {"spec": str(spec)}
    if spec.kind in ("ckpt", "mvp"):  # the file by its content, not by the path it was named with
        ident["spec"] = str(dataclasses.replace(spec, path="FILE"))
        path = Path(spec.path)
        if not path.is_file():
            raise UserError(f"{path}: encoder file not found (encoder {spec})")
        ident["file"] = {"size": path.stat().st_size, "sha256": file_sha256(path)}
    if spec.kind == "random":
        ident["seed"] = int(seed)
    return ident


def cache_paths(demos_dir: str | os.PathLike, spec: EncoderSpec, seed: int = 0) -> tuple[Path, Path]:
    name = spec.slug + (f"-seed{seed}" if spec.kind == "random" else "")
    folder = Path(demos_dir) / "features"
    return folder / f"{name}.npy", folder / f"{name}.json"


def _episodes_of(demos_dir: Path) -> list:
    return [[str(e["file"]), int(e["seed"]), int(e["length"])] for e in demos_info(demos_dir)["episodes"]]


def _valid(npy: Path, sidecar: Path, expected: dict) -> np.ndarray | None:
    """The cached features when the sidecar describes exactly `expected` and the .npy is the one it hashed."""
    import json

    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or {k: meta.get(k) for k in expected} != expected:
            return None
        if file_sha256(npy) != meta.get("sha256"):
            return None
        feats = np.load(npy, allow_pickle=False)
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    total = sum(e[2] for e in expected["episodes"])
    if feats.dtype != np.float32 or feats.ndim != 2 or len(feats) != total or not np.isfinite(feats).all():
        return None
    return feats


def cached_features(demos_dir: str | os.PathLike, spec: EncoderSpec | str, seed: int = 0, encoder=None,
                    log=print, progress: bool = False, overwrite: bool = False) -> np.ndarray:
    """float32 [frames of all stored demonstrations, dim]: from the cache when it is valid, else computed with the
    frozen encoder (`encoder`, or built from `spec` and `seed`) and cached. Slice with `Demos.episode`.

    A cache file that changed since vislearn wrote it is not trusted and, as every file vislearn did not write,
    not replaced either unless `overwrite` (bc's --overwrite): the features are computed and used uncached."""
    demos_dir = Path(demos_dir)
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    if not spec.frozen or not spec.pixels:
        raise UserError(f"encoder {spec}: only a frozen pixel encoder has cached features")
    npy, sidecar = cache_paths(demos_dir, spec, seed)
    expected = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "encoder": encoder_identity(spec, seed),
                "episodes": _episodes_of(demos_dir)}
    feats = _valid(npy, sidecar, expected) if npy.is_file() and sidecar.is_file() else None
    if feats is not None:
        log(f"features of {spec}: cached in {npy} ({feats.shape[0]} frames x {feats.shape[1]})")
        return feats
    if npy.exists():
        log(f"features of {spec}: the cache {npy} is stale or damaged; recomputing")
    demos = load_demos(demos_dir, pixels=True)
    encoder = encoder if encoder is not None else build_encoder(spec, seed)
    from tqdm import tqdm

    bar = tqdm(total=len(demos), desc=f"features {spec.slug}", unit="frame", disable=not progress)
    feats = encode_frames(encoder, demos.pixels, progress=lambda n: bar.update(n - bar.n))
    bar.close()
    with session():  # the features folder is claimed for these two files only
        try:  # our own files only: a file there that vislearn did not write (or that changed since) needs `overwrite`
            claim_folder(npy.parent, [npy.name, sidecar.name], kind="control features", overwrite=overwrite)
        except UserError as e:  # that, or a read-only demonstrations folder (shared): train anyway, uncached
            log(f"features of {spec}: not cached ({e})")
            return feats
        with atomic_path(npy) as tmp:
            np.save(tmp, feats)
        write_json(sidecar, {**expected, "sha256": file_sha256(npy), "shape": list(feats.shape)}, indent=1)
    log(f"features of {spec}: {feats.shape[0]} frames x {feats.shape[1]} computed, cached in {npy}")
    return feats
