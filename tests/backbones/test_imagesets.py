"""The image set for classification (`vislearn.backbones.imagesets`): seeded per image, its classes and counts,
the folder and .npz writers read back by `load_images`, scikit-learn's digits, every bad input one line and
exit 2, and the classes learnable by a linear classifier on pixels but not by the mean colour."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cli_helpers import call, one_line
from vislearn.backbones.__main__ import main as backbones_main
from vislearn.backbones.imagesets import CLASS_NAMES, SPLITS, VERSION, load_images, make_set, render_image, \
    render_images
from vislearn.backbones.imagesets.command import main
from vislearn.backbones.imagesets.load import cache_dir, digits_split
from vislearn.common.drawing.objects import NOUNS
from vislearn.common.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def small_set():
    return make_set(seed=3, size=32, per_class=(2, 1, 1))


def test_an_image_depends_on_seed_split_and_index_only():
    a, la = render_image(0, "train", 30)
    b, lb = render_image(0, "train", 30)
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8 and la == lb == 30 % len(CLASS_NAMES)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, render_image(1, "train", 30)[0])  # another seed
    assert not np.array_equal(a, render_image(0, "val", 30)[0])  # another split
    many, labels = render_images(0, "train", range(25, 35))  # made among others, in another order
    assert np.array_equal(many[5], a) and labels[5] == la
    few, _ = render_images(0, "train", [31, 30])
    assert np.array_equal(few[1], a)
    assert render_image(0, "train", 30, size=128)[0].shape == (128, 128, 3)


def test_classes_counts_and_workers(small_set):
    assert len(CLASS_NAMES) >= 20 and len(set(CLASS_NAMES)) == len(CLASS_NAMES)
    assert CLASS_NAMES[:len(NOUNS)] == tuple(n.name for n in NOUNS)  # the video set's nouns, unchanged, first
    C = len(CLASS_NAMES)
    for split, per_class in zip(SPLITS, (2, 1, 1)):
        images, labels = small_set[split]
        assert images.shape == (per_class * C, 32, 32, 3) and labels.dtype == np.int64
        assert np.bincount(labels, minlength=C).tolist() == [per_class] * C
    two = make_set(seed=3, size=32, per_class=(2, 1, 1), workers=2)  # processes: the same pixels
    assert all(np.array_equal(two[s][0], small_set[s][0]) for s in SPLITS)


def test_folder_and_npz_round_trip(tmp_path, small_set):
    rc, out, err = call(main, "--out", tmp_path / "set", "--size", 32, "--per-class", "2,1,1", "--seed", 3, "--quiet")
    assert rc == 0, err
    meta = json.loads((tmp_path / "set" / "imageset.json").read_text())
    assert meta["version"] == VERSION and meta["seed"] == 3 and meta["size"] == 32
    assert meta["classes"] == list(CLASS_NAMES) and meta["counts"] == {s: n * len(CLASS_NAMES) for s, n in
                                                                     zip(SPLITS, (2, 1, 1))}
    assert (tmp_path / "set" / "train" / "red_ball" / "000000.png").is_file()
    rc, _, err = call(main, "--out", tmp_path / "set.npz", "--size", 32, "--per-class", "2,1,1", "--seed", 3,
                      "--quiet")
    assert rc == 0, err
    for split in SPLITS:
        images, labels = small_set[split]
        sorted_names = sorted(n.replace(" ", "_") for n in CLASS_NAMES)
        rank = np.array([sorted_names.index(n.replace(" ", "_")) for n in CLASS_NAMES])
        order = np.lexsort((np.arange(len(labels)), rank[labels]))  # class folder by folder, files in index order
        folder = load_images(tmp_path / "set", split)
        assert folder.classes == tuple(sorted_names)
        assert folder.images.dtype == torch.uint8 and folder.labels.dtype == torch.int64
        names = [folder.classes[k] for k in folder.labels.tolist()]
        assert names == [CLASS_NAMES[k].replace(" ", "_") for k in labels[order]]
        folder_images = folder.images.permute(0, 2, 3, 1).numpy()
        assert np.array_equal(folder_images, images[order])  # PNG: lossless
        npz = load_images(str(tmp_path / "set.npz"), split)
        assert npz.classes == CLASS_NAMES and npz.labels.tolist() == labels.tolist()
        assert np.array_equal(npz.images.permute(0, 2, 3, 1).numpy(), images)
    assert load_images(tmp_path / "set", "val", size=48).images.shape[1:] == (3, 48, 48)
    assert load_images(tmp_path / "set.npz", "val", size=48).images.shape[1:] == (3, 48, 48)
    # a second run replaces the set it wrote; --show reads it as trainers do
    assert call(main, "--out", tmp_path / "set", "--size", 32, "--per-class", "1,1,1", "--quiet")[0] == 0
    assert not (tmp_path / "set" / "train" / "red_ball" / "000024.png").exists()
    rc, out, err = call(main, "--show", tmp_path / "set")
    assert rc == 0 and f"{len(CLASS_NAMES)} classes" in out and "3x32x32" in out, err


def test_objects_source_is_cached(monkeypatch):
    calls = []
    import vislearn.backbones.imagesets.load as load

    def counted(seed, size, per_class):
        calls.append((seed, size, per_class))
        return make_set(seed, size, per_class)

    monkeypatch.setattr(load, "make_set", counted)
    monkeypatch.setattr(load, "DEFAULT_PER_CLASS", (1, 1, 1))  # the default counts would take seconds
    first = load_images("objects", "val", size=32, seed=5)
    assert (cache_dir() / f"objects-v{VERSION}-s5-32.npz").is_file()
    again = load_images("objects", "val", size=32, seed=5)
    test = load_images("objects", "test", size=32, seed=5)
    assert calls == [(5, 32, (1, 1, 1))] and torch.equal(first.images, again.images) and len(test.labels) == len(CLASS_NAMES)
    assert np.array_equal(first.images[3].permute(1, 2, 0).numpy(), render_image(5, "val", 3, size=32)[0])


def test_digits():
    parts = {s: load_images("digits", s) for s in SPLITS}
    assert sum(len(p.labels) for p in parts.values()) == 1797
    assert parts["train"].images.shape[1:] == (3, 32, 32) and parts["train"].classes == tuple("0123456789")
    assert load_images("digits", "test", size=16, seed=7).images.shape[1:] == (3, 16, 16)
    assert torch.equal(load_images("digits", "test", seed=7).images, parts["test"].images)  # no seed in the split
    n = {s: len(p.labels) for s, p in parts.items()}
    assert abs(n["train"] / 1797 - 0.6) < 0.02 and abs(n["val"] / 1797 - 0.15) < 0.02
    for p in parts.values():  # stratified: every digit in every split
        assert len(p.labels.unique()) == 10
    from sklearn.datasets import load_digits

    split = digits_split(load_digits().target)  # one split per image: no image in two splits
    assert np.bincount(split).tolist() == [n["train"], n["val"], n["test"]]


def _bad(tmp_path):
    from PIL import Image

    empty = tmp_path / "empty"
    (empty / "train" / "cat").mkdir(parents=True)
    corrupt = tmp_path / "corrupt"
    (corrupt / "train" / "cat").mkdir(parents=True)
    (corrupt / "train" / "cat" / "a.png").write_bytes(b"not a png at all")
    mixed = tmp_path / "mixed"
    for name, side in (("a", 8), ("b", 9)):
        (mixed / "train" / name).mkdir(parents=True)
        Image.fromarray(np.zeros((side, side, 3), np.uint8)).save(mixed / "train" / name / "x.png")
    keys = tmp_path / "keys.npz"
    np.savez(keys, images=np.zeros((2, 4, 4, 3), np.uint8))
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    return [(["--show", empty], f"{empty / 'train' / 'cat'}: no images"),
            (["--show", corrupt], f"{corrupt / 'train' / 'cat' / 'a.png'}: not a readable image"),
            (["--show", mixed], "give a size"),
            (["--show", keys], f"{keys}: missing key(s) labels, split, classes"),
            (["--show", tmp_path / "nowhere.npz"], "nowhere.npz: file not found"),
            (["--out", user], f"{user}: folder is not empty"),
            (["--out", user / "notes.txt"], "notes.txt: exists and is not a folder"),
            (["--out", tmp_path / "x", "--per-class", "1,2"], "--per-class"),
            (["--out", tmp_path / "x", "--size", "16"], "--size")]


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    for argv, expected in _bad(tmp_path):
        rc, out, err = call(backbones_main, "imageset", *argv)
        assert rc == 2, (argv, err)
        line = one_line(err)
        assert expected in line and "error" in line, (argv, line)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"  # a user's folder is never replaced
    assert not (tmp_path / "x").exists()
    with pytest.raises(UserError, match="unknown split 'training'"):
        load_images("digits", "training")
    with pytest.raises(UserError, match="no such split folder"):
        load_images(tmp_path / "empty", "val")
    assert load_images(tmp_path / "mixed", "train", size=8).images.shape == (2, 3, 8, 8)


def test_classes_are_learnable_but_not_by_mean_colour():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = make_set(seed=0, size=32, per_class=(60, 0, 30))
    (x_train, y_train), (x_test, y_test) = data["train"], data["test"]
    chance = 1 / len(CLASS_NAMES)

    def pooled(x, k):  # k x k average-pooled pixels
        s = x.shape[1] // k
        return x.reshape(len(x), k, s, k, s, 3).mean((2, 4)).reshape(len(x), -1) / 255.0

    pixels = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, C=0.01))
    accuracy = pixels.fit(pooled(x_train, 8), y_train).score(pooled(x_test, 8), y_test)
    colour = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))
    colour_accuracy = colour.fit(pooled(x_train, 1), y_train).score(pooled(x_test, 1), y_test)
    assert accuracy > 3 * chance, accuracy
    assert colour_accuracy < 0.7 * accuracy and colour_accuracy < 0.3, (colour_accuracy, accuracy)
