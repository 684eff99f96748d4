"""Loose ends of the restructuring, each checked where a user meets it: the detector trainer's defaults
are the measured recipe; one device resolver (one-line errors, cuda:N); the frame size of the synthetic
data; one source of clip defaults; a model that cannot read the configured clips is refused before
training; the frame-size helpers sit below clip_dataset (its side of the circle with coord_batch)."""
import ast
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from box_data import make_box_split
from vislearn.common.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the messages of a machine without a GPU")


def vislearn(*args, timeout=300):
    """`vislearn ARGS...` as a real process."""
    return subprocess.run([sys.executable, "-m", "vislearn", *map(str, args)], capture_output=True, text=True,
                          env=ENV, cwd=ROOT, timeout=timeout)


def assert_one_line_error(r, *words):
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr and len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-2000:]
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def box_split(tmp_path_factory):
    return make_box_split(tmp_path_factory.mktemp("boxes"), videos=40)


def train_args(box_split, out, **over):
    split, boxes = box_split
    values = {"split": split, "boxes": boxes, "model": "stin", "model_args.feature_dim": 16, "epochs": 1,
              "batch_size": 8, "workers": 0, "frame_size": "[427,240]", "out": out, "log_every": 0,
              "device": "cpu", "eval_set": ""}
    values.update(over)
    return [f"{k}={v}" for k, v in values.items() if v is not None]  # None: leave the key out


# ------------------------------------------------------------------ 1. the detector recipe by default
class Resolved(Exception):
    """Raised in place of reading the data: carries the options a run resolved."""


def test_train_detector_defaults_are_the_measured_recipe(tmp_path, monkeypatch):
    """README / 4f055c6: 30 epochs, lr 0.02, every backbone stage training (also 2 frames of 4 videos per
    step, 200 warm-up steps). Checked on the options train() resolves for a run given no recipe flags."""
    from vislearn.video.tracking import train_detector
    from vislearn.video.tracking.__main__ import build_parser, main
    from vislearn.video.tracking.detector import build_detector, default_spec

    def stop(opts, log):
        raise Resolved(opts)

    monkeypatch.setattr(train_detector, "gather_items", stop)
    with pytest.raises(Resolved) as got:
        main(["train-detector", "--boxes", str(tmp_path / "b.json"), "--videos", str(tmp_path), "--out",
              str(tmp_path / "run"), "--quiet"])
    opts = got.value.args[0]
    assert (opts.epochs, opts.lr, opts.frames_per_video, opts.batch_size, opts.warmup_iters) == (30, 0.02, 2, 8, 200)
    det = build_detector(default_spec(opts.arch, min_size=96, max_size=128, frozen_bn=True,
                                      trainable_layers=opts.trainable_layers))  # as train() builds it
    weights = [p for p in det.backbone.body.parameters() if p.dim() > 1]  # BatchNorm stays frozen
    assert weights and all(p.requires_grad for p in weights)  # every stage trains

    # the command line's defaults are TrainOptions' own (--help need not import torch to show them)
    args = build_parser().parse_args(["train-detector", "--boxes", "b", "--videos", "v", "--out", "o"])
    fields = {f: v.default for f, v in train_detector.TrainOptions.__dataclass_fields__.items()}
    for name in ("frames_per_video", "lr", "warmup_iters", "batch_size", "eval_every", "eval_frames_per_video",
                 "weight_decay", "val_fraction", "workers", "seed", "trainable_layers", "epochs"):
        assert getattr(args, name) == fields[name], name


# ------------------------------------------------------------------ 2. one device resolver
@NO_GPU
def test_unusable_devices_are_one_line_errors_in_train(box_split, tmp_path):
    for device, words in (("cuda:0", ["'cuda:0'", "no CUDA GPU"]), ("cuda", ["'cuda'", "no CUDA GPU"]),
                          ("tpu", ["'tpu'", "auto, cpu, cuda or cuda:N"])):
        r = vislearn("video", "train", "--dry-run", *train_args(box_split, tmp_path / "run", device=device))
        assert_one_line_error(r, "device", *words)
    assert not (tmp_path / "run").exists()


def test_resolver_accepts_cuda_n_where_a_gpu_exists(monkeypatch):
    from vislearn.video.actions.distributed import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # no GPU here: say there are two
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda:0") == torch.device("cuda", 0)  # what train, evaluate and fewshot call
    assert pick_device("cuda:1", local_rank=0) == torch.device("cuda", 1)
    assert pick_device("cuda", local_rank=1) == torch.device("cuda", 1)  # a torchrun process's own GPU
    assert pick_device("auto") == torch.device("cuda", 0)
    with pytest.raises(UserError, match=r"device: 'cuda:2' asks for GPU 2, but this machine has 2"):
        pick_device("cuda:2")
    from vislearn.common.device import resolve_device

    assert resolve_device("cuda") == torch.device("cuda") and resolve_device("CUDA:1") == torch.device("cuda", 1)


def test_resolver_without_a_gpu(monkeypatch):
    from vislearn.common.device import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == resolve_device("") == resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(UserError, match=r"--device: 'cuda:0' asks for a GPU, but no CUDA GPU is available"):
        resolve_device("cuda:0", key="--device")
    for bad in ("tpu", "cuda:x", "cuda:-1", "gpu0"):
        with pytest.raises(UserError, match=rf"device: '{bad}' is not a device; use auto, cpu, cuda or cuda:N"):
            resolve_device(bad)


def test_the_tracking_commands_use_the_same_resolver(tmp_path, capsys):
    from vislearn.video.tracking.__main__ import main

    assert main(["evaluate-detector", "--detector", str(tmp_path / "d.pt"), "--boxes", str(tmp_path / "b.json"),
                 "--videos", str(tmp_path), "--split", str(tmp_path), "--device", "tpu"]) == 2
    assert "error: --device: 'tpu' is not a device; use auto, cpu, cuda or cuda:N" in capsys.readouterr().err


# ------------------------------------------------------------------ 3. the synthetic data's frame size
@pytest.fixture
def synthetic_like(box_split, tmp_path):
    """A data folder as `vislearn video synthetic` lays it out (synthetic.json beside videos/ and
    annotations.json), here with the test's boxes; 320x240, the generator's default size."""
    data = tmp_path / "data"
    (data / "videos").mkdir(parents=True)
    (data / "annotations.json").write_text(box_split[1].read_text())
    (data / "synthetic.json").write_text(json.dumps({"generator": "vislearn.video.data.synthetic",
                                                     "settings": {"width": 320, "height": 240, "fps": 12}}))
    return data


def test_synthetic_config_takes_the_frame_size_of_the_data(box_split, synthetic_like, tmp_path, monkeypatch):
    from vislearn.common.paths import CONFIG_DIR
    from vislearn.video.actions import train as train_module
    from vislearn.video.actions.config import load_config

    def stop(cfg, **kw):
        raise Resolved(cfg)

    monkeypatch.setattr(train_module, "build_data", stop)
    paths = [f"split={box_split[0]}", f"boxes={synthetic_like / 'annotations.json'}",
             f"videos={synthetic_like / 'videos'}", f"out={tmp_path / 'run'}", "device=cpu"]
    config = CONFIG_DIR / "video" / "synthetic" / "stin_oie_nl.yaml"
    for extra, size in (([], [320, 240]),  # not pinned: the data's own
                        (["frame_size=[320,240]"], [320, 240]),  # pinned as the demo pins it, agreeing
                        (["boxes=" + str(box_split[1]), "videos="], [])):  # nothing records a size (SSv2)
        with pytest.raises(Resolved) as got:
            train_module.train(load_config(config, paths + extra), dry_run=True)
        assert got.value.args[0].frame_size == size, extra


def test_a_frame_size_the_data_contradicts_is_refused(box_split, synthetic_like, tmp_path):
    r = vislearn("video", "train", "--dry-run", "--config", ROOT / "configs/video/synthetic/stin_oie_nl.yaml",
                 f"split={box_split[0]}", f"boxes={synthetic_like / 'annotations.json'}",
                 f"videos={synthetic_like / 'videos'}", f"out={tmp_path / 'run'}", "device=cpu",
                 "frame_size=[128,96]")
    assert_one_line_error(r, "frame_size: [128, 96]", "synthetic.json says the videos are 320x240")


# ------------------------------------------------------------------ 4. one source of clip defaults
def test_clip_dataset_defaults_are_the_run_configs(tmp_path, vt):
    from vislearn.video.actions.config import TrainConfig
    from vislearn.video.data import clip_dataset
    from vislearn.video.data.annotations import AnnotationFile
    from vislearn.video.data.ssv2 import Record
    from vislearn.video.data.transforms import FullFrame

    cfg = TrainConfig()
    params = inspect.signature(clip_dataset.ClipDataset).parameters
    for name in ("num_box_frames", "num_slots", "official_slots", "num_rgb_frames", "rgb_sampler", "input_size",
                 "crop"):
        assert params[name].default == getattr(cfg, name), name

    vt.encode(tmp_path / "1.webm", vt.coded_frames(40, 96, 128))
    frames = [{"name": f"1/{i + 1:04d}.jpg", "labels": [{"box2d": {"x1": 1, "y1": 1, "x2": 120, "y2": 90},
                                                          "category": "hand", "standard_category": "hand"}]}
              for i in range(40)]
    ds = clip_dataset.ClipDataset([Record(id="1", template="x", label="x", placeholders=[])], {"x": 0},
                                  AnnotationFile({"1": frames}), tmp_path, load_frames=True)
    item = ds[0]
    size = cfg.input_size
    assert item["frames"].shape == (3, cfg.num_rgb_frames, size, size)
    assert item["boxes"].shape == (cfg.num_box_frames, cfg.num_slots, 4)
    assert isinstance(ds.view_transform, FullFrame) and type(ds.rgb_sampler).__name__ == "SegmentSampler"
    doc = clip_dataset.__doc__ + clip_dataset.ClipDataset.__doc__
    assert "'multiscale' by default" not in doc and "8 box frames, 4 slots, 8 segment-sampled RGB frames" in doc


def test_the_data_package_does_not_import_the_actions_package():
    code = ("import sys, vislearn.video.data.clip_dataset, vislearn.video.data.clip_defaults; "
            "print(sorted(m for m in sys.modules if m.startswith('vislearn.video.actions')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


# ------------------------------------------------------------------ 5. the model must fit the clips
def test_a_model_that_cannot_read_the_clips_is_refused_before_training(box_split, tmp_path):
    out = tmp_path / "run"
    r = vislearn("video", "train", *train_args(box_split, out, **{"model_args.num_frames": 16}))
    assert_one_line_error(r, "model_args", "16 box frames x 4 slots", "num_box_frames=8 x num_slots=4")
    assert not (out / "last.pt").exists()
    r = vislearn("video", "train", "--dry-run", *train_args(box_split, out, num_slots=3))
    assert_one_line_error(r, "8 box frames x 4 slots", "num_slots=3")
    r = vislearn("video", "train", "--dry-run", *train_args(
        box_split, out, model="fusion", **{"model_args.feature_dim": None, "model_args.scene": "small3d",
                                           "model_args.stin": "stin", "model_args.stin_kwargs": "{num_frames: 4}"}))
    assert_one_line_error(r, "fusion's STIN takes 4 box frames")


def test_matching_model_args_still_train(box_split, tmp_path):
    r = vislearn("video", "train", "--dry-run", *train_args(box_split, tmp_path / "run", num_box_frames=6,
                                                            **{"model_args.num_frames": 6}))
    assert r.returncode == 0, r.stderr[-2000:]


# ------------------------------------------------------------------ 6. clip_dataset's side of the import circle
def _imports(module: Path) -> set[str]:
    """Sibling modules of vislearn/video/data a module imports anywhere (for type checking only too)."""
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            name = node.module if node.level == 0 else f"vislearn.video.data.{node.module}" if node.level == 1 else ""
            if name.startswith("vislearn.video.data."):
                found.add(name.split(".")[3])
    return found


DATA = ROOT / "vislearn" / "video" / "data"


def test_what_coord_batch_needs_of_clip_dataset_lives_below_both():
    """clip_dataset's side of the clip_dataset <-> coord_batch circle: SSV2_FRAME_HEIGHT and box_extent_size
    live in frame_size, which imports neither (coord_batch's own side: tests/test_house.py's circle test)."""
    from vislearn.video.data import clip_dataset, frame_size

    assert _imports(DATA / "frame_size.py").isdisjoint({"clip_dataset", "coord_batch"})
    assert _imports(DATA / "clip_defaults.py") == set()
    assert clip_dataset.SSV2_FRAME_HEIGHT == frame_size.SSV2_FRAME_HEIGHT
    assert clip_dataset.box_extent_size is frame_size.box_extent_size  # old imports keep working


# ------------------------------------------------------------------ train_boxes_also (the tracked-box row)
def shifted_boxes(src: Path, dst: Path, dx: float) -> Path:
    """A copy of a Something-Else box file with every box moved dx pixels right."""
    data = json.loads(src.read_text())
    for frames in data.values():
        for rec in frames:
            for lab in rec["labels"]:
                lab["box2d"]["x1"] += dx
                lab["box2d"]["x2"] += dx
    dst.write_text(json.dumps(data))
    return dst


def test_train_boxes_also_sees_each_training_video_with_both_sources(box_split, tmp_path):
    """Each training video twice, its copy read from the second box file; the held-out part and the evaluated
    videos read `boxes` only; a run trained on one box source is not read back as one trained on two."""
    from vislearn.video.actions.config import TrainConfig
    from vislearn.video.actions.data import ALSO, build_data
    from vislearn.video.actions.train import data_diff

    split, boxes = box_split
    also = shifted_boxes(boxes, tmp_path / "also.json", 7.0)
    base = dict(split=str(split), boxes=str(boxes), model="stin", frame_size=[427, 240], workers=0)
    one = build_data(TrainConfig(**base), needs_boxes=True, needs_frames=False, log=lambda *a: None)
    cfg = TrainConfig(**base, train_boxes_also=str(also))
    two = build_data(cfg, needs_boxes=True, needs_frames=False, log=lambda *a: None)
    ids = [r.id for r in one.train.items]
    assert [r.id for r in two.train.items] == ids + [v + ALSO for v in ids]
    assert [r.class_name for r in two.train.items] == [r.class_name for r in one.train.items] * 2
    assert [r.id for r in two.holdout.items] == [r.id for r in one.holdout.items]
    assert [r.id for r in two.evaluation.items] == [r.id for r in one.evaluation.items]
    v = ids[0]
    first, second = two.train.boxes.get(v), two.train.boxes.get(v + ALSO)
    assert first.xyxy.tolist() == one.train.boxes.get(v).xyxy.tolist()
    assert second.xyxy[:, [0, 2]] == pytest.approx(first.xyxy[:, [0, 2]] + 7.0)
    assert two.evaluation.boxes.get(two.evaluation.items[0].id).xyxy.tolist() == \
        one.evaluation.boxes.get(one.evaluation.items[0].id).xyxy.tolist()
    assert data_diff({"split": str(split), "boxes": str(boxes)}, cfg) == [f"train_boxes_also: none -> {also}"]
    with pytest.raises(UserError, match="only for box-only models"):
        build_data(cfg, needs_boxes=True, needs_frames=True, log=lambda *a: None)
