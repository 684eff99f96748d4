"""Detector: building without downloads, weights from local files, training frames/boxes, and the
train-detector -> detect/track pipeline on tiny synthetic videos (checks files and formats, not
detection quality: a CPU test cannot train a detector)."""
import copy
import json

import numpy as np
import pytest
import torch

from vislearn.common.errors import UserError
from vislearn.video.tracking.__main__ import main
from vislearn.video.tracking.detector import (FrameSamples, VideoItem, box_targets, build_detector, default_spec,
                               load_backbone_from_classifier, load_detector, load_detector_init)

TINY = {"min_size": 64, "max_size": 96}


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """Any attempt to fetch weights fails the test."""
    def refuse(*a, **k):
        raise AssertionError("tried to download weights")
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from vislearn.video.data.synthetic.__main__ import main as synth

    out = tmp_path_factory.mktemp("synthetic")
    assert synth(["--out", str(out), "--videos", "3", "--seed", "1", "--width", "96", "--height", "96", "--quiet"]) == 0
    return out


def test_build_both_architectures_without_weights():
    m = build_detector(default_spec("mobilenet_v3", **TINY))
    assert m.roi_heads.box_predictor.cls_score.out_features == 3  # background, hand, object
    assert m.transform.min_size == (64,) and m.transform.max_size == 96
    m = build_detector(default_spec("resnet50_v2"))
    assert m.roi_heads.box_predictor.cls_score.out_features == 3
    with pytest.raises(UserError, match="unknown detector architecture"):
        default_spec("yolo")


def test_backbone_and_detector_weights_from_local_files(tmp_path):
    from torchvision.models import mobilenet_v3_large
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn

    cls = mobilenet_v3_large(weights=None)
    torch.save(cls.state_dict(), tmp_path / "mobilenet_v3_large.pth")
    spec = default_spec("mobilenet_v3", frozen_bn=True, **TINY)
    det = build_detector(spec)
    info = load_backbone_from_classifier(det, tmp_path / "mobilenet_v3_large.pth", "mobilenet_v3")
    assert info["loaded"] == info["of"]
    assert torch.equal(det.backbone.body["0"][0].weight, cls.features[0][0].weight)
    bn = det.backbone.body["0"][1]  # pretrained backbone: BN frozen (eval mode, no gradients) even in training
    assert not det.train().backbone.body["0"][1].training and not bn.weight.requires_grad
    assert torch.equal(det.backbone.body["0"][1].running_var, cls.features[0][1].running_var)
    assert not det.backbone.body["0"][0].weight.requires_grad and det.backbone.body["16"][0].weight.requires_grad
    # frozen BatchNorm computes what torchvision's FrozenBatchNorm2d computes, in training mode too, and a
    # detector saved with that layout (no num_batches_tracked) still loads
    from vislearn.common.checkpoint import save_checkpoint
    from torchvision.ops.misc import FrozenBatchNorm2d
    from vislearn.video.tracking.detector import CHECKPOINT_KIND

    old_body = copy.deepcopy(cls.features)
    for block in old_body.modules():
        for name, child in list(block.named_children()):
            if isinstance(child, torch.nn.BatchNorm2d):
                fb = FrozenBatchNorm2d(child.num_features, eps=child.eps)
                fb.load_state_dict({k: v for k, v in child.state_dict().items() if k != "num_batches_tracked"})
                setattr(block, name, fb)
    x = torch.rand(1, 3, 64, 64)
    body = torch.nn.Sequential(*det.train().backbone.body.children())  # the body's layers, run to the end
    torch.testing.assert_close(body(x), old_body.train()(x), rtol=1e-4, atol=1e-5)
    old_state = {k: v for k, v in det.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_checkpoint({"kind": CHECKPOINT_KIND, "spec": {**spec.__dict__, "classes": list(spec.classes)},
                     "model": old_state}, tmp_path / "old.pt")
    again, _ = load_detector(tmp_path / "old.pt")
    assert all(torch.equal(again.state_dict()[k], v) for k, v in old_state.items())

    coco = fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None, num_classes=91)
    torch.save(coco.state_dict(), tmp_path / "coco.pth")
    det = build_detector(default_spec("mobilenet_v3", **TINY))
    info = load_detector_init(det, tmp_path / "coco.pth")
    assert any("cls_score" in k for k in info["skipped"])  # the 91-class head does not fit
    assert torch.equal(det.rpn.head.conv[0][0].weight, coco.rpn.head.conv[0][0].weight)

    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="junk.pth"):
        load_backbone_from_classifier(det, tmp_path / "junk.pth", "mobilenet_v3")
    torch.save({"a": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(UserError, match="match by name and shape"):
        load_detector_init(det, tmp_path / "other.pth")


def test_training_frames_carry_the_boxes_of_their_annotation_frame(synthetic):
    from vislearn.video.data.annotations import AnnotationFile

    boxes = AnnotationFile.load(synthetic / "annotations.json")
    vid = boxes.video_ids()[0]
    vb = boxes.get(vid)
    items = [VideoItem(vid, synthetic / "videos" / f"{vid}.webm", vb)]
    ds = FrameSamples(items, frames=3, train=False)
    samples = ds[0]
    assert len(samples) == 3
    for image, target in samples:
        f = target["frame"]
        assert image.shape == (3, 96, 96) and 0 <= float(image.min()) and float(image.max()) <= 1
        expect, labels = box_targets(vb, f, 96, 96)
        assert np.allclose(target["boxes"].numpy(), expect) and (target["labels"].numpy() == labels + 1).all()
        row = int(np.searchsorted(vb.frame_index, f))
        assert len(expect) == int((vb.box_frame == row).sum())  # all boxes of annotation frame f
    # training samples change with the epoch, are reproducible, and flips move the boxes
    train = FrameSamples(items, frames=2, train=True, seed=3)
    a = [t["frame"] for _, t in train[0]]
    assert a == [t["frame"] for _, t in train[0]]
    train.set_epoch(1)
    assert len(train[0]) == 2
    # box_targets: clipped, degenerate dropped, hand vs object
    from vislearn.video.data.annotations import VideoBoxes

    vb2 = VideoBoxes("x", np.array([0], np.int32), np.array([0, 0, 0], np.int32),
                     np.array([[-5, 10, 50, 40], [90, 5, 120, 30], [10, 10, 10.5, 20]], np.float32),
                     ["hand", "0000", "0001"], ["hand", "cup", "pen"])
    b, l = box_targets(vb2, 0, 96, 96)
    assert b.tolist() == [[0, 10, 50, 40], [90, 5, 96, 30]] and l.tolist() == [0, 1]
    assert box_targets(vb2, 5, 96, 96)[0].shape == (0, 4)


def test_train_resume_detect_track_pipeline(synthetic, tmp_path, capsys):
    run = tmp_path / "run"
    common = ["--boxes", str(synthetic / "annotations.json"), "--videos", str(synthetic / "videos"), "--out", str(run),
              "--frames-per-video", "1", "--batch-size", "2", "--min-size", "64", "--max-size", "96",
              "--eval-frames-per-video", "2", "--warmup-iters", "1", "--quiet", "--threads", "2"]
    assert main(["train-detector", *common, "--epochs", "1"]) == 0
    for name in ("last.pt", "best.pt", "config.json", "metrics.jsonl", "results.json"):
        assert (run / name).is_file(), name
    first = (run / "metrics.jsonl").read_text().splitlines()
    assert len(first) == 1
    row = json.loads(first[0])
    assert {"loss", "classification", "lr", "map50", "map", "ap50_hand", "ap50_object", "ap_hand", "heldout_frames"} <= set(row)
    assert row["heldout_frames"] > 0 and (row["map50"] is None or 0 <= row["map50"] <= 1)

    assert main(["train-detector", *common, "--epochs", "1"]) == 2  # refuses to overwrite a run
    assert "--resume" in capsys.readouterr().err
    other = tmp_path / "other"  # a folder with a run's files but no last.pt: nothing to resume, nothing replaced
    other.mkdir()
    (other / "results.json").write_text("mine")
    assert main(["train-detector", *[a if a != str(run) else str(other) for a in common], "--epochs", "1"]) == 2
    assert "results.json" in capsys.readouterr().err and (other / "results.json").read_text() == "mine"
    assert main(["train-detector", "--boxes", str(synthetic / "annotations.json"), "--videos",
                 str(synthetic / "videos"), "--out", str(run), "--epochs", "2", "--resume", "--quiet"]) == 0
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and lines[0] == first[0] and json.loads(lines[1])["epoch"] == 1
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and {"model", "optimizer", "lr_scheduler", "rng", "spec"} <= set(ckpt)
    assert ckpt["options"]["frames_per_video"] == 1  # resumed with the run's own options
    results = json.loads((run / "results.json").read_text())
    assert results["epochs"] == 2 and results["data"]["train_videos"] >= 1

    model, spec = load_detector(run)  # a run folder -> best.pt
    assert spec.min_size == 64 and spec.classes == ("hand", "object")

    # a short clip as a frame folder (also a supported input): detect, then track end to end
    from vislearn.common.video import open_video
    from PIL import Image

    vid = json.loads((synthetic / "annotations.json").read_text()).__iter__().__next__()
    clip = tmp_path / "clips" / vid
    clip.mkdir(parents=True)
    with open_video(synthetic / "videos" / f"{vid}.webm") as r:
        for i, frame in enumerate(r.get_frames(range(5))):
            Image.fromarray(frame).save(clip / f"{i + 1:04d}.jpg")
    dets, tracks = tmp_path / "dets.json", tmp_path / "tracks.json"
    assert main(["detect", str(clip), "--detector", str(run / "best.pt"), "--out", str(dets), "--quiet",
                 "--score-threshold", "0.0", "--batch-size", "5"]) == 0
    data = json.loads(dets.read_text())
    assert list(data) == [vid] and [r["name"] for r in data[vid]] == [f"{vid}/{i:04d}.jpg" for i in range(1, 6)]
    for r in data[vid]:
        for lab in r["labels"]:
            assert lab["category"] in ("hand", "object") and lab["standard_category"] == "" and 0 <= lab["score"] <= 1
    assert main(["track", str(tmp_path / "clips"), "--detector", str(run), "--out", str(tracks), "--quiet",
                 "--save-detections", str(tmp_path / "dets2.json")]) == 0
    out = json.loads(tracks.read_text())
    assert list(out) == [vid] and len(out[vid]) == 5
    assert (tmp_path / "dets2.json").is_file()
    from vislearn.video.data.annotations import parse_video

    parse_video(vid, out[vid])  # an ordinary Something-Else file

    # bad detector checkpoints: one-line errors, exit 2
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    assert main(["detect", str(clip), "--detector", str(tmp_path / "bad.pt"), "--out", str(dets), "--overwrite"]) == 2
    torch.save({"model": {}}, tmp_path / "other.pt")
    assert main(["detect", str(clip), "--detector", str(tmp_path / "other.pt"), "--out", str(dets), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "not a detector checkpoint this tool can load safely" in err and "not a detector checkpoint of" in err


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_weights(synthetic, tmp_path):
    """Two epochs straight == one epoch, interruption, --resume (same seed, same data)."""
    from vislearn.video.tracking.train_detector import TrainOptions
    from vislearn.video.tracking.train_detector import train

    def opts(out):
        return TrainOptions(out=str(out), boxes=str(synthetic / "annotations.json"), videos=str(synthetic / "videos"),
                            epochs=2, frames_per_video=1, batch_size=2, eval_frames_per_video=1, warmup_iters=1,
                            min_size=64, max_size=96, seed=5)

    quiet = lambda *a, **k: None  # noqa: E731
    train(opts(tmp_path / "a"), log=quiet)

    def interrupt(loader, desc):
        if desc == "epoch 1":
            raise KeyboardInterrupt
        return loader

    with pytest.raises(KeyboardInterrupt):
        train(opts(tmp_path / "b"), progress=interrupt, log=quiet)
    train(opts(tmp_path / "b"), resume=True, log=quiet)
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_held_out_videos_come_from_the_split_or_a_seeded_fraction(synthetic, tmp_path):
    from vislearn.video.tracking.train_detector import TrainOptions
    from vislearn.video.tracking.train_detector import gather_items

    ids = sorted(json.loads((synthetic / "annotations.json").read_text()), key=int)
    split = tmp_path / "split"
    split.mkdir()
    (split / "train.json").write_text(json.dumps([{"id": i} for i in ids[:2]] + [{"id": "99999"}]))
    (split / "validation.json").write_text(json.dumps([{"id": ids[2]}]))
    base = dict(out=str(tmp_path / "r"), boxes=str(synthetic / "annotations.json"), videos=str(synthetic / "videos"))
    logs = []
    train, held, counts = gather_items(TrainOptions(**base, split=str(split)), logs.append)
    assert [i.video_id for i in train] == ids[:2] and [i.video_id for i in held] == [ids[2]]
    assert counts["no_boxes"] == 1 and "1 without boxes" in logs[0]
    a = gather_items(TrainOptions(**base, val_fraction=0.34, seed=1), logs.append)
    b = gather_items(TrainOptions(**base, val_fraction=0.34, seed=1), logs.append)
    assert [i.video_id for i in a[1]] == [i.video_id for i in b[1]] and len(a[1]) == 1 and len(a[0]) == 2
    (split / "validation.json").unlink()
    with pytest.raises(UserError, match="validation list"):
        gather_items(TrainOptions(**base, split=str(split)), logs.append)


def imagenet_weights():
    from vislearn.common.weights import resolve_weights

    try:
        return resolve_weights("mobilenet_v2_imagenet")
    except UserError as e:
        pytest.skip(str(e))


def test_mobilenet_v2_detectors_start_from_the_verified_imagenet_file():
    """Every MobileNetV2 head reads torchvision's own MobileNetV2 features, loaded from the verified file."""
    from torchvision.models import mobilenet_v2

    from vislearn.video.tracking.__main__ import ARCH_CHOICES
    from vislearn.video.tracking.detector import ARCHS, DEFAULT_ARCH

    assert ARCH_CHOICES == tuple(ARCHS) and ARCH_CHOICES[0] == DEFAULT_ARCH  # --help need not import torch
    ref = mobilenet_v2(weights=None)
    ref.load_state_dict(torch.load(imagenet_weights(), weights_only=True))
    ref.eval()
    x = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        want = ref.features(x)
    for arch in [a for a in ARCHS if a.startswith("mobilenet_v2")]:
        det = build_detector(default_spec(arch, min_size=96, max_size=128, frozen_bn=True))
        info = load_backbone_from_classifier(det, "mobilenet_v2_imagenet", arch)
        assert info["loaded"] == info["of"] == 260  # every tensor of the body; the classifier left out
        det.train()  # BatchNorm stays frozen in training
        with torch.no_grad():
            out = det.backbone.body(x)
        out = out if torch.is_tensor(out) else out["2"]  # the pyramid reads block 18 as its stride-32 level
        assert torch.allclose(out, want, atol=1e-5), arch
        blocks = list(det.backbone.body.children())
        assert not any(p.requires_grad for b in blocks[:7] for p in b.parameters())  # the first 3 of 6 stages
        assert all(p.requires_grad for p in blocks[7].parameters() if p.dim() > 1)
        out = det.eval()([x[0]])[0]
        assert set(out) == {"boxes", "scores", "labels"}


@pytest.mark.slow
def test_short_training_raises_held_out_ap(tmp_path, one_thread):
    """144 steps on frames of 12 encoded synthetic videos lift held-out AP well above the untrained model's."""
    from vislearn.video.data.synthetic.generate import generate
    from vislearn.video.tracking.train_detector import TrainOptions, evaluate_ap, gather_items, train

    imagenet_weights()
    data = tmp_path / "data"
    generate(data, videos=16, seed=4, width=128, height=96)
    # one video per step: lr 0.02 overshoots on so few (the loss jumps in epoch 2 and AP stays near 0)
    opts = TrainOptions(out=str(tmp_path / "run"), boxes=str(data / "annotations.json"), videos=str(data / "videos"),
                        val_fraction=0.25, epochs=12, frames_per_video=8, batch_size=8, eval_frames_per_video=6,
                        warmup_iters=10, lr=0.01, trainable_layers=3, seed=0)  # as measured in f2d04f5
    quiet = lambda *a, **k: None  # noqa: E731
    res = train(opts, log=quiet)
    _, held, _ = gather_items(opts, quiet)
    untrained = build_detector(default_spec("mobilenet_v2_fcos", min_size=96, max_size=128, frozen_bn=True))
    load_backbone_from_classifier(untrained, "mobilenet_v2_imagenet", "mobilenet_v2_fcos")
    samples = FrameSamples(held, 6, train=False)
    from vislearn.video.tracking.detector import collate

    loader = torch.utils.data.DataLoader(samples, batch_size=1, collate_fn=collate)
    before = evaluate_ap(untrained, loader, torch.device("cpu"))["map50"]
    after = res["final"]["map50"]
    assert after > before + 0.1, (before, after)
