"""A pre-trained multi-scale encoder (`vislearn pretrain moco/resim/looc`: RUN/encoder.pth of `mobilenet_v2_ms`)
as the detector's starting point: its body and, when the widths agree, its feature pyramid load into the FCOS
detector by name (the detector's tensors then equal the file's); a pyramid of another width leaves the body
loaded and says so; an encoder of another network is refused in one line. Also through train-detector."""
import json

import pytest
import torch

from cli_helpers import call, one_line
from vislearn.backbones.dense import mobilenet_v2_ms, resnet18_ms
from vislearn.backbones.encoders import EncoderInfo, encoder_checkpoint
from vislearn.common.checkpoint import save_checkpoint
from vislearn.video.tracking.__main__ import main
from vislearn.video.tracking.detector import (DetectorSpec, build_detector, default_spec,
                                              load_backbone_from_classifier)

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = {"min_size": 64, "max_size": 96}


def encoder_file(path, make, fpn_channels: int, seed: int):
    torch.manual_seed(seed)
    enc = make(fpn_channels=fpn_channels)
    with torch.no_grad():  # running statistics too, so "equal to the file" is not equal to a fresh BatchNorm
        for name, t in enc.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(torch.rand_like(t) + 0.5)
            elif t.is_floating_point():
                t.copy_(torch.randn_like(t) * 0.1)
    save_checkpoint(encoder_checkpoint(enc, EncoderInfo(make.__name__, {"fpn_channels": fpn_channels}, 224,
                                                        source={"method": "resim"})), path)
    return enc.state_dict()


def test_body_and_pyramid_of_the_detectors_width_load(tmp_path):
    width = DetectorSpec().fpn_channels
    state = encoder_file(tmp_path / "enc.pth", mobilenet_v2_ms, width, seed=1)
    det = build_detector(default_spec("mobilenet_v2_fcos", frozen_bn=True, **TINY))
    info = load_backbone_from_classifier(det, tmp_path / "enc.pth", "mobilenet_v2_fcos")
    assert info["loaded"] == info["of"] > 0 and info["fpn_loaded"] == info["fpn_of"] == 12 and not info["note"]
    own = det.backbone.state_dict()
    assert {k for k in own if not k.endswith("num_batches_tracked")} <= state.keys()
    for k, v in own.items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(v, state[k]), k


def test_a_pyramid_of_another_width_leaves_the_body_loaded(tmp_path):
    state = encoder_file(tmp_path / "enc64.pth", mobilenet_v2_ms, 64, seed=2)
    det = build_detector(default_spec("mobilenet_v2_fcos", **TINY))
    fpn_before = {k: v.clone() for k, v in det.backbone.fpn.state_dict().items()}
    info = load_backbone_from_classifier(det, tmp_path / "enc64.pth", "mobilenet_v2_fcos")
    assert info["loaded"] == info["of"] and info["fpn_loaded"] == 0
    assert "64 channels" in info["note"] and "128 channels" in info["note"] and "body only" in info["note"]
    assert torch.equal(det.backbone.body["0"][0].weight, state["body.0.0.weight"])
    assert all(torch.equal(v, fpn_before[k]) for k, v in det.backbone.fpn.state_dict().items())
    # a file without a pyramid: the body, and a note
    encoder_file(tmp_path / "enc0.pth", mobilenet_v2_ms, 0, seed=3)
    info = load_backbone_from_classifier(det, tmp_path / "enc0.pth", "mobilenet_v2_fcos")
    assert info["loaded"] == info["of"] and info["fpn_loaded"] == 0 and "no feature pyramid" in info["note"]


def test_train_detector_starts_from_an_encoder_and_refuses_another_network(tmp_path):
    from vislearn.video.data.synthetic.__main__ import main as synth

    data = tmp_path / "data"
    assert synth(["--out", str(data), "--videos", "3", "--seed", "1", "--width", "96", "--height", "96",
                  "--quiet"]) == 0
    encoder_file(tmp_path / "enc.pth", mobilenet_v2_ms, 128, seed=4)
    common = ["train-detector", "--boxes", data / "annotations.json", "--videos", data / "videos",
              "--frames-per-video", "1", "--batch-size", "2", "--min-size", "64", "--max-size", "96",
              "--eval-frames-per-video", "1", "--warmup-iters", "1", "--epochs", "1", "--quiet", "--threads", "1"]
    rc, out, err = call(main, *common, "--out", tmp_path / "run", "--backbone-weights", tmp_path / "enc.pth")
    assert rc == 0, err
    assert "pyramid 12/12" in out and out.count("mAP@0.75") == 2  # the epoch line and the last line
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["weights_loaded"]["backbone"]["fpn_loaded"] == 12
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert {"map75", "ap75_hand", "ap75_object"} <= results["final"].keys()

    encoder_file(tmp_path / "r18.pth", resnet18_ms, 128, seed=5)
    rc, out, err = call(main, *common, "--out", tmp_path / "run18", "--backbone-weights", tmp_path / "r18.pth")
    line = one_line(err)
    assert rc == 2 and "r18.pth" in line and "mobilenet_v2_ms" in line
