import logging

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from vislearn.video.data.annotations import AnnotationFile, parse_video
from vislearn.video.data.clip_dataset import ClipDataset, box_extent_size, collate
from vislearn.common.errors import UserError
from vislearn.video.data.sampling import StridedClipSampler
from vislearn.video.data.slots import fill_slots
from vislearn.video.data.ssv2 import Record, load_labels
from vislearn.video.data.transforms import HorizontalFlip, left_right_swap

SAMPLE_IDS = ["2", "4", "2003", "6981", "57082", "151201", "862"]
OFFICIAL_CLIP = dict(num_rgb_frames=16, rgb_sampler="strided")  # 16 frames 2 apart (default: 8 segments)


# ---------------------------------------------------------------- helpers
def frame_records(vid, per_frame):
    """per_frame: list (one per frame) of lists of (track, (x1, y1, x2, y2))."""
    return [{"name": f"{vid}/{i + 1:04d}.jpg", "nr_instances": len(boxes), "gt_placeholders": [],
             "labels": [{"box2d": dict(zip(("x1", "y1", "x2", "y2"), xyxy)), "category": t, "standard_category": t}
                        for t, xyxy in boxes]}
            for i, boxes in enumerate(per_frame)]


def vbox(per_frame, vid="v"):
    return parse_video(vid, frame_records(vid, per_frame))


LABELS = {"Pushing something from left to right": 0, "Pushing something from right to left": 1,
          "Holding something": 2, "Dropping something into something": 3}


def rec(vid, cls="Holding something"):
    return Record(id=str(vid), template=cls, label=cls, placeholders=[])


@pytest.fixture(scope="module")
def sample_labels(sample_dir):
    return load_labels(sample_dir / "splits" / "compositional" / "labels.json")


@pytest.fixture(scope="module")
def sample_records(sample_labels):
    names = sorted(sample_labels)
    return [rec(v, names[i * 7]) for i, v in enumerate(SAMPLE_IDS)]


class CountingOpener:
    """A video opener that counts calls (and refuses to open anything)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        raise AssertionError("a coordinate-only dataset opened a video")


# ---------------------------------------------------------------- slots
def test_clean_slots_hand_first_objects_in_order_overflow_dropped():
    A, B = (10, 10, 20, 20), (30, 30, 60, 60)
    vb = vbox([[("0001", A), ("hand", B), ("0000", A), ("0003", A), ("0002", B)],
               [("0000", B)],
               []])
    s = fill_slots(vb, [0, 1, 2, 5, 0], num_slots=4)
    assert s.tracks == ["hand", "0000", "0001", "0002"] and s.dropped == ["0003"]
    assert s.box_ids.tolist() == [1, 2, 2, 2] and s.box_ids.dtype == np.int64
    assert s.boxes.shape == (5, 4, 4) and s.box_mask.shape == (5, 4)
    assert s.box_mask[0].tolist() == [True, True, True, True]
    assert s.box_mask[1].tolist() == [False, True, False, False]
    assert not s.box_mask[2].any()  # annotated frame without boxes
    assert not s.box_mask[3].any()  # frame 5 has no annotation record
    np.testing.assert_array_equal(s.boxes[0, 0], B)  # the hand
    np.testing.assert_array_equal(s.boxes[1, 1], B)
    assert (s.boxes[~s.box_mask] == 0).all()
    np.testing.assert_array_equal(s.boxes[4], s.boxes[0])  # repeated frame


def test_clean_slots_without_hand_leave_slot_0_empty():
    vb = vbox([[("0000", (1, 1, 5, 5))]])
    s = fill_slots(vb, [0, 0])
    assert s.tracks == [None, "0000", None, None]
    assert s.box_ids.tolist() == [0, 2, 0, 0]
    assert s.box_mask.tolist() == [[False, True, False, False]] * 2


def test_official_slots_objects_first_hand_last_no_mask():
    A = (10, 10, 20, 20)
    vb = vbox([[("hand", A), ("0000", A)], [("0000", A)], [("0001", A)]])
    s = fill_slots(vb, [0, 1], num_slots=4, official_slots=True)  # track 0001 not on the sampled frames
    assert s.tracks == ["0000", "hand", None, None]
    assert s.box_ids.tolist() == [2, 1, 0, 0]
    # no mask semantics: used slots are "on" on every frame, zero box where the track is absent
    assert s.box_mask.tolist() == [[True, True, False, False]] * 2
    assert (s.boxes[1, 1] == 0).all()
    s2 = fill_slots(vbox([[("hand", A), ("0000", A), ("0001", A), ("0002", A)]]), [0], num_slots=2, official_slots=True)
    assert s2.tracks == ["0000", "0001"] and s2.dropped == ["0002", "hand"]


# ---------------------------------------------------------------- coordinate-only dataset
def test_coordinate_dataset_on_real_sample_never_opens_a_video(sample_boxes, sample_labels, sample_records, tmp_path):
    root = tmp_path / "videos"
    root.mkdir()
    for vid in SAMPLE_IDS:  # unreadable "videos": opening any of them would fail
        (root / f"{vid}.webm").write_bytes(b"garbage")
    opener = CountingOpener()
    ds = ClipDataset(sample_records, sample_labels, sample_boxes, video_root=root, input_size=112,
                     default_frame_size=(427, 240), video_opener=opener, seed=3)
    assert len(ds) == 7 and ds.report["kept"] == 7
    items = [ds[i] for i in range(len(ds))]
    ds2 = ClipDataset(sample_records, sample_labels, sample_boxes, video_root=tmp_path / "absent",
                      default_frame_size=(427, 240), video_opener=opener, train=False)
    items += [ds2[i] for i in range(len(ds2))]
    assert opener.calls == 0
    for it in items:
        assert set(it) == {"boxes", "box_ids", "box_mask", "label", "video_id"}
        assert it["boxes"].shape == (8, 4, 4) and it["boxes"].dtype == torch.float32
        assert it["box_ids"].shape == (4,) and it["box_ids"].dtype == torch.long
        assert it["box_mask"].shape == (8, 4) and it["box_mask"].dtype == torch.bool
        assert it["label"].dtype == torch.long and it["label"].ndim == 0
        b = it["boxes"]
        assert (b >= 0).all() and (b <= 1).all()
        assert (b[~it["box_mask"]] == 0).all() and it["box_mask"].any()
        assert (b[..., 2:][it["box_mask"]] > 0).all()
        assert it["box_ids"][0] == 1  # every sample video has a hand: slot 0
    assert items[0]["video_id"] == "2" and items[0]["label"] == ds.labels_of[0]


def test_workers_give_identical_batches_and_epochs_are_reproducible(sample_boxes, sample_labels, sample_records):
    ds = ClipDataset(sample_records, sample_labels, sample_boxes, input_size=112, default_frame_size=(427, 240), seed=7)

    def batches(workers, epoch):
        ds.set_epoch(epoch)
        return list(DataLoader(ds, batch_size=3, num_workers=workers, collate_fn=collate))

    b0, b2 = batches(0, 1), batches(2, 1)
    assert len(b0) == len(b2) == 3
    for x, y in zip(b0, b2):
        assert x["video_id"] == y["video_id"] and isinstance(x["video_id"], list)
        for k in ("boxes", "box_ids", "box_mask", "label"):
            assert torch.equal(x[k], y[k])
    assert b0[0]["boxes"].shape == (3, 8, 4, 4) and b0[0]["box_mask"].shape == (3, 8, 4)
    again = batches(0, 1)  # resumable: the same epoch gives the same draws
    assert all(torch.equal(x["boxes"], y["boxes"]) for x, y in zip(b0, again))
    other = batches(0, 2)
    assert not all(torch.equal(x["boxes"], y["boxes"]) for x, y in zip(b0, other))


def test_evaluation_is_deterministic(sample_boxes, sample_labels, sample_records):
    ds = ClipDataset(sample_records, sample_labels, sample_boxes, train=False, default_frame_size=(427, 240))
    a = ds[4]
    ds.set_epoch(5)
    assert torch.equal(a["boxes"], ds[4]["boxes"])


def test_fewer_annotated_than_decoded_frames_151201(sample_boxes, sample_labels, sample_records, sample_videos):
    recs = [r for r in sample_records if r.id in ("57082", "151201")]
    # default: box frames over the annotated range (23 frames) -> every sampled frame has a record
    ds = ClipDataset(recs, sample_labels, sample_boxes, train=False, default_frame_size=(427, 240))
    it = ds[1]
    assert it["video_id"] == "151201" and it["box_mask"].any(dim=1).all()
    # boxes on the RGB frames (sampled over the 33 decoded frames): frames past 22 are masked
    ds = ClipDataset(recs, sample_labels, sample_boxes, sample_videos, load_frames=True, rgb_boxes=True,
                     train=False, input_size=112, crop="full", **OFFICIAL_CLIP)
    it = ds[1]
    idx = StridedClipSampler(16, 2).centre(33)
    assert idx.max() >= 23
    assert it["rgb_boxes"].shape == (16, 4, 4) and it["frames"].shape == (3, 16, 112, 112)
    has_box = it["rgb_box_mask"].any(dim=1).numpy()
    np.testing.assert_array_equal(has_box, idx < 23)


def test_frames_dataset_with_workers_matches_coordinate_dataset(sample_boxes, sample_labels, sample_records, sample_videos):
    recs = [r for r in sample_records if r.id in ("57082", "151201")]
    rgb = ClipDataset(recs, sample_labels, sample_boxes, sample_videos, load_frames=True, input_size=112, seed=1,
                      crop="multiscale", **OFFICIAL_CLIP)
    b0 = next(iter(DataLoader(rgb, batch_size=2, num_workers=0, collate_fn=collate)))
    b2 = next(iter(DataLoader(rgb, batch_size=2, num_workers=2, collate_fn=collate)))
    assert b0["frames"].shape == (2, 3, 16, 112, 112) and b0["frames"].dtype == torch.float32
    assert b0["boxes"].shape == (2, 8, 4, 4)
    for k in ("frames", "boxes", "box_mask", "box_ids", "label"):
        assert torch.equal(b0[k], b2[k]), k
    # the same records without video, told the frame size: same box frames and crop
    coord = ClipDataset(recs, sample_labels, sample_boxes, input_size=112, seed=1, crop="multiscale",
                        frame_sizes={"57082": (427, 240), "151201": (400, 240)})  # their real sizes
    bc = collate([coord[0], coord[1]])
    assert torch.equal(bc["boxes"], b0["boxes"]) and torch.equal(bc["box_mask"], b0["box_mask"])


def test_dataset_boxes_follow_the_crop_of_the_frames(sample_videos, sample_boxes, sample_labels, sample_records):
    """Through the whole dataset: the annotated box of the sampled frame, mapped by the same centre
    crop as the pixels (427x240 -> 112x112)."""
    from vislearn.video.data.transforms import boxes_to_view, CenterCrop

    recs = [r for r in sample_records if r.id == "57082"]
    ds = ClipDataset(recs, sample_labels, sample_boxes, sample_videos, load_frames=True, rgb_boxes=True,
                     train=False, input_size=112, official_slots=False, crop="center", **OFFICIAL_CLIP)
    it = ds[0]
    idx = StridedClipSampler(16, 2).centre(38)
    vb = sample_boxes.get("57082")
    view = CenterCrop(112)((427, 240))
    slot = 1  # object 0000 (the comb)
    t = 0
    k = [i for i in range(len(vb.track)) if vb.track[i] == "0000" and vb.frame_index[vb.box_frame[i]] == idx[t]][0]
    expect, ok = boxes_to_view(vb.xyxy[k], view)
    assert ok
    np.testing.assert_allclose(it["rgb_boxes"][t, slot].numpy(), expect, atol=1e-6)


# ---------------------------------------------------------------- bad input policies
def test_boxes_outside_the_frame_are_clipped_and_empty_frames_masked():
    ann = AnnotationFile({"9": frame_records("9", [
        [("hand", (400, 100, 500, 200)), ("0000", (450, 10, 480, 20))],  # partly outside; fully outside
        [],  # annotated frame with no boxes
        [("hand", (-20, -5, 50, 40))],
    ])})
    ds = ClipDataset([rec("9")], LABELS, ann, num_box_frames=3, train=False, crop="full", default_frame_size=(427, 240))
    it = ds[0]
    b, m = it["boxes"], it["box_mask"]
    assert m.tolist() == [[True, False, False, False], [False] * 4, [True, False, False, False]]
    np.testing.assert_allclose(b[0, 0].numpy(), [413.5 / 427, 150 / 240, 27 / 427, 100 / 240], rtol=1e-5)
    np.testing.assert_allclose(b[2, 0].numpy(), [25 / 427, 20 / 240, 50 / 427, 40 / 240], rtol=1e-5)
    assert (b[~m] == 0).all() and (b >= 0).all() and (b <= 1).all()
    assert it["box_ids"].tolist() == [1, 2, 0, 0]


def test_missing_boxes_labels_and_videos_are_skipped_and_reported(tmp_path, caplog, vt):
    root = tmp_path / "videos"
    root.mkdir()
    vt.encode(root / "1.webm", vt.coded_frames(12))
    vt.encode(root / "2.webm", vt.coded_frames(12))
    A = (1, 1, 20, 20)
    ann = AnnotationFile({v: frame_records(v, [[("hand", A)]] * 12) for v in ("1", "2", "4")})
    records = [rec("1"), rec("2", "Unknown class"), rec("3"), rec("4"), Record(id="5")]
    with caplog.at_level(logging.INFO, logger="vislearn.video.data.clip_dataset"):
        ds = ClipDataset(records, LABELS, ann, root, load_frames=True, input_size=32, source="train.json")
    assert ds.report == {"records": 5, "kept": 1, "no_label": 2, "no_boxes": 1, "no_video": 1}
    assert ds.skipped == [("2", "no_label"), ("3", "no_boxes"), ("4", "no_video"), ("5", "no_label")]
    assert [r.id for r in ds.items] == ["1"] and len(ds) == 1
    assert "kept 1 of 5 records" in caplog.text
    assert ds[0]["frames"].shape == (3, 8, 32, 32)

    with pytest.raises(UserError, match=r"train.json: video 2: template 'Unknown class' is not in the labels"):
        ClipDataset(records, LABELS, ann, root, load_frames=True, strict=True, source="train.json")
    with pytest.raises(UserError, match="video 3: no boxes"):
        ClipDataset(records[2:3], LABELS, ann, strict=True)
    with pytest.raises(UserError, match="video 4: no 4.webm"):
        ClipDataset(records[3:4], LABELS, ann, root, load_frames=True, strict=True)
    # without labels (test set): nothing is skipped for lack of a label, label is -1
    ds = ClipDataset(records, None, ann, default_frame_size=(64, 48))
    assert ds.report["no_label"] == 0 and ds.report["kept"] == 3 and ds[0]["label"] == -1


def test_corrupt_video_found_while_loading_names_the_file(tmp_path):
    root = tmp_path / "videos"
    root.mkdir()
    (root / "11.webm").write_bytes(b"\x1aE\xdf\xa3 this is not a video" * 50)
    ds = ClipDataset([rec("11")], LABELS, None, root, load_frames=True, input_size=32)
    assert ds.report["kept"] == 1  # construction only checks existence
    with pytest.raises(UserError, match="11.webm"):
        ds[0]
    with pytest.raises(UserError, match="11.webm"):  # propagated from a DataLoader worker
        next(iter(DataLoader(ds, batch_size=1, num_workers=1, collate_fn=collate)))


def test_frames_only_dataset_has_empty_box_slots(tmp_path, vt):
    vt.encode(tmp_path / "1.webm", vt.coded_frames(20))
    ds = ClipDataset([rec("1")], LABELS, None, tmp_path, load_frames=True, input_size=32, num_rgb_frames=8,
                     rgb_sampler="segment", train=False)
    it = ds[0]
    assert it["frames"].shape == (3, 8, 32, 32)
    assert not it["box_mask"].any() and (it["box_ids"] == 0).all() and it["boxes"].shape == (8, 4, 4)


def test_video_paths_replace_the_video_root(tmp_path, vt):
    """Inference names its own files: id -> path, wherever they are and whatever they are called."""
    vt.encode(tmp_path / "any name.webm", vt.coded_frames(20))
    kw = dict(load_frames=True, input_size=32, num_rgb_frames=8, rgb_sampler="segment", train=False)
    ds = ClipDataset([rec("1"), rec("2")], LABELS, None, video_paths={"1": tmp_path / "any name.webm"}, **kw)
    assert len(ds) == 1 and ds.skipped == [("2", "no_video")]
    (tmp_path / "root").mkdir()
    vt.encode(tmp_path / "root" / "1.webm", vt.coded_frames(20))
    by_root = ClipDataset([rec("1")], LABELS, None, tmp_path / "root", **kw)
    assert torch.equal(ds[0]["frames"], by_root[0]["frames"])


def test_multi_view_evaluation(tmp_path, vt):
    vt.encode(tmp_path / "1.webm", vt.coded_frames(40, 48, 96))
    A = (1, 1, 20, 20)
    ann = AnnotationFile({"1": frame_records("1", [[("hand", A)]] * 40)})
    ds = ClipDataset([rec("1")], LABELS, ann, tmp_path, load_frames=True, train=False, input_size=32,
                     num_clips=2, num_crops=3)
    assert len(ds) == 6
    items = [ds[i] for i in range(6)]
    assert [int(it["view"]) for it in items] == list(range(6))
    assert all(it["video_id"] == "1" for it in items)
    assert not torch.equal(items[0]["frames"], items[1]["frames"])  # different spatial crops
    assert not torch.equal(items[0]["frames"], items[3]["frames"])  # different temporal clips
    with pytest.raises(ValueError, match="evaluation"):
        ClipDataset([rec("1")], LABELS, ann, num_clips=2, train=True)
    with pytest.raises(ValueError, match="load_frames"):
        ClipDataset([rec("1")], LABELS, ann, rgb_boxes=True)
    with pytest.raises(ValueError, match="needs boxes"):
        ClipDataset([rec("1")], LABELS, None)


def test_frame_size_sources():
    vb = vbox([[("hand", (10, 10, 300.2, 100))]], vid="1")
    assert box_extent_size(vb) == (301, 240)
    assert box_extent_size(vbox([[("hand", (10, 10, 30, 260))]])) == (30, 260)
    ann = AnnotationFile({"1": frame_records("1", [[("hand", (10, 10, 300.2, 100))]])})
    ds = ClipDataset([rec("1")], LABELS, ann)
    assert ds.frame_size("1", ann.get("1")) == (301, 240)
    ds = ClipDataset([rec("1")], LABELS, ann, frame_sizes={"1": (427, 240)}, default_frame_size=(320, 240))
    assert ds.frame_size("1") == (427, 240) and ds.frame_size("2") == (320, 240)
    ds = ClipDataset([rec("1")], LABELS, ann, frame_sizes=lambda vid: None, default_frame_size=(320, 240))
    assert ds.frame_size("1") == (320, 240)


def test_flip_swaps_the_label_by_name():
    ann = AnnotationFile({"1": frame_records("1", [[("hand", (10, 10, 110, 60))]] * 8)})
    flip = HorizontalFlip(LABELS, left_right_swap(list(LABELS)), p=1.0)
    recs = [rec("1", "Pushing something from left to right")]
    plain = ClipDataset(recs, LABELS, ann, crop="full", default_frame_size=(200, 100))[0]
    flipped = ClipDataset(recs, LABELS, ann, crop="full", default_frame_size=(200, 100), flip=flip)[0]
    assert plain["label"] == 0 and flipped["label"] == 1
    np.testing.assert_allclose(flipped["boxes"][0, 0, 0].item(), 1 - plain["boxes"][0, 0, 0].item(), rtol=1e-6)


def test_box_store_and_json_give_the_same_items(sample_boxes, sample_labels, sample_records, tmp_path):
    from vislearn.video.data.box_store import BoxStore, build_store

    build_store(list(sample_boxes), tmp_path / "store")
    store = BoxStore(tmp_path / "store")
    kw = dict(input_size=112, default_frame_size=(427, 240), seed=2)
    a = ClipDataset(sample_records, sample_labels, sample_boxes, **kw)
    b = ClipDataset(sample_records, sample_labels, store, **kw)
    for i in range(len(a)):
        x, y = a[i], b[i]
        for k in ("boxes", "box_ids", "box_mask", "label"):
            assert torch.equal(x[k], y[k])
