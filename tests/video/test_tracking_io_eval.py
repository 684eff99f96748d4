"""Detections JSON (validation, round trip), MOT evaluation (hand cases, motmetrics' own data, the
real Something-Else sample), and the track/evaluate CLI with bad input."""
import json
import os

import numpy as np
import pytest

from vislearn.video.data.annotations import VideoBoxes, parse_video
from vislearn.common.errors import UserError
from vislearn.video.tracking.__main__ import main
from vislearn.video.tracking.detections import load_detections, parse_detections, save_detections
from vislearn.video.tracking.mot_eval import evaluate


def label(box, cat="object", score=0.9, tid=""):
    x1, y1, x2, y2 = box
    out = {"box2d": {"x1": x1, "y1": y1, "x2": x2, "y2": y2}, "category": cat, "standard_category": tid,
           "gt_annotation": ""}
    if score is not None:
        out["score"] = score
    return out


def rec(vid, f, labels):
    return {"name": f"{vid}/{f + 1:04d}.jpg", "labels": labels, "nr_instances": len(labels), "gt_placeholders": []}


# ------------------------------------------------------------------------------ detections

def test_detections_round_trip_and_empty_frames(tmp_path):
    data = {"7": [rec("7", 0, [label((1, 2, 30, 40), "hand", 0.8)]), rec("7", 1, []),
                  rec("7", 2, [label((5, 5, 20, 20), "object", 0.3), label((0, 0, 9, 9), "Object", 0.99)]),
                  rec("7", 3, [])],
            "8": []}
    path = tmp_path / "d.json"
    path.write_text(json.dumps(data))
    dets = load_detections(path)
    d = dets["7"]
    assert d.num_frames == 4 and len(d) == 3 and d.label.tolist() == [0, 1, 1]
    assert dets["8"].num_frames == 0 and len(dets["8"]) == 0
    save_detections(tmp_path / "e.json", dets)
    again = load_detections(tmp_path / "e.json")
    assert again["7"].num_frames == 4 and np.allclose(again["7"].xyxy, d.xyxy) and np.allclose(again["7"].score, d.score, atol=1e-4)
    out = json.loads((tmp_path / "e.json").read_text())
    assert [r["name"] for r in out["7"]] == ["7/0001.jpg", "7/0002.jpg", "7/0003.jpg", "7/0004.jpg"]
    assert out["7"][0]["labels"][0]["standard_category"] == "" and out["7"][0]["labels"][0]["category"] == "hand"


def test_ground_truth_file_reads_as_detections(sample_annotations):
    dets = load_detections(sample_annotations)  # nouns in `category`: class from standard_category
    d = dets["57082"]
    assert len(d) > 0 and set(d.label.tolist()) == {0, 1} and np.all(d.score == 1.0)


@pytest.mark.parametrize("bad, message", [
    (label((float("nan"), 0, 10, 10)), "box2d.x1 is nan"),
    (label((10, 0, 5, 10)), "inverted box"),
    (label((0, 0, 10, 10), cat="dog"), "unknown class 'dog'"),
    (label((0, 0, 10, 10), score=1.5), "score is 1.5"),
    (label((0, 0, 10, 10), score="high"), "score is 'high'"),
    ({"category": "hand"}, "box2d"),
])
def test_bad_detections_are_clear_errors(bad, message):
    with pytest.raises(UserError, match=message) as e:
        parse_detections("3", [rec("3", 0, []), rec("3", 1, [bad])], "dets.json")
    assert "dets.json: video 3, frame 3/0002.jpg, label 0" in str(e.value)


def test_frame_listed_twice_is_an_error():
    with pytest.raises(UserError, match="listed twice"):
        parse_detections("3", [rec("3", 0, []), rec("3", 0, [])], "dets.json")


# ------------------------------------------------------------------------------ evaluation

def boxes(vid, rows, num_frames=None):
    """rows: (frame, track, box[, category])."""
    frames = sorted({r[0] for r in rows} | set(range(num_frames or 0)))
    fi = np.array(frames, np.int32)
    return VideoBoxes(vid, fi, np.searchsorted(fi, [r[0] for r in rows]).astype(np.int32),
                      np.array([r[2] for r in rows], np.float32).reshape(-1, 4), [r[1] for r in rows],
                      [r[3] if len(r) > 3 else ("hand" if r[1] == "hand" else "cup") for r in rows])


A, B = (0, 0, 10, 10), (50, 50, 60, 60)


def test_perfect_prediction():
    g = {"1": boxes("1", [(f, "hand", A) for f in range(5)] + [(f, "0000", B) for f in range(5)])}
    p = {"1": boxes("1", [(f, "h9", A, "hand") for f in range(5)] + [(f, "o3", B, "object") for f in range(5)])}
    r = evaluate(g, p).overall
    assert (r["mota"], r["idf1"], r["id_switches"], r["precision"], r["recall"]) == (1.0, 1.0, 0, 1.0, 1.0)


def test_identity_swap_counts_switches():
    g = {"1": boxes("1", [(f, "0000", A) for f in range(6)] + [(f, "0001", B) for f in range(6)])}
    rows = [(f, "x" if f < 3 else "y", A) for f in range(6)] + [(f, "y" if f < 3 else "x", B) for f in range(6)]
    r = evaluate(g, {"1": boxes("1", rows)}).overall
    assert r["id_switches"] == 2 and r["mota"] == pytest.approx(1 - 2 / 12)
    assert r["idf1"] == pytest.approx(0.5) and r["precision"] == 1.0 and r["recall"] == 1.0


def test_false_positives_misses_and_class_awareness():
    g = {"1": boxes("1", [(f, "hand", A) for f in range(4)])}
    # frame 0 right; frame 1 missing; frame 2 labelled object (wrong class); frame 3 right + an extra box
    p = {"1": boxes("1", [(0, "h", A, "hand"), (2, "o", A, "object"), (3, "h", A, "hand"), (3, "o2", B, "object")],
                    num_frames=4)}
    r = evaluate(g, p).overall
    assert (r["num_true_positives"], r["num_misses"], r["num_false_positives"]) == (2, 2, 2)
    assert r["precision"] == pytest.approx(0.5) and r["recall"] == pytest.approx(0.5)
    assert r["mota"] == pytest.approx(1 - 4 / 4)
    r = evaluate(g, p, class_aware=False).overall
    assert (r["num_true_positives"], r["num_misses"], r["num_false_positives"]) == (3, 1, 1)


def test_unannotated_frames_missing_and_extra_videos():
    g = {"1": boxes("1", [(f, "hand", A) for f in range(3)]), "2": boxes("2", [(0, "0000", B)])}
    p = {"1": boxes("1", [(f, "h", A, "hand") for f in range(10)]), "9": boxes("9", [(0, "h", A, "hand")])}
    res = evaluate(g, p)
    assert res.per_video["1"]["num_false_positives"] == 0  # frames 3..9 have no ground truth record
    assert res.per_video["2"]["num_misses"] == 1 and res.missing == ["2"] and res.extra == ["9"]
    assert res.overall["mota"] == pytest.approx(1 - 1 / 4)  # summed counts, not a mean of rates


def test_matches_motmetrics_published_figures():
    """motmetrics' own test data and expected values (TUD-Campus, TUD-Stadtmitte), through our IoU
    and aggregation code: the numbers must be motmetrics' published ones."""
    import motmetrics

    root = os.path.join(os.path.dirname(motmetrics.__file__), "data")
    if not os.path.isdir(os.path.join(root, "TUD-Campus")):
        pytest.skip("motmetrics test data not installed")

    def load(path, vid):
        a = np.loadtxt(path, delimiter=",", ndmin=2)
        frames = a[:, 0].astype(int) - 1
        fi = np.unique(frames)
        return VideoBoxes(vid, fi.astype(np.int32), np.searchsorted(fi, frames).astype(np.int32),
                          np.stack([a[:, 2], a[:, 3], a[:, 2] + a[:, 4], a[:, 3] + a[:, 5]], 1).astype(np.float32),
                          [str(int(i)) for i in a[:, 1]], ["person"] * len(a))

    names = ("TUD-Campus", "TUD-Stadtmitte")
    res = evaluate({n: load(f"{root}/{n}/gt.txt", n) for n in names}, {n: load(f"{root}/{n}/test.txt", n) for n in names})
    expected = {"TUD-Campus": (0.526462, 0.557659, 7, 13, 150), "TUD-Stadtmitte": (0.564014, 0.644619, 7, 45, 452)}
    for n, (mota, idf1, sw, fp, fn) in expected.items():
        r = res.per_video[n]
        assert r["mota"] == pytest.approx(mota, abs=1e-5) and r["idf1"] == pytest.approx(idf1, abs=1e-5)
        assert (r["id_switches"], r["num_false_positives"], r["num_misses"]) == (sw, fp, fn)
    o = res.overall
    assert o["mota"] == pytest.approx(0.555116, abs=1e-5) and o["idf1"] == pytest.approx(0.624296, abs=1e-5)
    assert o["precision"] == pytest.approx(0.940268, abs=1e-5) and o["recall"] == pytest.approx(0.602640, abs=1e-5)


def test_real_sample_perturbed_tracking_beats_the_greedy_linker(sample_boxes):
    """Real SSv2 hand/object tracks -> detections with jitter, misses, occlusion bursts, false
    positives and score noise -> tracker -> Something-Else ids -> MOT metrics. The tracker must clear
    fixed bars and beat the greedy frame-to-frame IoU linker on both MOTA and IDF1."""
    from vislearn.video.tracking.identities import assign_identities, identities_to_records, tracks_to_records
    from vislearn.video.tracking.simulate import greedy_link, perturb_video
    from vislearn.video.tracking.tracker import track_video

    vids = sample_boxes.video_ids()
    ours, floor = [], []
    for seed in (11, 12, 13):
        pred_ours, pred_greedy = {}, {}
        for i, vid in enumerate(vids):
            det = perturb_video(sample_boxes.get(vid), np.random.default_rng([seed, i]))
            pred_ours[vid] = parse_video(vid, identities_to_records(vid, assign_identities(track_video(det)), det.num_frames))
            pred_greedy[vid] = parse_video(vid, tracks_to_records(vid, greedy_link(det), det.num_frames))
        ours.append(evaluate(sample_boxes, pred_ours).overall)
        floor.append(evaluate(sample_boxes, pred_greedy).overall)
    mean = lambda rs, k: float(np.mean([r[k] for r in rs]))  # noqa: E731
    assert mean(ours, "mota") >= 0.80 and mean(ours, "idf1") >= 0.85
    assert mean(ours, "mota") > mean(floor, "mota") + 0.1
    assert mean(ours, "idf1") > mean(floor, "idf1") + 0.1


# ------------------------------------------------------------------------------ CLI

def write(path, data):
    path.write_text(json.dumps(data))
    return str(path)


def test_cli_track_and_evaluate_from_detections(tmp_path, capsys):
    box = lambda f: (10 + 3 * f, 20, 70 + 3 * f, 80)  # noqa: E731
    dets = {"5": [rec("5", f, [label(box(f), "hand", 0.9), label((200, 50, 260, 120), "object", 0.8)]) for f in range(12)]
                 + [rec("5", 12, [])],
            "6": [rec("6", f, []) for f in range(4)]}  # a video without any detection
    gt = {"5": [rec("5", f, [label(box(f), "hand", None, "hand"), label((200, 50, 260, 120), "cup", None, "0000")])
                for f in range(12)]}
    d, g, out = write(tmp_path / "d.json", dets), write(tmp_path / "g.json", gt), str(tmp_path / "t.json")
    assert main(["track", "--detections", d, "--out", out]) == 0
    err = capsys.readouterr().err
    assert "1 video(s) without any detection" in err
    tracks = json.loads(open(out).read())
    assert len(tracks["5"]) == 13 and len(tracks["6"]) == 4 and all(r["labels"] == [] for r in tracks["6"])
    assert {l["standard_category"] for r in tracks["5"] for l in r["labels"]} == {"hand", "0000"}
    assert main(["evaluate", "--gt", g, "--pred", out, "--json"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"mota", "idf1", "id_switches", "precision", "recall"} <= set(last)
    assert last["mota"] == 1.0 and last["idf1"] == 1.0
    assert main(["evaluate", "--gt", g, "--pred", out]) == 0
    assert "OVERALL" in capsys.readouterr().out


@pytest.mark.parametrize("bad, message", [
    (label((float("nan"), 0, 10, 10)), "box2d.x1 is nan"),
    (label((10, 0, 5, 10)), "inverted box"),
    (label((0, 0, 10, 10), cat="dog"), "unknown class"),
])
def test_cli_bad_detections_exit_2_with_one_line(tmp_path, capsys, bad, message):
    d = write(tmp_path / "d.json", {"1": [rec("1", 0, [bad])]})
    assert main(["track", "--detections", d, "--out", str(tmp_path / "t.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "t.json").exists()


def test_cli_usage_errors(tmp_path, capsys):
    assert main(["track", "--out", str(tmp_path / "t.json")]) == 2  # neither detections nor videos
    assert "either --detections" in capsys.readouterr().err
    assert main(["track", str(tmp_path / "missing.webm"), "--out", str(tmp_path / "t.json")]) == 2
    assert main(["evaluate", "--gt", str(tmp_path / "nope.json"), "--pred", str(tmp_path / "nope.json")]) == 2
    assert "file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["track", "--detections", "x.json", "--out", "y.json", "--high-score", "2"])
    assert e.value.code == 2
    for cmd in ("train-detector", "detect", "track", "evaluate", "fit-context", "evaluate-detections"):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
        assert len(capsys.readouterr().out) > 300


def test_identities_right_per_video():
    from vislearn.video.tracking.mot_eval import identity_check

    C = (100, 0, 110, 10)
    g = boxes("1", [(f, "hand", A) for f in range(4)] + [(f, "0000", B) for f in range(4)] + [(f, "0001", C) for f in range(4)])

    def pred(rows):
        return boxes("1", rows)

    right = pred([(f, "hand", A) for f in range(4)] + [(f, "0000", B, "object") for f in range(4)]
                 + [(f, "0001", C, "object") for f in range(4)])
    assert identity_check(g, right) == {"hand_right": True, "objects_right": True, "identities_right": True,
                                        "same_slots": True}
    swapped = pred([(f, "hand", A) for f in range(4)] + [(f, "0001", B, "object") for f in range(4)]
                   + [(f, "0000", C, "object") for f in range(4)])
    assert identity_check(g, swapped) == {"hand_right": True, "objects_right": True, "identities_right": True,
                                          "same_slots": False}
    # an extra object identity (a distractor in a slot) and a hand found in 1 of 4 frames
    extra = pred([(0, "hand", A)] + [(f, "0000", B, "object") for f in range(4)] + [(f, "0001", C, "object") for f in range(4)]
                 + [(f, "0002", (200, 0, 210, 10), "object") for f in range(4)])
    assert identity_check(g, extra) == {"hand_right": False, "objects_right": False, "identities_right": False,
                                        "same_slots": False}
    # an object followed in half of its frames counts; fewer does not
    half = pred([(f, "hand", A) for f in range(4)] + [(f, "0000", B, "object") for f in range(2)]
                + [(f, "0001", C, "object") for f in range(4)])
    assert identity_check(g, half)["objects_right"]
    short = pred([(f, "hand", A) for f in range(4)] + [(0, "0000", B, "object")] + [(f, "0001", C, "object") for f in range(4)])
    assert not identity_check(g, short)["objects_right"]
    res = evaluate({"1": g, "2": g}, {"1": right, "2": swapped})
    assert res.overall["identities_right"] == 1.0 and res.overall["same_slots"] == 0.5
    assert evaluate({"1": g}, {}).overall["identities_right"] == 0.0  # no prediction: nothing right
