"""`load_images(source, split, size=None, seed=0)`: labelled images as uint8 tensors, whatever their source.

- "objects": the rendered set (`render`), made in memory with the default counts per class (250/50/100) at
  `size` (default 64) and `seed`, and cached in $XDG_CACHE_HOME/vislearn/imagesets (~/.cache/... by default)
  as objects-v{VERSION}-s{seed}-{size}.npz (written atomically), so a second call only reads it;
- "digits": scikit-learn's `load_digits` (1,797 8x8 grey images shipped inside scikit-learn), upsampled to
  `size` (default 32) with bilinear interpolation, 3 channels; a fixed stratified split (60/15/25% of each
  digit: train/val/test), the same for every `seed`;
- a folder in the ImageFolder layout with split subfolders (FOLDER/SPLIT/CLASS/IMAGE): images resized to
  `size` x `size` if given (bilinear, not cropped), else all of one size; the classes are the sorted subfolder names of the split, and the
  splits present must agree on them (a folder named "objects" or "digits": write ./objects);
- an .npz file written by `vislearn backbones imageset --format npz` (resized when `size` differs).
Every mistake (an unknown split, a folder without images, a corrupt image, images of different sizes without
`size`, an .npz missing keys) is a `UserError` naming the file.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from vislearn.common.errors import UserError

from .render import SPLITS, VERSION
from .store import DEFAULT_PER_CLASS, DEFAULT_SIZE, IMAGE_SUFFIXES, LabelledImages, check_size, make_set, metadata, \
    write_npz

NPZ_KEYS = ("images", "labels", "split", "classes")
DIGITS_FRACTIONS = (0.60, 0.15, 0.25)  # train, val, test of each digit
DIGITS_SIZE = 32
DIGITS_WORD = 0xD1617  # the digits split's generator: fixed, independent of any seed


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vislearn" / "imagesets"


def _split_index(split: str, source) -> int:
    if split not in SPLITS:
        raise UserError(f"{source}: unknown split {split!r}; choose from {', '.join(SPLITS)}")
    return SPLITS.index(split)


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 [N,H,W,C] -> uint8 [N,size,size,C], bilinear (antialiased when shrinking)."""
    if images.shape[1:3] == (size, size):
        return images
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(_writable(images)).permute(0, 3, 1, 2).float()
    y = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return y.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _writable(a: np.ndarray) -> np.ndarray:
    """Contiguous and writable (torch shares the memory; an array of PIL's is read-only)."""
    a = np.ascontiguousarray(a)
    return a if a.flags.writeable else a.copy()


def _tensors(images: np.ndarray, labels: np.ndarray, classes) -> LabelledImages:
    import torch

    return LabelledImages(images=torch.from_numpy(_writable(images.transpose(0, 3, 1, 2))),
                          labels=torch.from_numpy(_writable(np.asarray(labels, np.int64))),
                          classes=tuple(str(c) for c in classes))


# ------------------------------------------------------------------------------------------- sources
def read_npz(path: Path) -> dict:
    """The arrays of an image-set .npz (checked: keys, shapes, dtypes, label range)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in NPZ_KEYS if k not in z.files]
            if missing:
                raise UserError(f"{path}: missing key(s) {', '.join(missing)}; an image-set .npz has "
                                f"{', '.join(NPZ_KEYS)} (and meta), as `vislearn backbones imageset --format npz` writes")
            data = {k: z[k] for k in (*NPZ_KEYS, "meta") if k in z.files}
    except UserError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise UserError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None
    images, labels, split, classes = (data[k] for k in NPZ_KEYS)
    n = len(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] not in (1, 3):
        raise UserError(f"{path}: images must be uint8 [N,H,W,3], got {images.dtype} {list(images.shape)}")
    if labels.shape != (n,) or split.shape != (n,) or classes.ndim != 1 or not len(classes):
        raise UserError(f"{path}: labels and split must have one entry per image ({n}) and classes at least one name; "
                        f"got labels {list(labels.shape)}, split {list(split.shape)}, classes {list(classes.shape)}")
    if not np.issubdtype(labels.dtype, np.integer) or n and (labels.min() < 0 or labels.max() >= len(classes)):
        raise UserError(f"{path}: labels must be whole numbers from 0 to {len(classes) - 1} (one per class)")
    if not np.issubdtype(split.dtype, np.integer) or n and (split.min() < 0 or split.max() > 2):
        raise UserError(f"{path}: split must be 0 (train), 1 (val) or 2 (test) per image")
    if images.shape[3] == 1:
        data["images"] = np.repeat(images, 3, axis=3)
    return data


def _objects(split: str, size: int | None, seed: int) -> LabelledImages:
    k = _split_index(split, "objects")
    size = check_size(DEFAULT_SIZE if size is None else size)
    if seed < 0:
        raise UserError(f"objects: seed must be a whole number of 0 or more, got {seed}")
    path = cache_dir() / f"objects-v{VERSION}-s{seed}-{size}.npz"
    meta = metadata(seed, size, DEFAULT_PER_CLASS)
    data = None
    if path.is_file():
        try:
            data = read_npz(path)
            if json.loads(str(data.get("meta", "{}"))) != meta:
                data = None  # another generator's file under our name: made again
        except (UserError, ValueError):
            data = None  # damaged: made again
    if data is None:
        arrays = make_set(seed, size, DEFAULT_PER_CLASS)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_npz(path, arrays, meta)
        except OSError:
            pass  # no cache (read-only home, full disk): the set is still returned
        images, labels = arrays[split]
        return _tensors(images, labels, meta["classes"])
    keep = data["split"] == k
    return _tensors(data["images"][keep], data["labels"][keep], data["classes"])


def digits_split(labels: np.ndarray) -> np.ndarray:
    """0/1/2 (train/val/test) per digit image: per class, a fixed permutation cut at 60/15/25%."""
    split = np.zeros(len(labels), np.uint8)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        perm = idx[np.random.default_rng([int(c), DIGITS_WORD]).permutation(len(idx))]
        n_test = int(round(DIGITS_FRACTIONS[2] * len(idx)))
        n_val = int(round(DIGITS_FRACTIONS[1] * len(idx)))
        split[perm[:n_test]] = 2
        split[perm[n_test:n_test + n_val]] = 1
    return split


def _digits(split: str, size: int | None) -> LabelledImages:
    from sklearn.datasets import load_digits

    k = _split_index(split, "digits")
    size = DIGITS_SIZE if size is None else size
    if not 8 <= size <= 1024:
        raise UserError(f"digits: size must be 8 to 1024 pixels, got {size}")
    d = load_digits()
    labels = d.target.astype(np.int64)
    keep = digits_split(labels) == k
    grey = np.round(d.images[keep] * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[..., None]
    images = _resize(np.repeat(grey, 3, axis=3), size)
    return _tensors(images, labels[keep], [str(c) for c in range(10)])


def _read_image(path: Path, size: int | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if size is not None and im.size != (size, size):
                return _resize(np.asarray(im)[None], size)[0]
            return np.asarray(im)
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise UserError(f"{path}: not a readable image ({type(e).__name__}: {e})") from None


def _class_folders(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def _folder(root: Path, split: str, size: int | None) -> LabelledImages:
    if size is not None and not 1 <= size <= 4096:
        raise UserError(f"{root}: size must be 1 to 4096 pixels, got {size}")
    folder = root / split
    if not folder.is_dir():
        present = [s for s in _class_folders(root)]
        raise UserError(f"{folder}: no such split folder (the ImageFolder layout: {root}/SPLIT/CLASS/IMAGE; "
                        f"split folders here: {', '.join(present) or 'none'})")
    classes = _class_folders(folder)
    if not classes:
        raise UserError(f"{folder}: no class folders (expected {folder}/CLASS/IMAGE)")
    for other in SPLITS:
        if other != split and (root / other).is_dir() and (theirs := _class_folders(root / other)) != classes:
            diff = sorted(set(classes) ^ set(theirs))
            raise UserError(f"{root / other}: its classes differ from those of {folder} ({', '.join(diff[:3])}"
                            f"{' ...' if len(diff) > 3 else ''}); all splits must have the same class folders")
    images, labels, shape_of = [], [], None
    for label, name in enumerate(classes):
        files = sorted(e.name for e in os.scandir(folder / name)
                       if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES) and not e.name.startswith("."))
        if not files:
            raise UserError(f"{folder / name}: no images (expected {', '.join(IMAGE_SUFFIXES)} files)")
        for f in files:
            im = _read_image(folder / name / f, size)
            if shape_of is None:
                shape_of = (im.shape, folder / name / f)
            elif im.shape != shape_of[0]:
                raise UserError(f"{folder / name / f}: is {im.shape[1]}x{im.shape[0]}, {shape_of[1]} is "
                                f"{shape_of[0][1]}x{shape_of[0][0]}; give a size to resize them all")
            images.append(im)
            labels.append(label)
    return _tensors(np.stack(images), np.asarray(labels, np.int64), classes)


def _npz(path: Path, split: str, size: int | None) -> LabelledImages:
    k = _split_index(split, path)
    if size is not None and not 1 <= size <= 4096:
        raise UserError(f"{path}: size must be 1 to 4096 pixels, got {size}")
    data = read_npz(path)
    keep = data["split"] == k
    images = data["images"][keep]
    return _tensors(images if size is None else _resize(images, size), data["labels"][keep], data["classes"])


def load_images(source: str | os.PathLike, split: str, size: int | None = None, seed: int = 0) -> LabelledImages:
    """Labelled images of `split` ("train", "val", "test") from `source` (module docstring): uint8 [N,3,H,W]
    images, int64 [N] labels, the class names."""
    if isinstance(source, str) and source == "objects":
        return _objects(split, size, seed)
    if isinstance(source, str) and source == "digits":
        return _digits(split, size)
    path = Path(source)
    if path.is_dir():
        return _folder(path, split, size)
    if path.suffix == ".npz":
        if not path.is_file():
            raise UserError(f"{path}: file not found")
        return _npz(path, split, size)
    if path.exists():
        raise UserError(f"{path}: not an image source (expected a folder in the ImageFolder layout or an .npz file)")
    raise UserError(f"{path}: not found; an image source is \"objects\", \"digits\", a folder (SPLIT/CLASS/IMAGE) "
                    f"or an .npz file")
