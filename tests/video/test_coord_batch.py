"""The batched coordinate loader (`datasets.coord_batch`) against the per-item path it speeds up:
the same seed gives exactly the same batch, on the real sample and on messy generated boxes; the
DataLoader's worker count does not change the batches; what it does not cover falls back."""

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from vislearn.video.actions.samplers import GlobalBatchSampler
from vislearn.video.data.annotations import AnnotationFile
from vislearn.video.data.box_store import BoxStore, build_store, index_boxes
from vislearn.video.data.clip_dataset import ClipDataset, collate
from vislearn.video.data.draws import ItemRandom, item_keys, uniforms
from vislearn.video.data.ssv2 import Record
from vislearn.video.data.transforms import HorizontalFlip

KEYS = ("boxes", "box_ids", "box_mask", "label")


def messy_boxes(n_videos=40, seed=0):
    """Something-Else JSON with what real data has: missing boxes, gaps in the annotated frames,
    no hand, more objects than slots, a box outside the frame, a video whose only record is empty."""
    rng = np.random.default_rng(seed)
    data = {}
    for v in range(n_videos):
        vid = str(5000 + v)
        tracks = (["hand"] if v % 5 else []) + [f"{k:04d}" for k in sorted(rng.choice(6, rng.integers(1, 6), replace=False))]
        frames = sorted(rng.choice(60, rng.integers(1, 40), replace=False))
        records = []
        for f in frames:
            labels = []
            for t in tracks:
                if rng.random() < 0.25:
                    continue
                x1, y1 = rng.uniform(-40, 420), rng.uniform(-20, 230)
                labels.append({"box2d": {"x1": x1, "y1": y1, "x2": x1 + rng.uniform(0, 150), "y2": y1 + rng.uniform(0, 90)},
                               "category": "thing", "standard_category": t})
            records.append({"name": f"{vid}/{f + 1:04d}.jpg", "nr_instances": len(labels), "gt_placeholders": [],
                            "labels": labels})
        data[vid] = records
    data["5999"] = [{"name": "5999/0003.jpg", "nr_instances": 0, "gt_placeholders": [], "labels": []}]
    data["5998"] = []  # no record at all
    return data


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("messy")
    (folder / "boxes.json").write_text(json.dumps(messy_boxes()))
    index_boxes([folder / "boxes.json"], folder / "store")
    store = BoxStore(folder / "store")
    labels = {f"class {k}": k for k in range(5)}
    records = [Record(id=v, template=f"class {i % 5}", label="", placeholders=[]) for i, v in enumerate(store.video_ids())]
    return store, labels, records


def assert_same_batches(ds, batch_size=7, epochs=(0, 3)):
    assert ds._batcher is not None
    for epoch in epochs:
        ds.set_epoch(epoch)
        order = np.random.default_rng(epoch).permutation(len(ds))
        for start in range(0, len(ds), batch_size):
            idx = order[start:start + batch_size].tolist()
            fast, slow = collate(ds.__getitems__(idx)), collate([ds[i] for i in idx])
            assert fast.keys() == slow.keys() and fast["video_id"] == slow["video_id"]
            for k in KEYS:
                assert fast[k].dtype == slow[k].dtype and torch.equal(fast[k], slow[k]), (epoch, k)


@pytest.mark.parametrize("crop", ["multiscale", "center", "full"])
@pytest.mark.parametrize("train", [True, False])
def test_batched_equals_per_item_on_messy_boxes(messy, crop, train):
    store, labels, records = messy
    for slots in (2, 4):
        ds = ClipDataset(records, labels, store, num_slots=slots, train=train, crop=crop, input_size=112, seed=3)
        assert_same_batches(ds)  # frame sizes from the box extent


def test_batched_equals_per_item_with_given_frame_sizes(messy):
    store, labels, records = messy
    sizes = {r.id: (320 + 16 * (i % 3), 240) for i, r in enumerate(records[::2])}
    ds = ClipDataset(records, labels, store, frame_sizes=sizes, default_frame_size=(427, 240), seed=1)
    assert_same_batches(ds)
    ds = ClipDataset(records, labels, store, frame_sizes=lambda vid: sizes.get(vid), seed=1, num_box_frames=5)
    assert_same_batches(ds)


def test_batched_equals_per_item_on_the_real_sample(sample_boxes, sample_dir, tmp_path):
    build_store(list(sample_boxes), tmp_path / "store")
    store = BoxStore(tmp_path / "store")
    labels = {"x": 0}
    records = [Record(id=v, template="x", label="", placeholders=[]) for v in store.video_ids()]
    for seed in (0, 1):
        assert_same_batches(ClipDataset(records, labels, store, default_frame_size=(427, 240), seed=seed), epochs=(0, 1, 2))


def test_a_store_without_any_frame(tmp_path):
    (tmp_path / "boxes.json").write_text(json.dumps({"7": []}))
    index_boxes([tmp_path / "boxes.json"], tmp_path / "store")
    ds = ClipDataset([Record(id="7", template="x", label="", placeholders=[])], {"x": 0}, BoxStore(tmp_path / "store"))
    batch = collate(ds.__getitems__([0, 0]))
    assert batch["boxes"].shape == (2, 8, 4, 4) and not batch["box_mask"].any()
    assert torch.equal(batch["boxes"], collate([ds[0], ds[0]])["boxes"])


def test_workers_and_epochs_with_the_batched_loader(messy):
    store, labels, records = messy
    ds = ClipDataset(records, labels, store, default_frame_size=(427, 240), seed=5)

    def run(workers, epoch):
        sampler = GlobalBatchSampler(len(ds), 8, seed=5)
        sampler.set_epoch(epoch)
        ds.set_epoch(epoch)
        return list(DataLoader(ds, batch_sampler=sampler, num_workers=workers, collate_fn=collate))

    a, b, c = run(0, 1), run(2, 1), run(0, 2)
    assert len(a) == len(b) == len(records) // 8
    for x, y in zip(a, b):
        assert x["video_id"] == y["video_id"] and all(torch.equal(x[k], y[k]) for k in KEYS)
    assert any(not torch.equal(x["boxes"], y["boxes"]) for x, y in zip(a, c))


def test_what_it_does_not_cover_falls_back_to_items(messy, sample_boxes):
    store, labels, records = messy
    flip = HorizontalFlip(labels, {})
    for ds in (ClipDataset(records, labels, store, official_slots=True, default_frame_size=(427, 240)),
               ClipDataset(records, labels, store, flip=flip, default_frame_size=(427, 240)),
               ClipDataset(records, labels, store, train=False, num_crops=3, default_frame_size=(427, 240))):
        assert ds._batcher is None
        idx = [3, 1, 4, 1, 5]
        fast, slow = collate(ds.__getitems__(idx)), collate([ds[i] for i in idx])
        assert all(torch.equal(fast[k], slow[k]) for k in KEYS)
    json_ds = ClipDataset([Record(id="2", template="x", label="", placeholders=[])], {"x": 0}, sample_boxes,
                          default_frame_size=(427, 240))
    assert json_ds._batcher is None and isinstance(sample_boxes, AnnotationFile)


def test_item_draws_equal_batch_draws_and_look_uniform():
    keys = item_keys(7, 2, np.arange(5000))
    u = uniforms(keys, 0, 8)
    one = ItemRandom(keys[123], 0)
    assert np.array_equal(one.random(3), u[123, :3]) and one.random() == u[123, 3]
    assert 0 <= ItemRandom(keys[9], 2).integers(13) < 13
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.std() - 12 ** -0.5) < 0.01
    assert abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 0.05  # draws of one item are not correlated
    assert not np.array_equal(u, uniforms(item_keys(7, 3, np.arange(5000)), 0, 8))  # the epoch matters
    assert not np.array_equal(u, uniforms(keys, 1, 8))  # streams are independent
