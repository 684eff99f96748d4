"""The segmentation data: the renderer's masks, SA-1B writing and reading, the COCO reader, generate-data."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from vislearn.common.drawing.draw import draw_object
from vislearn.common.drawing.hand import ARM_LAYER, HAND_LAYER
from vislearn.common.errors import UserError
from vislearn.segment.data import render
from vislearn.segment.data.generate import main as generate_main
from vislearn.segment.data.generate import scene_annotations
from vislearn.segment.data.render import min_areas, render_scene
from vislearn.segment.data.sa1b import load_dataset, write_image
from vislearn.segment.masks import counts_from_string, mask_to_box_xyxy, rle_encode

SIZE = 96
REPO = Path(__file__).resolve().parents[2]


def silhouette(look, st, n):
    """The object's whole silhouette, drawn alone by the house's drawing code."""
    masks = {}
    draw_object(np.zeros((n, n, 3), np.float32), np.zeros((n, n), np.uint8), 1, look, st, masks, "k")
    return masks.get("k", np.zeros((n, n), bool))


# ------------------------------------------------------------------------------------------------ the renderer
def test_same_seed_split_index_same_image_and_masks():
    a = render_scene(3, "val", 7, SIZE)
    render_scene(3, "val", 8, SIZE)  # another image in between: nothing carries over
    b = render_scene(3, "val", 7, SIZE)
    assert a.image.dtype == np.uint8 and a.image.shape == (SIZE, SIZE, 3)
    assert np.array_equal(a.image, b.image)
    assert [(i.id, i.category, i.level, i.parent) for i in a.instances] == \
        [(i.id, i.category, i.level, i.parent) for i in b.instances]
    assert all(np.array_equal(x.mask, y.mask) for x, y in zip(a.instances, b.instances))
    assert not np.array_equal(a.image, render_scene(3, "val", 8, SIZE).image)
    assert not np.array_equal(a.image, render_scene(3, "test", 7, SIZE).image)
    assert not np.array_equal(a.image, render_scene(4, "val", 7, SIZE).image)


def test_masks_are_the_visible_regions_after_occlusion():
    occluded = 0
    for index in range(12):
        s = render_scene(0, "train", index, SIZE)
        wholes = [i for i in s.instances if i.level == "whole"]
        assert 1 <= len(s.objects) <= render.OBJECTS[1]
        # wholes never share a pixel: each pixel shows one thing
        stack = np.stack([w.mask for w in wholes])
        assert stack.sum(0).max() <= 1
        # each object's mask = its silhouette less what is drawn after it (later objects, the hand, the arm)
        later = np.isin(s.layers, [HAND_LAYER, ARM_LAYER])
        expected = {}
        for k in range(len(s.objects), 0, -1):
            full = silhouette(*s.objects[k - 1], SIZE)
            expected[k] = full & ~later
            occluded += int(np.any(full & later))
            later |= full
        min_whole, _ = min_areas(SIZE)
        objects = [w for w in wholes if w.category not in ("hand", "arm")]
        want = [m for k, m in sorted(expected.items()) if m.sum() >= min_whole]
        assert len(objects) == len(want)
        for w, m in zip(objects, want):
            assert np.array_equal(w.mask, m), (index, w.category)
            assert w.mask.sum() >= min_whole and w.parent is None
        for w in wholes:
            if w.category == "hand":
                assert np.array_equal(w.mask, s.layers == HAND_LAYER)
    assert occluded > 3  # occlusion happens, and the masks above account for it


def test_parts_partition_their_whole(monkeypatch):
    monkeypatch.setattr(render, "min_areas", lambda n: (1, 1))  # keep every part: the partition is then exact
    seen = set()
    for index in range(10):
        s = render_scene(1, "train", index, 128)
        by_id = {i.id: i for i in s.instances}
        for whole in (i for i in s.instances if i.level == "whole"):
            parts = [i for i in s.instances if i.parent == whole.id]
            if not parts:
                continue
            assert all(p.level == "part" for p in parts)
            stack = np.stack([p.mask for p in parts])
            assert stack.sum(0).max() == 1  # disjoint
            assert np.array_equal(stack.any(0), whole.mask)  # their union is the whole's visible region
            assert all(p.mask.any() for p in parts)
            seen |= {p.category for p in parts}
        for i in s.instances:
            if i.level == "part":
                assert by_id[i.parent].level == "whole" and not np.any(i.mask & ~by_id[i.parent].mask)
            else:
                assert i.parent is None
    assert {"palm", "finger"} <= seen or any(c.endswith(("handle", "cap", "wheel", "lens")) for c in seen)
    assert len(seen) >= 8


def test_small_parts_are_not_annotated_and_a_lone_part_is_not_a_copy_of_its_whole():
    min_whole, min_part = min_areas(SIZE)
    for index in range(10):
        s = render_scene(2, "train", index, SIZE)
        for whole in (i for i in s.instances if i.level == "whole"):
            parts = [i for i in s.instances if i.parent == whole.id]
            assert len(parts) != 1
            assert all(p.mask.sum() >= min_part for p in parts)
            # what small parts leave out is small
            if parts:
                left = whole.mask & ~np.stack([p.mask for p in parts]).any(0)
                assert left.sum() < 6 * min_part


# ------------------------------------------------------------------------------------------------------- SA-1B
def test_sa1b_round_trip(tmp_path):
    s = render_scene(0, "test", 4, SIZE)
    anns = scene_annotations(s, 5)
    write_image(tmp_path, 5, s.image, anns)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sa_5.jpg", "sa_5.json"]
    raw = json.loads((tmp_path / "sa_5.json").read_text())
    assert raw["image"] == {"image_id": 5, "width": SIZE, "height": SIZE, "file_name": "sa_5.jpg"}
    keys = {"id", "segmentation", "bbox", "area", "predicted_iou", "stability_score", "point_coords", "crop_box",
            "category", "level", "parent"}
    assert all(set(a) == keys for a in raw["annotations"])
    [img] = load_dataset(tmp_path)
    assert (img.image_id, img.width, img.height) == (5, SIZE, SIZE)
    masks = img.masks()
    assert masks.shape == (len(s.instances), SIZE, SIZE) and masks.dtype == bool
    for inst, a, m in zip(s.instances, img.annotations, masks):
        assert np.array_equal(m, inst.mask)
        x0, y0, x1, y1 = mask_to_box_xyxy(inst.mask)
        assert a["bbox"] == [x0, y0, x1 - x0, y1 - y0]
        assert a["area"] == inst.mask.sum()
        x, y = a["point_coords"][0]
        assert inst.mask[int(y), int(x)]
        assert a["crop_box"] == [0, 0, SIZE, SIZE] and a["predicted_iou"] == a["stability_score"] == 1.0
        assert (a["category"], a["level"]) == (inst.category, inst.level)
        assert a["parent"] == (None if inst.parent is None else 5000 + inst.parent) and a["id"] == 5000 + inst.id
    assert np.array_equal(img.masks([2, 0]), masks[[2, 0]])
    pixels = img.load_image()
    assert pixels.shape == (SIZE, SIZE, 3) and np.abs(pixels.astype(int) - s.image).mean() < 6  # JPEG q95


def _sa1b_pair(folder, image_id=1, h=8, w=10, anns=None):
    from PIL import Image

    noise = np.random.default_rng(image_id).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(noise).save(folder / f"sa_{image_id}.jpg")
    mask = np.zeros((h, w), bool)
    mask[2:5, 3:7] = True
    anns = anns if anns is not None else [{"id": 1, "segmentation": rle_encode(mask)}]
    (folder / f"sa_{image_id}.json").write_text(json.dumps({
        "image": {"image_id": image_id, "width": w, "height": h, "file_name": f"sa_{image_id}.jpg"},
        "annotations": anns}))
    return mask


def test_sa1b_reader_orders_by_number_and_reads_foreign_files(tmp_path):
    for i in (10, 2, 1):
        _sa1b_pair(tmp_path, i)
    images = load_dataset(tmp_path)
    assert [i.image_id for i in images] == [1, 2, 10]
    assert images[0].masks()[0].sum() == 12


@pytest.mark.parametrize("damage, words", [
    (lambda d: (d / "sa_1.json").write_text("{not json"), "not valid JSON"),
    (lambda d: (d / "sa_1.json").write_text(json.dumps({"image": {}, "annotations": []})), "height"),
    (lambda d: _sa1b_pair(d, anns=[{"id": 7}]), "no 'segmentation'"),
    (lambda d: _sa1b_pair(d, anns=[{"id": 7, "segmentation": {"size": [8, 10], "counts": "zz"}}]), "RLE"),
    (lambda d: _sa1b_pair(d, anns=[{"id": 7, "segmentation": rle_encode(np.ones((8, 9), bool))}]),
     "not the image size"),
    (lambda d: (d / "sa_1.jpg").write_bytes(b"\xff\xd8 not really a jpeg"), "decoded"),
    (lambda d: (d / "sa_1.jpg").unlink(), "not found"),
])
def test_sa1b_reader_bad_input_names_the_file(tmp_path, damage, words):
    _sa1b_pair(tmp_path)
    damage(tmp_path)
    with pytest.raises(UserError, match=words) as e:
        load_dataset(tmp_path)
    assert "sa_1." in str(e.value) and "\n" not in str(e.value)


def test_image_that_does_not_decode_fully_is_one_line(tmp_path):
    _sa1b_pair(tmp_path, h=64, w=64)
    data = (tmp_path / "sa_1.jpg").read_bytes()
    (tmp_path / "sa_1.jpg").write_bytes(data[:len(data) // 2])
    [img] = load_dataset(tmp_path)  # the header is whole
    with pytest.raises(UserError, match="sa_1.jpg"):
        img.load_image()


def test_split_folders(tmp_path):
    for split in ("train", "val"):
        (tmp_path / split).mkdir()
        _sa1b_pair(tmp_path / split)
    assert len(load_dataset(tmp_path, split="val")) == 1
    with pytest.raises(UserError, match="choose one"):
        load_dataset(tmp_path)
    with pytest.raises(UserError, match="no test/"):
        load_dataset(tmp_path, split="test")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no sa_"):
        load_dataset(tmp_path / "empty")


# -------------------------------------------------------------------------------------------------------- COCO
def test_coco_reader_polygons_rle_and_crowds(tmp_path):
    from PIL import Image

    h, w = 20, 30
    for name in ("a.png", "b.png"):
        Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(tmp_path / name)
    blob = np.zeros((h, w), bool)
    blob[3:9, 10:25] = True
    rle = rle_encode(blob)
    crowd = np.zeros((h, w), bool)
    crowd[12:18, 2:6] = True
    runs = [int(v) for v in counts_from_string(rle_encode(crowd)["counts"])]  # uncompressed: a list of runs
    data = {
        "images": [{"id": 1, "file_name": "a.png", "height": h, "width": w},
                   {"id": 2, "file_name": "b.png", "height": h, "width": w}],
        "annotations": [
            {"id": 11, "image_id": 1, "category_id": 3, "iscrowd": 0, "area": 50.0, "bbox": [2, 2, 8, 8],
             "segmentation": [[2, 2, 10, 2, 10, 10, 2, 10]]},
            {"id": 12, "image_id": 1, "category_id": 4, "iscrowd": 0, "area": 90.0, "bbox": [10, 3, 15, 6],
             "segmentation": rle},
            {"id": 13, "image_id": 2, "category_id": 3, "iscrowd": 1, "area": 24.0, "bbox": [2, 12, 4, 6],
             "segmentation": {"size": [h, w], "counts": runs}},
        ],
        "categories": [{"id": 3, "name": "cat"}, {"id": 4, "name": "dog"}],
    }
    ann_file = tmp_path / "instances.json"
    ann_file.write_text(json.dumps(data))
    images = load_dataset(tmp_path, annotations=ann_file)
    assert [i.image_id for i in images] == [1, 2]
    ref = COCO(str(ann_file))
    for img in images:
        masks = img.masks()
        for a, m in zip(img.annotations, masks):
            assert np.array_equal(m, ref.annToMask(ref.anns[a["id"]]).astype(bool)), a["id"]
    assert images[1].annotations[0]["iscrowd"] == 1 and np.array_equal(images[1].masks()[0], crowd)
    assert [a["category"] for a in images[0].annotations] == ["cat", "dog"]
    assert isinstance(images[0].annotations[0]["segmentation"]["counts"], str)
    assert images[0].load_image().shape == (h, w, 3)
    # bad input: one line naming the file
    for change, words in [(lambda d: d["annotations"][0].pop("segmentation"), "annotations\\[0\\]"),
                          (lambda d: d["annotations"][1].update(segmentation=rle_encode(np.ones((h, w + 1), bool))),
                           "not the image size"),
                          (lambda d: d["annotations"][0].update(image_id=99), "not among the images"),
                          (lambda d: d["images"][1].update(file_name="missing.png"), "missing.png"),
                          (lambda d: d["annotations"][0].update(segmentation=[[1, 2, 3]]), "polygon")]:
        bad = json.loads(json.dumps(data))
        change(bad)
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(UserError, match=words):
            load_dataset(tmp_path, annotations=tmp_path / "bad.json")


# ------------------------------------------------------------------------------------------------ generate-data
def gen(out, *more):
    return generate_main(["--out", str(out), "--size", "48", "--quiet", *more])


def files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def test_generate_data_layout_and_resume(tmp_path, capsys):
    out = tmp_path / "data"
    assert gen(out, "--train", "3", "--val", "1", "--test", "0") == 0
    assert "4 images" in capsys.readouterr().out
    names = sorted(files(out))
    assert names == ["dataset.json", "train/sa_1.jpg", "train/sa_1.json", "train/sa_2.jpg", "train/sa_2.json",
                     "train/sa_3.jpg", "train/sa_3.json", "val/sa_1.jpg", "val/sa_1.json"]
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["complete"] and meta["counts"] == {"train": 3, "val": 1, "test": 0}
    assert meta["arguments"]["seed"] == 0 and meta["arguments"]["size"] == 48 and meta["version"] == render.VERSION
    assert len(load_dataset(out, split="train")) == 3
    first = (out / "train" / "sa_2.json").stat().st_mtime_ns
    # a half-written pair (a kill between the JPEG and the JSON) and a temporary file of a dead process
    (out / "train" / "sa_3.json").unlink()
    (out / "train" / ".sa_3.999999999.abcdefgh.tmp.json").write_text("{")
    assert gen(out, "--train", "5", "--val", "1", "--test", "0") == 0
    assert "kept 3" in capsys.readouterr().out  # train 1, 2 and val 1
    assert (out / "train" / "sa_2.json").stat().st_mtime_ns == first
    assert not (out / "train" / ".sa_3.999999999.abcdefgh.tmp.json").exists()
    fresh = tmp_path / "fresh"
    gen(fresh, "--train", "5", "--val", "1", "--test", "0")
    assert files(out) == files(fresh)  # a resumed run gives the same bytes
    # a smaller count trims what is beyond it
    gen(out, "--train", "2", "--val", "1", "--test", "0")
    assert sorted(p.name for p in (out / "train").iterdir() if not p.name.startswith(".")) == \
        ["sa_1.jpg", "sa_1.json", "sa_2.jpg", "sa_2.json"]


def test_generate_data_refuses_a_foreign_folder_and_bad_input(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert gen(out, "--train", "1", "--val", "0", "--test", "0") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "dataset.json" in err and "\n" not in err
    assert not (out / "train").exists()
    assert gen(out, "--train", "1", "--val", "0", "--test", "0", "--overwrite") == 0
    assert (out / "notes.txt").read_text() == "keep me"
    capsys.readouterr()
    # the same folder with another seed: refused, the images kept
    before = files(out)
    assert gen(out, "--train", "1", "--val", "0", "--test", "0", "--seed", "1") == 2
    err = capsys.readouterr().err.strip()
    assert "seed" in err and "\n" not in err and files(out) == before
    # --out a file; a dataset.json that is not ours; bad numbers
    (tmp_path / "f").write_text("x")
    assert gen(tmp_path / "f", "--train", "1") == 2
    assert "\n" not in capsys.readouterr().err.strip()
    other = tmp_path / "other"
    other.mkdir()
    (other / "dataset.json").write_text("{broken")
    assert gen(other, "--train", "1") == 2
    err = capsys.readouterr().err.strip()
    assert "dataset.json" in err and "\n" not in err
    assert gen(other, "--train", "1", "--val", "0", "--test", "0", "--overwrite") == 0
    assert json.loads((other / "dataset.json").read_text())["complete"]
    for bad in (["--size", "8"], ["--train", "-1"], ["--seed", "x"]):
        with pytest.raises(SystemExit) as e:
            gen(tmp_path / "x", *bad)
        assert e.value.code == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_generate_data_killed_run_continues(tmp_path):
    """A run killed with SIGKILL mid-way, started again, ends with the same files as an uninterrupted run."""
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "vislearn", "segment", "generate-data", "--out", str(out), "--size", "40",
           "--train", "400", "--val", "0", "--test", "0", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and len(list((out / "train").glob("sa_*.json")) if (out / "train").is_dir()
                                             else []) < 5:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = len(list((out / "train").glob("sa_*.json")))
    assert 5 <= done < 400
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["complete"] is False
    # continue with a smaller count (keeps this test short): the images already written are kept
    keep = {p.name: p.stat().st_mtime_ns for p in (out / "train").glob("sa_*.json") if int(p.stem[3:]) <= 5}
    assert gen_small(out) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "train").glob("sa_*.json")
            if int(p.stem[3:]) <= 5} == keep
    fresh = tmp_path / "fresh"
    assert gen_small(fresh) == 0
    assert files(out) == files(fresh)


def gen_small(out):
    return generate_main(["--out", str(out), "--size", "40", "--train", "8", "--val", "0", "--test", "0", "--quiet"])
