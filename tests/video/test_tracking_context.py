"""Track-context rescoring: real SSv2 hand/object boxes turned into detections with errors, plus static
unannotated objects that a per-frame detector scores like real ones; the context model must tell them apart."""
import json
from dataclasses import replace

import numpy as np
import pytest

from vislearn.video.data.annotations import parse_video
from vislearn.video.tracking.__main__ import main
from vislearn.video.tracking.context import (FEATURES, ContextRescorer, detection_features, detections_ap,
                                             fit_rescorer, load_rescorer, save_rescorer)
from vislearn.video.tracking.detections import OBJECT_CLASS, VideoDetections, detections_to_records
from vislearn.video.tracking.simulate import perturb_video


class Boxes(dict):
    """Video id -> VideoBoxes, read as a box file is (`in`, `get`)."""

    def get(self, vid):
        return self[vid]

    def video_ids(self):
        return list(self)


def with_static_objects(det: VideoDetections, rng, count=2) -> tuple[VideoDetections, list[np.ndarray]]:
    """Add `count` static boxes in the frame's top corners (where the sample's objects are not), found in 60% of the
    frames with scores as high as the real objects' but unsteady: what a detector makes of an object on the table."""
    fr, bx, sc, lb = [det.frame], [det.xyxy], [det.score], [det.label]
    statics = []
    for k in range(count):
        x = 5.0 + 330.0 * k + rng.uniform(0, 20)
        box = np.array([x, 2.0, x + 60.0, 40.0], np.float32)
        statics.append(box)
        frames = np.flatnonzero(rng.random(det.num_frames) < 0.6).astype(np.int32)
        fr.append(frames)
        bx.append(np.repeat(box[None], len(frames), axis=0))
        sc.append(rng.uniform(0.3, 0.95, len(frames)).astype(np.float32))
        lb.append(np.full(len(frames), OBJECT_CLASS, np.int64))
    return VideoDetections(det.video_id, det.num_frames, np.concatenate(fr), np.concatenate(bx), np.concatenate(sc),
                           np.concatenate(lb)), statics


def make_set(sample_boxes, seeds):
    """Detections and ground truth of every sample video under each seed (ids `<video>_<seed>`)."""
    dets, gt, statics = {}, Boxes(), {}
    for seed in seeds:
        for i, vid in enumerate(sample_boxes.video_ids()):
            rng = np.random.default_rng([seed, i])
            vb = sample_boxes.get(vid)
            det = perturb_video(vb, rng)
            name = f"{vid}_{seed}"
            det = VideoDetections(name, det.num_frames, det.frame, det.xyxy, det.score, det.label)
            dets[name], statics[name] = with_static_objects(det, rng)
            gt[name] = replace(vb, video_id=name)
    return dets, gt, statics


@pytest.fixture(scope="module")
def sets(sample_boxes):
    return make_set(sample_boxes, range(0, 4)), make_set(sample_boxes, range(10, 14))


def test_context_rescoring_ranks_the_static_objects_below_the_real_ones(sets):
    (train, train_gt, _), (test, test_gt, statics) = sets
    model = fit_rescorer(train, train_gt, list(train))
    assert model.fitted_on["videos"] == len(train) and 0 < model.fitted_on["true"] < model.fitted_on["detections"]
    ids = list(test)
    raw = detections_ap(test, test_gt, ids)["ap50"]["object"]
    rescored = {v: model.rescore(d) for v, d in test.items()}
    ctx = detections_ap(rescored, test_gt, ids)
    assert ctx["ap50"]["object"] >= raw + 0.1, (raw, ctx["ap50"]["object"])
    assert ctx["ap50"]["hand"] == detections_ap(test, test_gt, ids)["ap50"]["hand"]  # hands keep their scores
    # per video: the static objects' new scores sit below the real objects' detections
    static_scores, real_scores = [], []
    for vid, det in rescored.items():
        on_static = np.zeros(len(det), bool)
        for box in statics[vid]:
            on_static |= np.all(det.xyxy == box, axis=1)
        objects = det.label == OBJECT_CLASS
        static_scores += det.score[objects & on_static].tolist()
        real_scores += det.score[objects & ~on_static].tolist()
    assert np.median(static_scores) < 0.5 * np.median(real_scores)


def test_features_follow_the_track(sets):
    (train, _, statics), _ = sets
    vid = next(iter(train))
    det = train[vid]
    rows, x = detection_features(det)
    assert len(rows) == int((det.label == OBJECT_CLASS).sum()) and x.shape == (len(rows), len(FEATURES))
    col = {n: k for k, n in enumerate(FEATURES)}
    assert np.allclose(x[:, col["score"]], det.score[rows])
    on_static = np.all(det.xyxy[rows] == statics[vid][0], axis=1)
    tracked = on_static & (x[:, col["in_track"]] == 1)
    assert tracked.any()
    # one static track: the same context for each of its detections, and it does not travel
    assert np.ptp(x[tracked, col["track_mean_score"]]) < 1e-9 and np.all(x[tracked, col["log_travel"]] < 0.05)
    only = detection_features(det, frames=[int(det.frame[rows[0]])])[0]
    assert set(det.frame[only]) == {det.frame[rows[0]]}


def test_model_file_round_trip_and_bad_files(tmp_path):
    model = ContextRescorer([0.0] * len(FEATURES), [1.0] * len(FEATURES), [0.5] * len(FEATURES), -1.0)
    path = tmp_path / "ctx.json"
    save_rescorer(path, model)
    back = load_rescorer(path)
    x = np.random.default_rng(0).normal(size=(5, len(FEATURES)))
    assert np.allclose(back.probability(x), model.probability(x))
    for bad, message in [({"kind": "other"}, "not a track-context model"),
                         ({**model.to_dict(), "features": ["score"]}, "are not this version's"),
                         ({**model.to_dict(), "scale": [0.0] * len(FEATURES)}, "scales > 0"),
                         ({**model.to_dict(), "coef": [1.0]}, "finite weights")]:
        path.write_text(json.dumps(bad))
        with pytest.raises(Exception, match=message):
            load_rescorer(path)


def test_cli_fit_evaluate_and_track_with_context(tmp_path, capsys, sets, sample_splits):
    (train, train_gt, _), (test, test_gt, _) = sets
    dets = {**train, **test}
    (tmp_path / "d.json").write_text(json.dumps({v: detections_to_records(d) for v, d in dets.items()}))
    from vislearn.video.data.annotations import video_to_records

    (tmp_path / "g.json").write_text(json.dumps({v: video_to_records(b) for v, b in {**train_gt, **test_gt}.items()}))
    split = tmp_path / "split"
    split.mkdir()
    (split / "train.json").write_text(json.dumps([{"id": v} for v in train]))
    (split / "validation.json").write_text(json.dumps([{"id": v} for v in test]))
    d, g, ctx = str(tmp_path / "d.json"), str(tmp_path / "g.json"), str(tmp_path / "ctx.json")
    assert main(["fit-context", "--detections", d, "--boxes", g, "--split", str(split), "--out", ctx]) == 0
    assert "fitted on" in capsys.readouterr().out and load_rescorer(ctx).fitted_on["videos"] == len(train)
    assert main(["fit-context", "--detections", d, "--boxes", g, "--split", str(split), "--out", ctx]) == 2
    assert "exists" in capsys.readouterr().err  # never overwritten without --overwrite
    figures = []
    for extra in ([], ["--context", ctx]):
        assert main(["evaluate-detections", "--detections", d, "--boxes", g, "--split", str(split), "--json", *extra]) == 0
        figures.append(json.loads(capsys.readouterr().out))
    assert figures[1]["ap50"]["object"] >= figures[0]["ap50"]["object"] + 0.1
    out = str(tmp_path / "t.json")
    assert main(["track", "--detections", d, "--context", ctx, "--out", out]) == 0
    tracks = json.loads(open(out).read())
    assert set(tracks) == set(dets)
    parse_video(next(iter(test)), tracks[next(iter(test))])  # an ordinary Something-Else file
    (tmp_path / "bad.json").write_text("{}")
    assert main(["track", "--detections", d, "--context", str(tmp_path / "bad.json"), "--out", str(tmp_path / "u.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "bad.json" in err and len(err.splitlines()) == 1
