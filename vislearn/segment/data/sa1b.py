"""Segmentation data on disk: SA-1B's format (written and read), COCO instances JSON (read), split folders.

SA-1B, one image = two files side by side:
  sa_<id>.jpg   the image (JPEG, quality 95 when we write it)
  sa_<id>.json  {"image": {"image_id", "width", "height", "file_name"},
                 "annotations": [{"id", "segmentation": {"size": [h, w], "counts": str}, "bbox": [x, y, w, h],
                                  "area", "predicted_iou", "stability_score", "point_coords": [[x, y]],
                                  "crop_box": [x, y, w, h]}, ...]}
Masks are COCO compressed RLE (`vislearn.segment.masks`); `bbox` is the mask's box as the official SAM code
computes it (inclusive: w = x1 - x0); extra fields (our generator's `category`, `level`, `parent`) are kept.
For ground truth we write predicted_iou = stability_score = 1.0, point_coords = the mask's interior point (the
pixel farthest from its boundary, the paper's evaluation point, in pixel indices (column, row)) and crop_box =
the whole image. Each image's pair is written atomically, the JPEG first: a JSON present means a whole image.

`load_dataset(path, annotations=None, split=None) -> list[SegImage]` reads
  (a) an SA-1B folder: any number of sa_*.jpg + sa_*.json (an extracted SA-1B shard, or one split we wrote);
  (b) a COCO instances JSON (`annotations=FILE`) and the folder of its images: polygons, RLE and iscrowd masks
      become compressed RLE; COCO's bbox, area, iscrowd, category_id are kept, `category` is the name;
  (c) a folder with split subfolders (train/ val/ test/, as `vislearn segment generate-data` writes): pass `split`.
Everything is checked as it is read (JSON that parses, annotations with a valid mask of the image's size, an
image file that exists and whose header says that size): a mistake is one UserError naming the file.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vislearn.common.errors import UserError
from vislearn.common.files import atomic_path
from vislearn.common.jsonio import read_json, write_json
from vislearn.segment.masks import (box_xyxy_to_xywh, check_rle, interior_point, mask_to_box_xyxy, rle_decode,
                                    rle_encode, segmentation_to_rle)

SPLITS = ("train", "val", "test")
JPEG_QUALITY = 95
_NAME = re.compile(r"^sa_(\d+)\.json$")


# ----------------------------------------------------------------------------------------------------- an image
@dataclass
class SegImage:
    """One image and its annotations (dicts as in SA-1B's JSON; `segmentation` a compressed RLE, str counts)."""

    image_path: Path
    image_id: int | str
    width: int
    height: int
    annotations: list[dict] = field(default_factory=list)
    source: Path | None = None  # the annotation file it came from (named in errors)

    def load_image(self) -> np.ndarray:
        """The image as uint8 [H, W, 3] RGB; a file that does not decode, or of another size, is a UserError."""
        return read_image(self.image_path, (self.height, self.width))

    def masks(self, indices=None) -> np.ndarray:
        """The masks of annotations `indices` (default all) as bool [K, H, W]."""
        anns = self.annotations if indices is None else [self.annotations[int(i)] for i in indices]
        out = np.zeros((len(anns), self.height, self.width), bool)
        for k, a in enumerate(anns):
            out[k] = rle_decode(a["segmentation"])
        return out


def read_image(path: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """An image file as uint8 [H, W, 3] RGB (grey and RGBA converted); `size` (h, w) checked when given."""
    from PIL import Image

    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            rgb = np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise UserError(f"{path}: image not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, expected an image") from None
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise UserError(f"{path}: not an image that can be decoded ({e})") from None
    if size is not None and rgb.shape[:2] != tuple(size):
        raise UserError(f"{path}: image is {rgb.shape[0]}x{rgb.shape[1]} (h x w), its annotations say "
                        f"{size[0]}x{size[1]}")
    return rgb


def _image_size(path: Path) -> tuple[int, int]:
    """(h, w) from the image file's header (no decoding); UserError when it is missing or not an image."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
    except FileNotFoundError:
        raise UserError(f"{path}: image not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, expected an image") from None
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise UserError(f"{path}: not an image that can be decoded ({e})") from None
    return h, w


# ---------------------------------------------------------------------------------------------------- writing
def annotation_record(mask: np.ndarray, ann_id: int, **extra: Any) -> dict:
    """The SA-1B annotation of a ground-truth mask (bool [H, W], not empty): RLE, box, area, the interior point,
    predicted_iou = stability_score = 1, crop_box = the whole image; `extra` fields are added."""
    h, w = mask.shape
    x, y = interior_point(mask)
    return {"id": int(ann_id), "segmentation": rle_encode(mask),
            "bbox": [float(v) for v in box_xyxy_to_xywh(mask_to_box_xyxy(mask).tolist())],
            "area": int(np.count_nonzero(mask)), "predicted_iou": 1.0, "stability_score": 1.0,
            "point_coords": [[float(x), float(y)]], "crop_box": [0.0, 0.0, float(w), float(h)], **extra}


def sa1b_name(image_id: int | str) -> str:
    return f"sa_{image_id}"


def write_image(folder: str | os.PathLike, image_id: int, image: np.ndarray, annotations: list[dict],
                quality: int = JPEG_QUALITY) -> Path:
    """Write `folder`/sa_<id>.jpg then `folder`/sa_<id>.json (each atomically; the JSON last, so that it stands
    for a whole pair). Returns the JSON's path."""
    from PIL import Image

    folder = Path(folder)
    name = sa1b_name(image_id)
    h, w = image.shape[:2]
    with atomic_path(folder / f"{name}.jpg") as tmp:
        Image.fromarray(np.ascontiguousarray(image)).save(tmp, format="JPEG", quality=quality)
    record = {"image": {"image_id": image_id, "width": int(w), "height": int(h), "file_name": f"{name}.jpg"},
              "annotations": annotations}
    write_json(folder / f"{name}.json", record)
    return folder / f"{name}.json"


# ---------------------------------------------------------------------------------------------------- reading
def _whole_number(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0


def _sa1b_image(json_path: Path) -> SegImage:
    data = read_json(json_path)
    if not isinstance(data, dict) or not isinstance(data.get("image"), dict) \
            or not isinstance(data.get("annotations"), list):
        raise UserError(f"{json_path}: not an SA-1B annotation file (expected an object with 'image' and "
                        f"'annotations')")
    info = data["image"]
    h, w = info.get("height"), info.get("width")
    if not (_whole_number(h) and _whole_number(w)) or h == 0 or w == 0:
        raise UserError(f"{json_path}: image: 'height' and 'width' must be whole numbers above 0")
    file_name = info.get("file_name", json_path.with_suffix(".jpg").name)
    if not isinstance(file_name, str) or not file_name or Path(file_name).name != file_name:
        raise UserError(f"{json_path}: image: 'file_name' must be a file name beside it, got {file_name!r}")
    image_path = json_path.parent / file_name
    if _image_size(image_path) != (h, w):
        raise UserError(f"{image_path}: image is {'x'.join(map(str, _image_size(image_path)))} (h x w), "
                        f"{json_path.name} says {h}x{w}")
    anns = []
    for k, a in enumerate(data["annotations"]):
        where = f"{json_path}: annotation {k}" + (f" (id {a['id']})" if isinstance(a, dict) and "id" in a else "")
        if not isinstance(a, dict) or "segmentation" not in a:
            raise UserError(f"{where}: has no 'segmentation'")
        seg = a["segmentation"]
        if not isinstance(seg, dict):
            raise UserError(f"{where}: 'segmentation' must be an RLE {{'size', 'counts'}}")
        try:
            rle = check_rle(seg)
        except ValueError as e:
            raise UserError(f"{where}: {e}") from None
        if tuple(rle["size"]) != (h, w):
            raise UserError(f"{where}: mask size {rle['size'][0]}x{rle['size'][1]} is not the image size {h}x{w}")
        anns.append({**a, "segmentation": rle})
    return SegImage(image_path, info.get("image_id", json_path.stem[3:]), int(w), int(h), anns, json_path)


def _sort_key(p: Path):
    m = _NAME.match(p.name)
    return (0, int(m.group(1)), "") if m else (1, 0, p.name)


def load_sa1b_folder(folder: str | os.PathLike) -> list[SegImage]:
    """Every sa_*.json of `folder` (with its image), in the order of their numbers."""
    folder = Path(folder)
    files = sorted((p for p in folder.glob("sa_*.json") if p.is_file()), key=_sort_key)
    return [_sa1b_image(p) for p in files]


def load_coco(annotations: str | os.PathLike, images: str | os.PathLike) -> list[SegImage]:
    """A COCO instances JSON and its image folder: one SegImage per image record, masks as compressed RLE."""
    annotations, images = Path(annotations), Path(images)
    data = read_json(annotations)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise UserError(f"{annotations}: not a COCO instances file (expected 'images' and 'annotations' lists)")
    names = {}
    for c in data.get("categories") or []:
        if isinstance(c, dict) and "id" in c:
            names[c["id"]] = c.get("name")
    out: dict[Any, SegImage] = {}
    for k, info in enumerate(data["images"]):
        if not isinstance(info, dict) or "id" not in info or not isinstance(info.get("file_name"), str):
            raise UserError(f"{annotations}: images[{k}]: needs 'id' and 'file_name'")
        h, w = info.get("height"), info.get("width")
        if not (_whole_number(h) and _whole_number(w)) or h == 0 or w == 0:
            raise UserError(f"{annotations}: images[{k}] (id {info['id']}): 'height' and 'width' must be whole "
                            f"numbers above 0")
        path = images / info["file_name"]
        if not path.is_file():
            raise UserError(f"{path}: image not found (images[{k}] of {annotations})")
        if info["id"] in out:
            raise UserError(f"{annotations}: images[{k}]: image id {info['id']} appears twice")
        out[info["id"]] = SegImage(path, info["id"], int(w), int(h), [], annotations)
    for k, a in enumerate(data["annotations"]):
        where = f"{annotations}: annotations[{k}]" + (f" (id {a['id']})" if isinstance(a, dict) and "id" in a else "")
        if not isinstance(a, dict) or "segmentation" not in a:
            raise UserError(f"{where}: has no 'segmentation'")
        image = out.get(a.get("image_id"))
        if image is None:
            raise UserError(f"{where}: image_id {a.get('image_id')!r} is not among the images")
        try:
            rle = segmentation_to_rle(a["segmentation"], image.height, image.width)
        except ValueError as e:
            raise UserError(f"{where}: {e}") from None
        ann = {**a, "segmentation": rle}
        if "category_id" in a and a["category_id"] in names:
            ann.setdefault("category", names[a["category_id"]])
        image.annotations.append(ann)
    return list(out.values())


def split_folders(path: str | os.PathLike) -> list[str]:
    """The split subfolders (train, val, test) that `path` has."""
    return [s for s in SPLITS if (Path(path) / s).is_dir()]


def load_dataset(path: str | os.PathLike, annotations: str | os.PathLike | None = None,
                 split: str | None = None) -> list[SegImage]:
    """The images of an SA-1B folder, of a split of a folder of splits (`split`), or of a COCO instances file
    (`annotations`, with `path` its image folder). See the module docstring."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: not found")
    if not path.is_dir():
        raise UserError(f"{path}: is a file; expected a folder of sa_*.jpg + sa_*.json, a folder of splits "
                        f"(train/ val/ test/), or an image folder with a COCO annotations file")
    if annotations is not None:
        annotations = Path(annotations)
        if not annotations.is_file():
            raise UserError(f"{annotations}: COCO annotations file not found" if not annotations.exists()
                            else f"{annotations}: is a folder, expected a COCO annotations JSON file")
        return load_coco(annotations, path)
    splits = split_folders(path)
    if split is not None:
        if split not in SPLITS:
            raise UserError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if split not in splits:
            have = f"it has {', '.join(splits)}" if splits else "it has no split folders"
            raise UserError(f"{path}: has no {split}/ folder ({have})")
        path = path / split
    elif splits and not any(path.glob("sa_*.json")):
        raise UserError(f"{path}: holds the splits {', '.join(splits)}: choose one")
    images = load_sa1b_folder(path)
    if not images:
        raise UserError(f"{path}: holds no sa_*.json annotation files (an SA-1B folder, or a folder of splits)")
    return images
