"""Video inference (`vislearn video infer`) with real parts: real SSv2 frames encoded to VP9, the real
Something-Else boxes, checkpoints trained here on a tiny synthetic set, a detector saved here."""
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vislearn.video.actions.infer import main
from vislearn.video.actions.models import fuse_scores
from vislearn.video.actions.render import LINE, identity_colour, layout_for
from conftest import encode_video, read_jpeg_folder
from vislearn.video.data.annotations import AnnotationFile

ROOT = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """Tiny checkpoints trained (1 epoch) on 12 synthetic videos: two box models and a scene model."""
    from vislearn.video.actions.train import main as train
    from vislearn.video.data.synthetic.generate import generate

    root = tmp_path_factory.mktemp("infer_ckpts")
    data, split = root / "data", root / "split"
    generate(data, videos=12, seed=3, width=128, height=96)
    split.mkdir()
    for name, src in (("labels", "labels"), ("train", "train"), ("validation", "validation")):
        shutil.copy(data / f"something-something-v2-{src}.json", split / f"{name}.json")
    common = [f"split={split}", f"boxes={data / 'annotations.json'}", f"videos={data / 'videos'}",
              "frame_size=[128,96]", "epochs=1", "batch_size=4", "workers=0", "threads=1", "holdout_fraction=0",
              "device=cpu", "eval_set=", "log_every=0"]
    runs = {"stin": ["model=stin", "model_args.feature_dim=16"],
            "stin_oie": ["model=stin_oie", "model_args.feature_dim=16", "seed=1"],
            "scene": ["model=small3d", "model_args.width=4", "input_size=32", "num_rgb_frames=4"],
            "strg": ["model=strg", "model_args.scene=small3d", "model_args.scene_kwargs={width: 4}",
                     "model_args.node_dim=8", "model_args.roi_size=2", "input_size=32", "num_rgb_frames=4"]}
    out = {}
    for name, extra in runs.items():
        with contextlib.redirect_stdout(io.StringIO()):
            assert train(common + extra + [f"out={root / name}"]) == 0
        out[name] = root / name / "best.pt"
    out["names"] = torch.load(out["stin"], weights_only=True)["class_names"]
    return out


def infer(*args, capsys=None) -> tuple[int, list[dict], str]:
    """Run the command in-process with --json; returns (exit code, JSON objects, stderr)."""
    rc = main([*map(str, args), "--json", "-"])
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines() if line.startswith("{")]
    return rc, lines, captured.err


def decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def check_topk(res: dict, names: list[str], k: int) -> None:
    assert res["ok"], res["error"]
    scores = [t["score"] for t in res["topk"]]
    assert len(scores) == k and scores == sorted(scores, reverse=True)
    assert 0 < sum(scores) <= 1 + 1e-5 and all(0 <= s <= 1 for s in scores)
    assert all(names[t["index"]] == t["label"] for t in res["topk"])


def test_real_video_real_boxes_overlay(ckpts, sample_videos, sample_dir, sample_boxes, tmp_path, capsys):
    video = sample_videos / "57082.webm"
    rc, (res,), err = infer(video, "--checkpoint", ckpts["stin"], "--boxes", sample_dir / "annotations.json",
                            "--render", tmp_path / "r", capsys=capsys)
    assert rc == 0, err
    check_topk(res, ckpts["names"], 5)
    assert res["video"] == str(video) and res["video_id"] == "57082"
    assert res["num_frames"] == 38 and res["fps"] == 12 and res["size"] == [427, 240] and not res["resampled"]
    assert res["models"] == [{"checkpoint": str(ckpts["stin"]), "model": "stin", "weight": 1.0}]
    assert res["boxes"] == {"source": str(sample_dir / "annotations.json"), "tracks": ["hand", "0000", "0001"]}
    assert set(res["timings"]) >= {"decode", "detect", "track", "model", "render", "total"}
    assert res["timings"]["detect"] is None and res["timings"]["model"] > 0
    assert "decoded at 12 fps" in err

    # the overlay: every 12-fps frame, boxes where the annotation puts them and nowhere else
    out = decode(tmp_path / "r" / "57082.mp4")
    layout = layout_for(427, 240)
    assert out.shape == (38, layout.height, layout.width, 3) and layout.scale == 1
    assert (tmp_path / "r" / "57082_sheet.png").stat().st_size > 0
    original = read_jpeg_folder(sample_dir / "frames" / "57082")
    frames = out[:, layout.banner:layout.banner + 240, :427, :][:, ::4, ::4].astype(np.float32)
    dist = np.abs(frames[:, None] - original[None, :, ::4, ::4].astype(np.float32)).mean((2, 3, 4))
    assert (dist.argmin(1) == np.arange(38)).all()  # overlay frame i shows video frame i: none dropped or repeated
    vb = sample_boxes.get("57082")
    checked = 0
    for f in (0, 12, 25, 37):
        img = out[f].astype(int)
        drawn = np.zeros(img.shape[:2], bool)
        for k in np.flatnonzero(vb.frame_index[vb.box_frame] == f):
            x1, y1, x2, y2 = layout.to_canvas(vb.xyxy[k], (427, 240))
            near = np.abs(img - np.array(identity_colour(vb.track[k]))).max(-1) < 60
            ys = np.arange(y1 + (y2 - y1) // 4, y1 + 3 * (y2 - y1) // 4)
            xs = np.arange(x1 + (x2 - x1) // 4, x1 + 3 * (x2 - x1) // 4)
            for edge in (near[ys, x1 + 1], near[ys, x2 - 1], near[y2 - 1, xs]):  # left, right, bottom
                assert edge.mean() > 0.8, (f, vb.track[k])
                checked += 1
            drawn[max(y1 - 2, 0):y2 + 3, max(x1 - 2, 0):x2 + 3] = True
        drawn[:layout.banner] = True
        shown = img[layout.banner:layout.banner + 240, :427]
        for colour in {identity_colour(t) for t in vb.track}:  # outside the boxes: no more box colour than the video has
            near_out = (np.abs(img - np.array(colour)).max(-1) < 60) & ~drawn
            near_in = np.abs(original[f].astype(int) - np.array(colour)).max(-1) < 60
            assert near_out.sum() <= near_in.sum() + 0.002 * near_in.size
        assert np.abs(shown - original[f]).mean() < 12  # the rest of the frame is the video's
    assert checked >= 18 and LINE >= 3


def test_batch_reports_failures_and_goes_on(ckpts, sample_videos, sample_dir, tmp_path):
    bad = tmp_path / "corrupt.webm"
    bad.write_bytes(os.urandom(4000))
    unboxed = tmp_path / "99999.webm"
    shutil.copy(sample_videos / "151201.webm", unboxed)
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "vislearn.video.actions.infer", sample_videos / "57082.webm", bad, unboxed,
                        sample_videos / "151201.webm", "--checkpoint", ckpts["stin"],
                        "--boxes", sample_dir / "annotations.json", "--json", out, "--threads", "1"],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert r.returncode == 1, r.stderr
    res = {Path(x["video"]).name: x for x in map(json.loads, out.read_text().splitlines())}
    assert list(res) == ["57082.webm", "corrupt.webm", "99999.webm", "151201.webm"]
    assert res["57082.webm"]["ok"] and res["151201.webm"]["ok"]
    assert not res["corrupt.webm"]["ok"] and "corrupt.webm" in res["corrupt.webm"]["error"]
    assert "no boxes for video 99999" in res["99999.webm"]["error"] and res["99999.webm"]["topk"] == []
    assert "2 of 4 video(s) failed" in r.stderr and "corrupt.webm" in r.stderr
    assert "FAILED" in r.stdout  # the table on stdout, the failures again on stderr
    # 151201: 33 decoded frames, 23 annotated: still scored, with what the annotation covers
    assert res["151201.webm"]["num_frames"] == 33


def test_ensemble_is_fuse_scores_of_each(ckpts, sample_videos, sample_dir, capsys):
    k = len(ckpts["names"])
    common = [sample_videos / "57082.webm", "--boxes", sample_dir / "annotations.json", "--topk", k]
    single = []
    for name in ("stin", "stin_oie"):
        rc, (res,), err = infer(*common, "--checkpoint", ckpts[name], capsys=capsys)
        assert rc == 0, err
        single.append(torch.zeros(k).index_put_((torch.tensor([t["index"] for t in res["topk"]]),),
                                                torch.tensor([t["score"] for t in res["topk"]])))
    rc, (ens,), err = infer(*common, "--checkpoint", ckpts["stin"], ckpts["stin_oie"], "--weights", 1, 3, capsys=capsys)
    assert rc == 0, err
    check_topk(ens, ckpts["names"], k)
    assert [m["weight"] for m in ens["models"]] == [1.0, 3.0]
    got = torch.zeros(k).index_put_((torch.tensor([t["index"] for t in ens["topk"]]),),
                                    torch.tensor([t["score"] for t in ens["topk"]]))
    expected = fuse_scores([p.clamp_min(1e-12).log()[None] for p in single], [1, 3])[0]  # log p: logits of p
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    # repeated --checkpoint options make the same ensemble
    rc, (again,), _ = infer(*common, "--checkpoint", ckpts["stin"], "--checkpoint", ckpts["stin_oie"],
                            "--weights", 1, 3, capsys=capsys)
    assert again["topk"] == ens["topk"]


def test_frame_folder_glob_and_directory_inputs(ckpts, sample_videos, sample_dir, capsys):
    boxes = ["--checkpoint", ckpts["stin"], "--boxes", sample_dir / "annotations.json"]
    rc, (folder,), err = infer(sample_dir / "frames" / "57082", *boxes, capsys=capsys)
    assert rc == 0, err
    assert folder["video_id"] == "57082" and folder["num_frames"] == 38 and "frame folder" in folder["fps_note"]
    rc, by_glob, err = infer(str(sample_videos / "*.webm"), *boxes, capsys=capsys)
    assert rc == 0, err
    assert sorted(r["video_id"] for r in by_glob) == ["151201", "57082"]
    rc, by_dir, _ = infer(sample_videos, *boxes, capsys=capsys)
    assert [r["video_id"] for r in by_dir] == [r["video_id"] for r in sorted(by_glob, key=lambda r: r["video_id"])]
    # boxes + frame size decide a box model's input: the frame folder and its .webm score the same
    webm = next(r for r in by_glob if r["video_id"] == "57082")
    assert [t["label"] for t in webm["topk"]] == [t["label"] for t in folder["topk"]]
    np.testing.assert_allclose([t["score"] for t in webm["topk"]], [t["score"] for t in folder["topk"]], atol=1e-6)


def test_scene_only_needs_no_boxes_and_24fps_is_resampled(ckpts, sample_dir, tmp_path, capsys, monkeypatch):
    frames = read_jpeg_folder(sample_dir / "frames" / "57082")
    video = encode_video(tmp_path / "clip24.mp4", np.repeat(frames[:, :, :426], 2, axis=0), fps=24)  # H.264: even width
    rc, (res,), err = infer(video, "--checkpoint", ckpts["scene"], "--render", tmp_path / "r", "--topk", 3,
                            capsys=capsys)
    assert rc == 0, err
    check_topk(res, ckpts["names"], 3)
    assert res["boxes"] == {"source": None, "tracks": []}
    assert res["resampled"] and res["native_fps"] == 24 and res["native_frames"] == 76 and res["num_frames"] == 38
    assert "24 -> 12 fps" in res["fps_note"] and "24 -> 12 fps" in err
    assert len(decode(tmp_path / "r" / "clip24.mp4")) == 38
    # without the overlay, a pixel model decodes only the frames it samples, not the whole video
    from vislearn.common import video as video_module

    decoded = []
    for cls in (video_module.PyAVReader, video_module.DecordReader):
        def spy(self, wanted, _read=cls._read):
            frames = _read(self, wanted)
            decoded.append(len(frames))
            return frames
        monkeypatch.setattr(cls, "_read", spy)
    rc, (alone,), err = infer(video, "--checkpoint", ckpts["scene"], "--topk", 3, capsys=capsys)
    assert rc == 0, err
    assert alone["topk"] == res["topk"] and 0 < sum(decoded) < alone["num_frames"]


def test_detector_and_tracker_end_to_end(ckpts, sample_videos, tmp_path, capsys, monkeypatch):
    from vislearn.common import video as video_module
    from vislearn.video.tracking.detector import build_detector, default_spec, save_detector

    decoded = []  # frames the decoders hand out: each frame once, for the detector, the model and the overlay
    for cls in (video_module.PyAVReader, video_module.DecordReader, video_module.FrameFolderReader):
        def spy(self, wanted, _read=cls._read):
            frames = _read(self, wanted)
            decoded.append(len(frames))
            return frames
        monkeypatch.setattr(cls, "_read", spy)

    torch.manual_seed(0)
    # tiny input: fast on a CPU; 6 boxes a frame: untrained, its 30 equal-score boxes a frame overlap so much
    # that the tracker's matches flip with the detections file's rounding
    spec = default_spec("mobilenet_v3", min_size=64, max_size=96, detections_per_img=6)
    det = build_detector(spec)  # untrained; its class head made confident ("object") so that tracks form
    with torch.no_grad():
        det.roi_heads.box_predictor.cls_score.weight.zero_()
        det.roi_heads.box_predictor.cls_score.bias.copy_(torch.tensor([-4.0, -4.0, 4.0]))
    save_detector(tmp_path / "det.pt", det, spec)
    rc, (res,), err = infer(sample_videos / "151201.webm", "--checkpoint", ckpts["stin"], "--detector",
                            tmp_path / "det.pt", "--save-tracks", tmp_path / "tracks.json", "--render",
                            tmp_path / "r", capsys=capsys)
    assert rc == 0, err
    assert sum(decoded) == res["num_frames"] == 33
    check_topk(res, ckpts["names"], 5)
    assert res["timings"]["detect"] > 0 and res["timings"]["track"] > 0
    assert "det.pt (mobilenet_v3, 64 px) + tracker" in res["boxes"]["source"]
    tracks = AnnotationFile.load(tmp_path / "tracks.json")  # the tracked boxes, reusable as --boxes
    assert tracks.video_ids() == ["151201"] and len(tracks.data["151201"]) == 33  # a record per 12-fps frame
    assert res["boxes"]["tracks"] == tracks.get("151201").track_ids() == ["0000", "0001", "0002"]
    assert len(decode(tmp_path / "r" / "151201.mp4")) == 33
    # the same tracks as `tracking detect` then `tracking track` by hand (the detections file keeps boxes
    # to 0.01 px and scores to 1e-4, hence the tolerance), and exactly those of `tracking track VIDEO`
    from vislearn.video.tracking.__main__ import main as tracking

    video = str(sample_videos / "151201.webm")
    assert tracking(["detect", video, "--detector", str(tmp_path / "det.pt"), "--out", str(tmp_path / "d.json"),
                     "--quiet"]) == 0
    assert tracking(["track", "--detections", str(tmp_path / "d.json"), "--out", str(tmp_path / "by_hand.json")]) == 0
    assert tracking(["track", video, "--detector", str(tmp_path / "det.pt"), "--out", str(tmp_path / "e2e.json"),
                     "--quiet"]) == 0
    capsys.readouterr()
    saved = json.loads((tmp_path / "tracks.json").read_text())
    assert saved == json.loads((tmp_path / "e2e.json").read_text())
    by_hand = AnnotationFile.load(tmp_path / "by_hand.json").get("151201")
    mine = tracks.get("151201")
    assert mine.track == by_hand.track and np.array_equal(mine.frame_index, by_hand.frame_index)
    assert np.array_equal(mine.box_frame, by_hand.box_frame) and np.allclose(mine.xyxy, by_hand.xyxy, atol=0.05)
    rc, (again,), err = infer(sample_videos / "151201.webm", "--checkpoint", ckpts["stin"], "--boxes",
                              tmp_path / "tracks.json", capsys=capsys)
    assert rc == 0, err
    assert again["topk"] == res["topk"]  # the same boxes give the same answer, tracked here or read back
    # the tracker is a seam: another one (here the greedy linker) plugs into the session, one per video
    from vislearn.video.actions.infer import build_parser, infer_video, load_session
    from vislearn.video.tracking.simulate import GreedyLinker

    s = load_session(build_parser().parse_args([str(sample_videos / "151201.webm"), "--checkpoint", str(ckpts["stin"]),
                                                "--detector", str(tmp_path / "det.pt"), "--quiet"]))
    made = []
    s.new_tracker = lambda: made.append(GreedyLinker()) or made[-1]
    greedy = infer_video(s, "151201", sample_videos / "151201.webm")
    assert greedy["ok"] and len(made) == 1 and greedy["boxes"]["tracks"]
    # --context: the object detections rescored before tracking (a model that gives every object 0.8808), the same
    # as `tracking track VIDEO --detector --context`
    from vislearn.video.tracking.context import FEATURES, ContextRescorer, save_rescorer

    n = len(FEATURES)
    save_rescorer(tmp_path / "ctx.json", ContextRescorer([0.0] * n, [1.0] * n, [0.0] * n, 2.0))
    rc, (ctx_res,), err = infer(sample_videos / "151201.webm", "--checkpoint", ckpts["stin"], "--detector",
                                tmp_path / "det.pt", "--context", tmp_path / "ctx.json", "--save-tracks",
                                tmp_path / "ctx_tracks.json", capsys=capsys)
    assert rc == 0, err
    assert "(track context" in ctx_res["boxes"]["source"]
    assert tracking(["track", video, "--detector", str(tmp_path / "det.pt"), "--context", str(tmp_path / "ctx.json"),
                     "--out", str(tmp_path / "ctx_e2e.json"), "--quiet"]) == 0
    rescored = json.loads((tmp_path / "ctx_tracks.json").read_text())
    assert rescored == json.loads((tmp_path / "ctx_e2e.json").read_text())
    scores = {lab["score"] for rec in rescored["151201"] for lab in rec["labels"]}
    assert scores == {0.8808}  # every tracked object box carries its new score (no hand: the head says "object")
    assert main([str(sample_videos / "151201.webm"), "--checkpoint", str(ckpts["stin"]), "--boxes",
                 str(tmp_path / "tracks.json"), "--context", str(tmp_path / "ctx.json")]) == 2
    assert "give it with --detector" in capsys.readouterr().err


def test_bad_arguments_are_one_line_errors(ckpts, sample_videos, sample_dir, tmp_path, capsys):
    video = sample_videos / "57082.webm"
    boxes = ["--boxes", sample_dir / "annotations.json"]
    assert main([str(video), "--checkpoint", str(tmp_path / "nope.pt"), *map(str, boxes)]) == 2
    assert "error: " in (err := capsys.readouterr().err) and "nope.pt: checkpoint not found" in err
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(ckpts["stin"].read_bytes()[:2000])
    assert main([str(video), "--checkpoint", str(truncated), *map(str, boxes)]) == 2
    assert "truncated.pt: not a checkpoint this tool can load safely" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.webm"), "--checkpoint", str(ckpts["stin"]), *map(str, boxes)]) == 2
    assert "missing.webm: video not found" in capsys.readouterr().err
    assert main([str(video), "--checkpoint", str(ckpts["stin"])]) == 2
    assert "reads boxes: give --boxes" in capsys.readouterr().err
    assert main([str(video), "--checkpoint", str(ckpts["stin"]), str(ckpts["scene"]), "--weights", "1"]) == 2
    assert "1 weight(s) for 2 checkpoint(s)" in capsys.readouterr().err
    assert main([str(tmp_path / "*.mkv"), "--checkpoint", str(ckpts["stin"])]) == 2
    assert "no file matches" in capsys.readouterr().err


def test_strg_reads_the_boxes_on_its_frames(ckpts, sample_videos, sample_dir, tmp_path, capsys):
    """A region-graph checkpoint: scored through the boxes of the frames it samples; moving the boxes
    changes its scores, and without boxes it is a clear error."""
    video = sample_videos / "57082.webm"
    rc, (res,), _ = infer(video, "--checkpoint", ckpts["strg"], "--boxes", sample_dir / "annotations.json",
                          capsys=capsys)
    assert rc == 0
    check_topk(res, ckpts["names"], 5)
    records = json.loads((sample_dir / "annotations.json").read_text())["57082"]
    for rec in records:  # every box shifted to the top-left corner
        for lab in rec["labels"]:
            b = lab["box2d"]
            w, h = b["x2"] - b["x1"], b["y2"] - b["y1"]
            lab["box2d"] = {"x1": 0, "y1": 0, "x2": w, "y2": h}
    (tmp_path / "moved.json").write_text(json.dumps({"57082": records}))
    rc, (moved,), _ = infer(video, "--checkpoint", ckpts["strg"], "--boxes", tmp_path / "moved.json", capsys=capsys)
    assert rc == 0 and moved["ok"]
    assert [(t["index"], t["score"]) for t in res["topk"]] != [(t["index"], t["score"]) for t in moved["topk"]]
    rc, _, err = infer(video, "--checkpoint", ckpts["strg"], capsys=capsys)
    assert rc == 2 and "reads boxes" in err
