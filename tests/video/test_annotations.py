import json
import multiprocessing as mp
import subprocess
import sys

import numpy as np
import pytest

from vislearn.video.data.annotations import (AnnotationFile, frame_number, load_annotations, merge_annotations,
                                             parse_video, save_annotations, video_to_records)
from vislearn.video.data.box_store import BoxStore, index_boxes, open_boxes
from vislearn.common.errors import UserError


def test_frame_number():
    assert frame_number("2/0001.jpg") == 0
    assert frame_number("151201/0023.jpg") == 22
    with pytest.raises(ValueError):
        frame_number("2/0000.jpg")
    with pytest.raises(ValueError):
        frame_number("frame.png")


def test_real_sample_reads_and_writes_back_identically(sample_annotations, tmp_path):
    data = load_annotations(sample_annotations)
    assert set(data) == {"2", "4", "2003", "6981", "57082", "151201", "862"}
    out = tmp_path / "again.json"
    save_annotations(out, data)
    assert json.loads(out.read_text()) == json.loads(sample_annotations.read_text())


def test_parse_real_video(sample_annotations):
    vb = AnnotationFile.load(sample_annotations).get("57082")
    assert vb.placeholders == ["comb", "box"]
    assert vb.track_ids() == ["hand", "0000", "0001"]
    assert len(vb.frame_index) == 38 and vb.frame_index[0] == 0 and vb.frame_index[-1] == 37
    assert vb.xyxy.shape == (79, 4)
    # the first frame's comb box, as in the file
    raw = load_annotations(sample_annotations)["57082"][0]["labels"]
    comb = next(l["box2d"] for l in raw if l["standard_category"] == "0000")
    k = next(i for i in range(len(vb.track)) if vb.box_frame[i] == 0 and vb.track[i] == "0000")
    np.testing.assert_allclose(vb.xyxy[k], [comb["x1"], comb["y1"], comb["x2"], comb["y2"]], rtol=1e-6)


def test_video_with_fewer_annotated_frames(sample_annotations, sample_root):
    vb = AnnotationFile.load(sample_annotations).get("151201")
    on_disk = len(list((sample_root / "frames" / "151201").glob("*.jpg")))
    assert vb.num_frames == 23 and on_disk == 33


def test_records_roundtrip_through_arrays(sample_annotations):
    data = load_annotations(sample_annotations)
    for vid, frames in data.items():
        vb = parse_video(vid, frames)
        again = parse_video(vid, video_to_records(vb))
        assert again.track == vb.track and np.array_equal(again.xyxy, vb.xyxy)
        assert np.array_equal(again.frame_index, vb.frame_index) and again.placeholders == vb.placeholders


def _frame(labels, name="9/0001.jpg"):
    return {"name": name, "labels": labels, "nr_instances": len(labels), "gt_placeholders": ["cup"]}


def _label(x1=1, y1=2, x2=30, y2=40, track="0000"):
    return {"box2d": {"x1": x1, "y1": y1, "x2": x2, "y2": y2}, "category": "cup",
            "standard_category": track, "gt_annotation": "object 0"}


def test_missing_box_names_file_video_and_frame():
    lab = _label()
    del lab["box2d"]["y2"]
    with pytest.raises(UserError) as e:
        parse_video("9", [_frame([lab])], "boxes.json")
    assert "boxes.json" in str(e.value) and "video 9" in str(e.value) and "9/0001.jpg" in str(e.value)
    assert "'y2'" in str(e.value)


def test_nan_box_is_an_error():
    with pytest.raises(UserError, match="finite"):
        parse_video("9", [_frame([_label(x1=float("nan"))])], "b.json")


def test_inverted_box_is_repaired_and_reported():
    vb = parse_video("9", [_frame([_label(x1=50, x2=10)])])
    assert vb.xyxy[0].tolist() == [10, 2, 50, 40]
    assert any("inverted" in i for i in vb.issues)


def test_empty_frames_and_unsorted_frames():
    vb = parse_video("9", [_frame([_label()], "9/0003.jpg"), _frame([], "9/0001.jpg")])
    assert vb.frame_index.tolist() == [0, 2]
    assert vb.box_frame.tolist() == [1]


def test_missing_track_id():
    lab = _label()
    del lab["standard_category"]
    with pytest.raises(UserError, match="standard_category"):
        parse_video("9", [_frame([lab])], "b.json")


def test_truncated_annotation_file(tmp_path, sample_annotations):
    p = tmp_path / "part.json"
    p.write_bytes(sample_annotations.read_bytes()[:5000])
    with pytest.raises(UserError, match="part.json: not valid JSON"):
        load_annotations(p)


def test_merge_parts(sample_annotations, tmp_path):
    data = load_annotations(sample_annotations)
    ids = list(data)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    save_annotations(a, {k: data[k] for k in ids[:4]})
    save_annotations(b, {k: data[k] for k in ids[3:]})  # one video in both, identical
    assert merge_annotations([a, b]) == data
    changed = {k: data[k] for k in ids[3:]}
    changed[ids[3]] = changed[ids[3]][:-1]
    save_annotations(b, changed)
    with pytest.raises(UserError, match=f"video {ids[3]} is also in"):
        merge_annotations([a, b])


def test_store_matches_json(sample_annotations, tmp_path):
    meta = index_boxes([sample_annotations], tmp_path / "store")
    assert meta["videos"] == 7 and meta["boxes"] == 566
    store, js = open_boxes(tmp_path / "store"), open_boxes(sample_annotations)
    assert isinstance(store, BoxStore)
    assert store.video_ids() == js.video_ids()
    for vid in js.video_ids():
        a, b = js.get(vid), store.get(vid)
        assert a.track == b.track and a.category == b.category and a.placeholders == b.placeholders
        assert np.array_equal(a.xyxy, b.xyxy) and np.array_equal(a.frame_index, b.frame_index)
        assert np.array_equal(a.box_frame, b.box_frame) and np.array_equal(a.nr_instances, b.nr_instances)
    assert "2" in store and "99999" not in store and "a-very-long-id-not-there" not in store
    with pytest.raises(KeyError):
        store.get("99999")


def test_store_from_parts_equals_store_from_merged(sample_annotations, tmp_path):
    data = load_annotations(sample_annotations)
    ids = list(data)
    save_annotations(tmp_path / "p1.json", {k: data[k] for k in ids[:3]})
    save_annotations(tmp_path / "p2.json", {k: data[k] for k in ids[2:]})
    index_boxes([tmp_path / "p1.json", tmp_path / "p2.json"], tmp_path / "s")
    store = BoxStore(tmp_path / "s")
    assert sorted(store.video_ids()) == sorted(ids)
    assert store.get("4").track == AnnotationFile(data).get("4").track


def _worker_read(args):
    folder, vid = args
    return BoxStore(folder).get(vid).xyxy.sum().item()


def test_store_is_shared_by_worker_processes(sample_annotations, tmp_path):
    index_boxes([sample_annotations], tmp_path / "s")
    store = BoxStore(tmp_path / "s")
    ids = store.video_ids()
    with mp.get_context("spawn").Pool(2) as pool:
        sums = pool.map(_worker_read, [(str(tmp_path / "s"), v) for v in ids])
    assert sums == pytest.approx([store.get(v).xyxy.sum().item() for v in ids])


def test_broken_store_is_reported(sample_annotations, tmp_path):
    index_boxes([sample_annotations], tmp_path / "s")
    (tmp_path / "s" / "xyxy.npy").write_bytes(b"garbage")
    with pytest.raises(UserError, match="xyxy.npy"):
        BoxStore(tmp_path / "s")
    with pytest.raises(UserError, match="not a box store"):
        BoxStore(tmp_path)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "vislearn.video", "data", *args], capture_output=True, text=True)


def test_cli_index_and_inspect_json(sample_annotations, tmp_path):
    r = run_cli("index-boxes", str(sample_annotations), "--out", str(tmp_path / "s"), "--quiet")
    assert r.returncode == 0, r.stderr
    r = run_cli("inspect", "--boxes", str(tmp_path / "s"), "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == 7
    by_id = {row["video_id"]: row for row in rows}
    assert by_id["4"]["tracks"] == ["0000", "0001", "0002", "hand"]
    assert by_id["151201"]["frames"] == 23
    assert sum(row["boxes"] for row in rows) == 566
    assert "total: 7 videos" in r.stderr
    r2 = run_cli("inspect", "--boxes", str(sample_annotations), "--json")
    assert [json.loads(line) for line in r2.stdout.splitlines()] == rows


def test_cli_bad_input_is_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{\"1\": [")
    r = run_cli("inspect", "--boxes", str(bad))
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error:") and "bad.json" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("index-boxes", str(tmp_path / "missing.json"), "--out", str(tmp_path / "s"))
    assert r.returncode == 2 and "missing.json" in r.stderr
    assert not (tmp_path / "s").exists()


def test_cli_merge(sample_annotations, tmp_path):
    data = load_annotations(sample_annotations)
    ids = list(data)
    save_annotations(tmp_path / "a.json", {k: data[k] for k in ids[:2]})
    save_annotations(tmp_path / "b.json", {k: data[k] for k in ids[2:]})
    r = run_cli("merge-boxes", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--out", str(tmp_path / "m.json"))
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "m.json").read_text()) == data
