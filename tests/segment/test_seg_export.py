"""ONNX export of SAM: the decoder graph run by onnxruntime equals our torch wrapper and the official
`segment_anything.utils.onnx.SamOnnxModel` (on the same weights: an official model at a small size with random
weights, saved as a user's `.pth` would be, loaded by `load_sam`) for every kind of prompt, multimask and single-mask;
the encoder graph equals the torch encoder; quantised files run; --gelu-approximate leaves no Erf; the CLI writes its
files, refuses a foreign one, and says one line for a bad checkpoint."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vislearn.segment.export import DECODER_CASES, ExportMismatch, export, main
from vislearn.segment.model.build import load_sam
from vislearn.segment.onnx_model import (DECODER_INPUTS, SamOnnxDecoder, SamOnnxEncoder, decoder_example,
                                         encoder_example)

pytest.importorskip("segment_anything")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
from official_sam import SMALL, official_model  # noqa: E402
from segment_anything.utils.onnx import SamOnnxModel  # noqa: E402

TOL = 1e-4


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The official model, ours loaded from its saved state dict, and one export of each kind (via `export`)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("export")
    official = official_model(SMALL, perturb=0.05)
    ckpt = root / "sam_official.pth"
    torch.save(official.state_dict(), ckpt)
    ours, _ = load_sam(ckpt)
    reports = {}
    for name, kw in {"multi": {}, "single": dict(single_mask=True)}.items():
        reports[name] = export(str(ckpt), root / name, what=("decoder", "encoder") if name == "multi" else ("decoder",),
                               log=lambda *_: None, **kw)
    return dict(root=root, ckpt=ckpt, official=official, ours=ours, reports=reports)


def run_onnx(path, feeds: dict) -> list[np.ndarray]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    return sess.run(None, {k: v.numpy() for k, v in feeds.items() if k in names})


def max_diff(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    return float(np.abs(a - b).max())


@pytest.mark.parametrize("single", [False, True], ids=["multimask", "single"])
@pytest.mark.parametrize("case", list(DECODER_CASES))
def test_decoder_onnx_equals_torch_and_the_official_onnx_model(setup, case, single):
    """Point, box (labels 2/3), points + box, several points, a mask input, several prompts at once; at image sizes
    other than the traced one (the crop to the unpadded area must follow orig_im_size)."""
    ours, official = setup["ours"], setup["official"]
    feeds = decoder_example(ours, seed=123, **DECODER_CASES[case])
    got = run_onnx(setup["root"] / ("single" if single else "multi") / "decoder.onnx", feeds)
    want_ours = SamOnnxDecoder(ours, return_single_mask=single)(*feeds.values())
    want_official = SamOnnxModel(official, return_single_mask=single)(*feeds.values())
    assert got[0].shape[:2] == (feeds["point_coords"].shape[0], 1 if single else 4)
    assert got[0].shape[2:] == tuple(int(v) for v in feeds["orig_im_size"])
    for g, o, w in zip(got, want_ours, want_official):
        assert max_diff(g, o) <= TOL
        assert max_diff(g, w) <= TOL


def test_single_mask_follows_the_official_rule(setup):
    """One click + padding: the best of the three multimask outputs; three clicks: the single-mask token."""
    ours = setup["ours"]
    path = setup["root"] / "single" / "decoder.onnx"
    multi = SamOnnxDecoder(ours, return_single_mask=False)
    for clicks, allowed in [(1, {1, 2, 3}), (3, {0})]:
        feeds = decoder_example(ours, num_points=clicks, seed=5)
        low_single = run_onnx(path, feeds)[2]
        _, scores, low_all = multi(*feeds.values())
        pick = [i for i in range(4) if max_diff(low_all[:, i:i + 1], low_single) <= TOL]
        assert pick and set(pick) <= allowed
        if clicks == 1:
            assert pick == [1 + int(scores[0, 1:].argmax())]


def test_decoder_onnx_equals_the_models_own_prompt_path(setup):
    """The ONNX graph's prompt encoding (padding point appended by the caller) is `Sam.decode`'s (which pads itself):
    the three multimask outputs and the single-mask output agree."""
    ours = setup["ours"]
    feeds = decoder_example(ours, num_points=2, seed=9)
    low = run_onnx(setup["root"] / "multi" / "decoder.onnx", feeds)[2]
    points = (feeds["point_coords"][:, :-1], feeds["point_labels"][:, :-1].long())  # without the padding point
    with torch.no_grad():
        multi, _ = ours.decode(feeds["image_embeddings"], points, multimask_output=True)
        single, _ = ours.decode(feeds["image_embeddings"], points, multimask_output=False)
    assert max_diff(low[:, 1:], multi) <= TOL
    assert max_diff(low[:, :1], single) <= TOL


@pytest.mark.parametrize("options", [dict(use_stability_score=True), dict(return_extra_metrics=True)])
def test_options_equal_the_official(setup, options):
    ours, official = setup["ours"], setup["official"]
    for single in (False, True):
        feeds = decoder_example(ours, num_points=1, seed=2, orig_size=(90, 120))
        got = SamOnnxDecoder(ours, single, **options)(*feeds.values())
        want = SamOnnxModel(official, single, **options)(*feeds.values())
        assert len(got) == len(want) == (5 if options.get("return_extra_metrics") else 3)
        for g, w in zip(got, want):
            assert max_diff(g, w) <= TOL


def test_encoder_onnx_equals_torch_and_the_official(setup):
    """Preprocessing inside: a resized 0-255 image of another batch size and aspect ratio than the traced one."""
    ours, official = setup["ours"], setup["official"]
    image = encoder_example(ours, batch=2, aspect=0.6, seed=4)
    got = run_onnx(setup["root"] / "multi" / "encoder.onnx", {"image": image})[0]
    assert got.shape == (2, SMALL.prompt_dim, 8, 8)
    assert max_diff(got, SamOnnxEncoder(ours)(image)) <= TOL
    with torch.no_grad():
        assert max_diff(got, official.image_encoder(official.preprocess(image))) <= TOL
    report = setup["reports"]["multi"]["files"]
    assert report["encoder"]["max_abs_difference"] <= TOL and report["decoder"]["max_abs_difference"] <= TOL


def test_quantized_files_run_and_their_error_is_reported(setup, tmp_path):
    report = export(str(setup["ckpt"]), tmp_path, quantized=True, log=lambda *_: None)
    for part in ("decoder", "encoder"):
        entry = report["files"][f"{part}_quantized"]
        assert (tmp_path / entry["file"]).stat().st_size < (tmp_path / f"{part}.onnx").stat().st_size
        assert "MatMulInteger" in _ops(tmp_path / entry["file"])  # 8-bit weights, dynamically quantised inputs
        assert 0 < entry["max_abs_difference"] < float("inf")
    feeds = decoder_example(setup["ours"], num_points=1, seed=3, orig_size=(64, 80))
    masks, scores, low = run_onnx(tmp_path / "decoder_quantized.onnx", feeds)
    assert masks.shape == (1, 4, 64, 80) and np.isfinite(masks).all() and np.isfinite(scores).all()


def _ops(path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def test_gelu_approximate_has_no_erf(setup, tmp_path):
    assert "Erf" in _ops(setup["root"] / "multi" / "decoder.onnx")  # the exact GELU is an Erf
    assert "Erf" in _ops(setup["root"] / "multi" / "encoder.onnx")
    report = export(str(setup["ckpt"]), tmp_path, gelu_approximate=True, log=lambda *_: None)
    for part in ("decoder", "encoder"):
        assert "Erf" not in _ops(tmp_path / f"{part}.onnx")
        assert report["files"][part]["max_abs_difference"] <= TOL  # vs torch with the same GELU
        assert report["files"][part]["gelu_approximation_max_abs"] > 0


def test_a_file_that_does_not_match_is_not_kept(setup, tmp_path):
    with pytest.raises(ExportMismatch, match="not kept"):
        export(str(setup["ckpt"]), tmp_path, what=("decoder",), tolerance=-1.0, log=lambda *_: None)
    assert not (tmp_path / "decoder.onnx").exists()
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".onnx"]


def test_cli_writes_refuses_and_reports_bad_input(setup, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--checkpoint", str(setup["ckpt"]), "--out", str(out), "--what", "decoder", "--single-mask"]) == 0
    report = json.loads((out / "export.json").read_text())
    assert report["options"]["return_single_mask"] and report["img_size"] == SMALL.img_size
    assert report["files"]["decoder"]["max_abs_difference"] <= TOL
    sess = ort.InferenceSession(str(out / "decoder.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == list(DECODER_INPUTS)
    assert json.loads(sess.get_modelmeta().custom_metadata_map["vislearn_sam"])["part"] == "decoder"
    # a re-run replaces its own files
    assert main(["--checkpoint", str(setup["ckpt"]), "--out", str(out), "--what", "decoder"]) == 0
    capsys.readouterr()

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "decoder.onnx").write_text("mine")
    assert main(["--checkpoint", str(setup["ckpt"]), "--out", str(theirs), "--what", "decoder"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "decoder.onnx" in err and "--overwrite" in err
    assert (theirs / "decoder.onnx").read_text() == "mine"

    bad = tmp_path / "bad.pth"
    torch.save({"weights": torch.zeros(3)}, bad)
    assert main(["--checkpoint", str(bad), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "bad.pth" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o2").exists()


def test_onnx_files_end_to_end_equal_the_predictor(setup):
    """What a client does with the two files (docs/segment.md): resize, encode, prompts scaled to the resized frame
    (a padding point without a box, box corners labelled 2 / 3) -> the predictor's logits at the original size."""
    from vislearn.segment.predictor import SamPredictor
    from vislearn.segment.transforms import ResizeLongestSide

    ours, root = setup["ours"], setup["root"] / "multi"
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (90, 150, 3), dtype=np.uint8)
    resize = ResizeLongestSide(SMALL.img_size)
    x = resize.apply_image(img).transpose(2, 0, 1)[None].astype(np.float32)
    embedding = ort.InferenceSession(str(root / "encoder.onnx")).run(None, {"image": x})[0]
    decoder = ort.InferenceSession(str(root / "decoder.onnx"))
    predictor = SamPredictor(ours)
    predictor.set_image(img)
    point, box = np.array([[60.0, 40.0]]), np.array([20.0, 10.0, 120.0, 80.0])
    for use_box in (False, True):
        coords = np.concatenate([point, box.reshape(2, 2)] if use_box else [point, np.zeros((1, 2))])
        labels = np.array([1.0, 2.0, 3.0] if use_box else [1.0, -1.0], dtype=np.float32)
        feeds = {"image_embeddings": embedding,
                 "point_coords": resize.apply_coords(coords, img.shape[:2])[None].astype(np.float32),
                 "point_labels": labels[None], "mask_input": np.zeros((1, 1, 32, 32), np.float32),
                 "has_mask_input": np.zeros(1, np.float32), "orig_im_size": np.array(img.shape[:2], np.float32)}
        masks, scores, _ = decoder.run(None, feeds)
        want, want_iou, _ = predictor.predict(point, np.array([1]), box=box if use_box else None, return_logits=True)
        assert max_diff(masks[0, 1:], want) <= TOL and max_diff(scores[0, 1:], want_iou) <= 1e-4
