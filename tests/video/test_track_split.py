"""`tracking track-split`: tracked boxes for every video of a split, sharded and resumable, read back as
ground truth is (box store, training CLI). Real encoded synthetic videos and a real detector network
(untrained; its class head made confident so that tracks form: this checks the plumbing, not accuracy)."""
import contextlib
import io
import json

import numpy as np
import pytest
import torch

from vislearn.video.data.__main__ import main as datasets_main
from vislearn.video.tracking.__main__ import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from vislearn.video.data.synthetic.generate import generate
    from vislearn.video.tracking.detector import build_detector, default_spec, save_detector

    root = tmp_path_factory.mktemp("track_split")
    data = root / "data"
    generate(data, videos=5, seed=6, width=128, height=96)  # its SSv2 train/validation lists make it a split
    torch.manual_seed(0)
    spec = default_spec("mobilenet_v2_fcos", min_size=96, max_size=128)
    det = build_detector(spec)
    with torch.no_grad():
        det.head.classification_head.cls_logits.bias.copy_(torch.tensor([-6.0, 1.0, 3.0]))  # hands and objects
    save_detector(root / "det.pt", det, spec)
    args = ["--split", str(data), "--videos", str(data / "videos"), "--detector", str(root / "det.pt"), "--quiet"]
    out = root / "one" / "tracks.json"
    assert main(["track-split", *args, "--out", str(out)]) == 0
    return {"root": root, "data": data, "args": args, "one": json.loads(out.read_text()), "det": root / "det.pt"}


def split_ids(data):
    return [r["id"] for name in ("train", "validation")
            for r in json.loads((data / f"something-something-v2-{name}.json").read_text())]


def test_whole_split_is_what_track_writes_per_video(setup, tmp_path):
    one, data = setup["one"], setup["data"]
    assert list(one) == split_ids(data)
    assert any(lab["standard_category"] == "hand" for recs in one.values() for r in recs for lab in r["labels"])
    vid = list(one)[0]
    assert main(["track", str(data / "videos" / f"{vid}.webm"), "--detector", str(setup["det"]), "--out",
                 str(tmp_path / "t.json"), "--quiet"]) == 0
    assert json.loads((tmp_path / "t.json").read_text()) == {vid: one[vid]}


def test_two_shards_merged_equal_one_process(setup, tmp_path, monkeypatch):
    out = tmp_path / "tracks.json"
    assert main(["track-split", *setup["args"], "--out", str(out), "--shard", "0/2"]) == 0
    monkeypatch.setenv("RANK", "1")  # as torchrun starts the second process
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["track-split", *setup["args"], "--out", str(out)]) == 0
    parts = [tmp_path / "tracks.part0of2.json", tmp_path / "tracks.part1of2.json"]
    ids = split_ids(setup["data"])
    assert list(json.loads(parts[0].read_text())) == ids[0::2] and list(json.loads(parts[1].read_text())) == ids[1::2]
    assert not out.exists()
    with contextlib.redirect_stdout(io.StringIO()):
        assert datasets_main(["merge-boxes", *map(str, parts), "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == setup["one"]


def test_an_interrupted_run_resumes(setup, tmp_path, capsys):
    from vislearn.video.tracking.track_split import track_split

    out = tmp_path / "tracks.json"
    calls = []

    def interrupted(vid, path):
        calls.append(vid)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return setup["one"][vid]

    # the CLI's first two videos, then a kill: the same settings as the CLI's, so that it resumes
    from vislearn.common.video import list_videos
    from vislearn.video.tracking.__main__ import _tracker_configs, build_parser
    from vislearn.video.tracking.track_split import tracker_settings

    args = build_parser().parse_args(["track-split", *setup["args"], "--out", str(out)])
    settings = tracker_settings(*_tracker_configs(args), str(setup["det"]), args.score_threshold, args.batch_size)
    found = list_videos(setup["data"] / "videos")
    with pytest.raises(KeyboardInterrupt):
        track_split({v: found[v] for v in split_ids(setup["data"])}, out, settings, interrupted, progress=False)
    partial = tmp_path / "tracks.json.partial.jsonl"
    assert partial.exists() and not out.exists() and len(partial.read_text().splitlines()) == 3  # header + 2 videos
    with open(partial, "a") as f:
        f.write('{"video_id": "torn')  # the line a kill interrupted
    # other settings: refused, the partial file kept
    assert main(["track-split", *setup["args"], "--out", str(out), "--score-threshold", "0.2"]) == 2
    assert "other settings" in capsys.readouterr().err and partial.exists()
    assert main(["track-split", *setup["args"], "--out", str(out)]) == 0
    assert "2 of 5 video(s) already done" in capsys.readouterr().err
    assert json.loads(out.read_text()) == setup["one"] and not partial.exists()
    assert main(["track-split", *setup["args"], "--out", str(out)]) == 0  # done: nothing to do
    assert "already complete" in capsys.readouterr().out


def test_resume_survives_kills_during_the_header_and_after_a_torn_line(tmp_path):
    """A kill while the header is written leaves a fresh start; a kill after a torn line, then another
    kill, then a run to the end: every video once, none lost to a line glued onto the torn one."""
    from vislearn.video.tracking.track_split import track_split

    videos = {str(v): tmp_path / f"{v}.webm" for v in range(6)}
    out, calls = tmp_path / "t.json", []
    partial = tmp_path / "t.json.partial.jsonl"

    def run(kill_after=None):
        def one(vid, path):
            if kill_after is not None and len(calls) == kill_after:
                raise KeyboardInterrupt
            calls.append(vid)
            return [{"name": f"{vid}/0001.jpg", "labels": []}]
        try:
            return track_split(videos, out, {"k": 1}, one, progress=False, log=lambda m: None)
        except KeyboardInterrupt:
            return None

    partial.write_text('{"fingerprint": "ab')  # killed while writing the header
    assert run(kill_after=2) is None and len(partial.read_text().splitlines()) == 3
    with open(partial, "a") as f:
        f.write('{"video_id": "torn')  # killed while writing a video's line
    assert run(kill_after=3) is None  # one more video, then killed again
    assert run() is not None and not partial.exists()
    assert calls == [str(v) for v in range(6)]  # each video tracked once
    assert sorted(json.loads(out.read_text()), key=int) == list(videos)


def test_tracked_boxes_round_trip_through_the_box_store_and_the_training_cli(setup, tmp_path):
    from vislearn.video.actions.train import main as train
    from vislearn.video.data.annotations import AnnotationFile
    from vislearn.video.data.box_store import open_boxes

    tracks = setup["root"] / "one" / "tracks.json"
    store = tmp_path / "store"
    with contextlib.redirect_stdout(io.StringIO()):
        assert datasets_main(["index-boxes", str(tracks), "--out", str(store), "--quiet"]) == 0
    a, b = AnnotationFile.load(tracks), open_boxes(store)
    assert a.video_ids() == b.video_ids()
    for vid in a.video_ids():
        va, vb = a.get(vid), b.get(vid)
        assert np.array_equal(va.frame_index, vb.frame_index) and np.array_equal(va.box_frame, vb.box_frame)
        assert np.allclose(va.xyxy, vb.xyxy) and va.track == vb.track and va.category == vb.category
    data = setup["data"]
    run = tmp_path / "run"
    with contextlib.redirect_stdout(io.StringIO()):
        rc = train([f"split={data}", f"boxes={store}", "model=stin_oie_nl", "model_args.feature_dim=16", "epochs=1",
                    "batch_size=2", "workers=0", "threads=1", "holdout_fraction=0", "device=cpu", "log_every=0",
                    "frame_size=[128,96]", f"out={run}"])
    assert rc == 0
    results = json.loads((run / "results.json").read_text())
    assert results["evaluation"]["videos"] == len(json.loads((data / "something-something-v2-validation.json").read_text()))


def test_bad_shards_and_missing_videos_are_one_line_errors(setup, tmp_path, capsys):
    for bad in ("2/2", "x", "1/0"):
        assert main(["track-split", *setup["args"], "--out", str(tmp_path / "t.json"), "--shard", bad]) == 2
        assert "--shard" in capsys.readouterr().err
    empty = tmp_path / "videos"
    empty.mkdir()
    args = list(setup["args"])
    args[args.index("--videos") + 1] = str(empty)
    assert main(["track-split", *args, "--out", str(tmp_path / "t.json")]) == 2
    assert "have no video file" in capsys.readouterr().err


def test_track_split_with_context_is_track_with_context_per_video(setup, tmp_path, capsys):
    """--context rescores each video's object detections before tracking, as `track --context` does, and a model
    with other weights is other settings for a resumed run."""
    from vislearn.video.tracking.context import FEATURES, ContextRescorer, save_rescorer

    n = len(FEATURES)
    ctx = tmp_path / "ctx.json"
    save_rescorer(ctx, ContextRescorer([0.0] * n, [1.0] * n, [0.0] * n, 2.0))  # every object 0.8808
    out = tmp_path / "tracks.json"
    assert main(["track-split", *setup["args"], "--out", str(out), "--context", str(ctx)]) == 0
    tracks = json.loads(out.read_text())
    objects = {lab["score"] for recs in tracks.values() for r in recs for lab in r["labels"] if lab["category"] == "object"}
    assert objects == {0.8808}
    vid = list(tracks)[0]
    assert main(["track", str(setup["data"] / "videos" / f"{vid}.webm"), "--detector", str(setup["det"]), "--context",
                 str(ctx), "--out", str(tmp_path / "t.json"), "--quiet"]) == 0
    assert json.loads((tmp_path / "t.json").read_text()) == {vid: tracks[vid]}
    from vislearn.video.tracking.__main__ import _tracker_configs, build_parser
    from vislearn.video.tracking.context import load_rescorer
    from vislearn.video.tracking.track_split import tracker_settings

    args = build_parser().parse_args(["track-split", *setup["args"], "--out", str(out)])
    plain = tracker_settings(*_tracker_configs(args), str(setup["det"]), args.score_threshold, args.batch_size)
    with_ctx = tracker_settings(*_tracker_configs(args), str(setup["det"]), args.score_threshold, args.batch_size,
                                load_rescorer(ctx).to_dict())
    assert "context" not in plain and with_ctx["context"]["intercept"] == 2.0
