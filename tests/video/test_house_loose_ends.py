"""Loose ends of the restructuring: the batched box-store path that real SSv2 training takes (`make demo`
never runs it) trained through the real CLI, and the data layer's import structure (the store's public
arrays, no annotations <-> box_store import cycle)."""
import ast
import json
import math
import os
import pstats
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from box_data import make_box_split

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "vislearn" / "video" / "data"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def cli(*args, timeout=600):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=ENV, cwd=ROOT,
                          timeout=timeout)


def calls(profile: Path, file_name: str, function: str) -> int:
    """How many times the profiled run called `function` of a module file (0: never)."""
    found = [stat[1] for (path, _, name), stat in pstats.Stats(str(profile)).stats.items()
             if Path(path).name == file_name and name == function]
    return sum(found)


def train_profiled(split: Path, boxes: Path, out: Path) -> subprocess.CompletedProcess:
    """`vislearn video train` as real SSv2 training runs it (STIN on boxes, no frames), under cProfile:
    the profile says which code made the batches. workers=0 keeps the loading in the profiled process."""
    over = {"split": split, "boxes": boxes, "model": "stin_oie", "model_args.feature_dim": 32, "epochs": 3,
            "batch_size": 8, "workers": 0, "threads": 1, "frame_size": "[427,240]", "lr": 0.05, "lr_steps": "[2]",
            "log_every": 0, "device": "cpu", "out": out}
    return cli("-m", "cProfile", "-o", out.parent / f"{out.name}.prof", "-m", "vislearn.video.actions.train",
               *(f"{k}={v}" for k, v in over.items()))


@pytest.fixture(scope="module")
def store_and_json_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("batched")
    split, boxes_json = make_box_split(root, videos=96)  # 72 training videos: 9 batches of 8 per epoch
    store = root / "store"
    r = cli("-m", "vislearn", "video", "data", "index-boxes", boxes_json, "--out", store, "--quiet")
    assert r.returncode == 0, r.stderr
    runs = {}
    for name, boxes in (("store", store), ("json", boxes_json)):
        r = train_profiled(split, boxes, root / name)
        assert (root / name / "results.json").is_file(), r.stderr[-3000:]  # cProfile exits 0 whatever train returns
        runs[name] = root / name
    return runs


def epochs(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_training_on_a_box_store_takes_the_batched_path(store_and_json_runs):
    run = store_and_json_runs["store"]
    prof = run.parent / "store.prof"
    losses = [m["train_loss"] for m in epochs(run)]
    assert len(losses) == 3 and all(map(math.isfinite, losses)), losses
    assert losses[-1] < min(losses[0], math.log(4)), losses  # falls, below chance (4 classes); ~1.42 -> 0.86 here
    res = json.loads((run / "results.json").read_text())
    assert res["evaluation"]["videos"] == 24 and math.isfinite(res["evaluation"]["top1"])
    # every batch (training, held-out and evaluation) came whole from CoordBatcher, none item by item
    made = calls(prof, "coord_batch.py", "__call__")
    assert made >= 3 * (res["data"]["train"]["kept"] // 8), made
    assert calls(prof, "clip_dataset.py", "__getitem__") == 0


def test_the_batched_path_trains_as_the_json_path(store_and_json_runs):
    """The control: the same run on the JSON file goes item by item (so the profile tells the paths
    apart) and, batches being equal to stacked items, follows the same trajectory."""
    json_run, store_run = store_and_json_runs["json"], store_and_json_runs["store"]
    prof = json_run.parent / "json.prof"
    assert calls(prof, "coord_batch.py", "__call__") == 0 and calls(prof, "clip_dataset.py", "__getitem__") > 0
    for a, b in zip(epochs(store_run), epochs(json_run), strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5), (a, b)
        assert a["holdout_top1"] == b["holdout_top1"]
    sa, sb = np.load(store_run / "scores.npz"), np.load(json_run / "scores.npz")
    np.testing.assert_allclose(sa["scores"], sb["scores"], rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------------- import structure
def imported_modules(path: Path) -> set[str]:
    """Modules a file imports anywhere (module level, in functions, under TYPE_CHECKING), relative
    imports resolved against vislearn.video.data."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "vislearn.video.data." if node.level == 1 else ""
            found.add(base + (node.module or ""))
    return found


def test_box_store_builds_on_annotations_not_the_reverse(tmp_path):
    from vislearn.video.data import annotations, box_store

    assert "vislearn.video.data.annotations" in imported_modules(DATA / "box_store.py")
    # `open_boxes` (a store folder or a JSON file) lives beside the store
    assert box_store.open_boxes.__module__ == "vislearn.video.data.box_store"
    split, boxes_json = make_box_split(tmp_path, videos=2, frames=2)
    box_store.index_boxes([boxes_json], tmp_path / "store")
    assert isinstance(box_store.open_boxes(tmp_path / "store"), box_store.BoxStore)
    assert isinstance(box_store.open_boxes(boxes_json), annotations.AnnotationFile)
    # annotations never imports the store, not even inside a function
    tree = ast.parse((DATA / "annotations.py").read_text())
    assert not hasattr(annotations, "open_boxes")
    assert not any(isinstance(n, (ast.Import, ast.ImportFrom)) and "box_store" in ast.dump(n) for n in ast.walk(tree))


def test_coord_batch_does_not_import_clip_dataset():
    """clip_dataset builds a CoordBatcher: the other way round would be a cycle (even under TYPE_CHECKING
    or in a function); the frame height comes from `frame_size`, below both."""
    assert "vislearn.video.data.clip_dataset" not in imported_modules(DATA / "coord_batch.py")


def test_coord_batcher_reads_only_the_public_store_api():
    """No `x._name` in coord_batch.py but on `self`: the store's arrays come from its documented properties."""
    private = [ast.unparse(n) for n in ast.walk(ast.parse((DATA / "coord_batch.py").read_text()))
               if isinstance(n, ast.Attribute) and n.attr.startswith("_") and not n.attr.startswith("__")
               and not (isinstance(n.value, ast.Name) and n.value.id == "self")]
    assert private == []


def test_store_arrays_are_the_walk_from_a_video_to_its_boxes(tmp_path):
    from vislearn.video.data.box_store import BoxStore, index_boxes, open_boxes

    split, boxes_json = make_box_split(tmp_path, videos=6, frames=5)
    index_boxes([boxes_json], tmp_path / "store")
    store, js = open_boxes(tmp_path / "store"), open_boxes(boxes_json)
    assert isinstance(store, BoxStore)
    for vid in js.video_ids():
        want = js.get(vid)
        row = int(store.rows([vid])[0])
        f0, f1 = store.video_frames[row], store.video_frames[row + 1]
        assert list(store.frame_index[f0:f1]) == list(want.frame_index)
        b0, b1 = store.frame_boxes[f0], store.frame_boxes[f1]
        np.testing.assert_array_equal(store.xyxy[b0:b1], want.xyxy)
        assert [store.string(int(i)) for i in store.box_strings[b0:b1, 0]] == want.track
        assert [store.string(int(i)) for i in store.box_strings[b0:b1, 1]] == want.category
    for name in ("video_frames", "frame_index", "frame_boxes", "xyxy", "box_strings"):
        assert isinstance(getattr(store, name), np.memmap), name  # shared through the page cache, read-only
        assert not getattr(store, name).flags.writeable
