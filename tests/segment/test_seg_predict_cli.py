"""`vislearn segment predict` and `vislearn segment auto`, in process: the outputs exist and decode, user mistakes
are one line and exit code 2, a foreign file in --out is refused, and `auto` resumes where it stopped."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from vislearn.segment import auto, predict
from vislearn.segment.masks import rle_decode

segment_anything = pytest.importorskip("segment_anything")
from official_sam import TINY, official_model  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg_cli")
    ckpt = root / "sam_tiny.pth"
    torch.save(official_model(TINY, decoder_gain=3.0).state_dict(), ckpt)  # an official-layout file, as a user's sam_vit_b.pth
    rng = np.random.default_rng(0)
    imgs = root / "images"
    imgs.mkdir()
    for name, (h, w) in {"a.png": (48, 64), "b.jpg": (60, 40)}.items():
        img = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        img[10:30, 10:30] = (220, 30, 30)
        Image.fromarray(img).save(imgs / name)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "notes.txt").write_text("not a checkpoint")
    return {"root": root, "ckpt": str(ckpt), "a": str(imgs / "a.png"), "b": str(imgs / "b.jpg"), "imgs": str(imgs),
            "broken": str(root / "broken.png"), "txt": str(root / "notes.txt")}


def run(main, argv):
    """The exit code, whether the command returned it or argparse raised it (usage errors)."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def one_line_error(capsys, code):
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "error" in err and "Traceback" not in err, err
    return err


def test_predict_points_and_box(files, tmp_path):
    out = tmp_path / "out"
    code = predict.main([files["a"], files["b"], "--checkpoint", files["ckpt"], "--points", "20,20", "30,25,0",
                         "--box", "5,5,35,35", "--multimask", "--out", str(out)])
    assert code == 0
    for stem, (h, w) in (("a", (48, 64)), ("b", (60, 40))):
        rec = json.loads((out / stem / "masks.json").read_text())
        assert rec["image"] == {"file_name": f"{stem}.{'png' if stem == 'a' else 'jpg'}", "height": h, "width": w}
        assert rec["prompts"]["points"] == [[20.0, 20.0], [30.0, 25.0]] and rec["prompts"]["point_labels"] == [1, 0]
        assert rec["prompts"]["box"] == [5.0, 5.0, 35.0, 35.0]
        assert len(rec["annotations"]) == 3 and len(rec["predicted_ious"]) == 3
        assert rec["best"] == int(np.argmax(rec["predicted_ious"]))
        for k, ann in enumerate(rec["annotations"]):
            png = np.asarray(Image.open(out / stem / f"mask_{k}.png"))
            assert set(np.unique(png)) <= {0, 255}
            m = rle_decode(ann["segmentation"])
            assert np.array_equal(m, png == 255) and ann["area"] == int(m.sum())
            assert ann["crop_box"] == [0, 0, w, h]
        assert np.asarray(Image.open(out / stem / "overlay.png")).shape == (h, w, 3)
    # again with one mask: the stale mask_1/2 of our own earlier run go
    assert predict.main([files["a"], "--checkpoint", files["ckpt"], "--points", "20,20", "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "a").iterdir()) == ["mask_0.png", "masks.json", "overlay.png"]


def test_predict_auto(files, tmp_path):
    out = tmp_path / "out"
    assert predict.main([files["a"], "--checkpoint", files["ckpt"], "--auto", "--out", str(out)]) == 0
    rec = json.loads((out / "a" / "masks.json").read_text())
    assert rec["prompts"] == {"auto": True}
    assert len(list((out / "a").glob("mask_*.png"))) == len(rec["annotations"])


@pytest.mark.parametrize("args, words", [
    (["--points", "80,20"], "outside the image"),
    (["--points", "20,20,3"], "label 3"),
    (["--points", "20;20"], "not x,y"),
    (["--points"], "expected at least one argument"),
    (["--box", "30,5,10,35"], "x2 < x1"),
    (["--box", "5,5,35,70"], "outside the image"),
    ([], "no prompt"),
    (["--auto", "--points", "20,20"], "--auto"),
])
def test_predict_bad_prompts(files, tmp_path, capsys, args, words):
    code = run(predict.main, [files["a"], "--checkpoint", files["ckpt"], "--out", str(tmp_path / "o"), *args])
    assert words in one_line_error(capsys, code)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("which, words", [
    ("broken", "not a readable image"),
    ("txt_as_image", "not a readable image"),
    ("txt_as_ckpt", "not a SAM checkpoint"),
    ("image_as_ckpt", "SAM checkpoint"),
    ("missing_ckpt", "not found"),
])
def test_bad_files(files, tmp_path, capsys, which, words):
    image = {"broken": files["broken"], "txt_as_image": files["txt"]}.get(which, files["a"])
    ckpt = {"txt_as_ckpt": files["txt"], "image_as_ckpt": files["b"],
            "missing_ckpt": str(tmp_path / "none.pth")}.get(which, files["ckpt"])
    for main, extra in ((predict.main, ["--points", "5,5"]), (auto.main, [])):
        code = main([image, "--checkpoint", ckpt, "--out", str(tmp_path / "o"), *extra])
        assert words in one_line_error(capsys, code)


def test_wrong_size_checkpoint(files, tmp_path, capsys):
    state = official_model(TINY, decoder_gain=3.0).state_dict()
    state["mask_decoder.iou_token.weight"] = torch.zeros(1, 16)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    code = predict.main([files["a"], "--checkpoint", str(bad), "--points", "5,5", "--out", str(tmp_path / "o")])
    assert "wrong size" in one_line_error(capsys, code)


def test_foreign_output_refused(files, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    (out / "a" / "overlay.png").write_bytes(b"the user's own picture")
    code = predict.main([files["a"], "--checkpoint", files["ckpt"], "--points", "5,5", "--out", str(out)])
    assert "--overwrite" in one_line_error(capsys, code)
    assert (out / "a" / "overlay.png").read_bytes() == b"the user's own picture"
    (out / "sa_a.json").write_text("{}")
    code = auto.main([files["a"], "--checkpoint", files["ckpt"], "--out", str(out)])
    assert one_line_error(capsys, code)
    assert predict.main([files["a"], "--checkpoint", files["ckpt"], "--points", "5,5", "--out", str(out),
                         "--overwrite"]) == 0


AUTO = ["--points-per-side", "4", "--pred-iou-thresh", "0", "--stability-score-thresh", "0.5"]


def test_auto_writes_sa1b_and_resumes(files, tmp_path, capsys):
    out = tmp_path / "out"
    assert auto.main([files["imgs"], "--checkpoint", files["ckpt"], "--out", str(out), *AUTO]) == 0
    for stem, (h, w) in (("a", (48, 64)), ("b", (60, 40))):
        rec = json.loads((out / f"sa_{stem}.json").read_text())
        assert rec["image"]["height"] == h and rec["image"]["width"] == w
        assert len(rec["annotations"]) >= 1
        for ann in rec["annotations"]:
            assert set(ann) >= {"id", "segmentation", "bbox", "area", "predicted_iou", "stability_score",
                                "point_coords", "crop_box"}
            assert rle_decode(ann["segmentation"]).sum() == ann["area"]
        assert (out / f"sa_{stem}_overlay.png").is_file()
    capsys.readouterr()
    # a killed run: b's output never written; the rerun does b only
    (out / "sa_b.json").unlink()
    before = (out / "sa_a.json").stat().st_mtime_ns
    assert auto.main([files["imgs"], "--checkpoint", files["ckpt"], "--out", str(out), *AUTO]) == 0
    said = capsys.readouterr().out
    assert "1 of 2 images already done" in said and "b.jpg" in said and "a.png:" not in said
    assert (out / "sa_a.json").stat().st_mtime_ns == before and (out / "sa_b.json").is_file()
    # other options: refused, not mixed into the same folder; --overwrite redoes all
    code = auto.main([files["imgs"], "--checkpoint", files["ckpt"], "--out", str(out), "--points-per-side", "3"])
    assert "points_per_side" in one_line_error(capsys, code)
    assert auto.main([files["imgs"], "--checkpoint", files["ckpt"], "--out", str(out), "--points-per-side", "3",
                      "--overwrite"]) == 0
    assert (out / "sa_a.json").stat().st_mtime_ns != before


def test_auto_bad_inputs(files, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code = auto.main([str(empty), "--checkpoint", files["ckpt"], "--out", str(tmp_path / "o")])
    assert "no images" in one_line_error(capsys, code)
    code = auto.main([files["imgs"], files["a"], "--checkpoint", files["ckpt"], "--out", str(tmp_path / "o")])
    assert "same name" in one_line_error(capsys, code)
    code = run(auto.main, [files["a"], "--checkpoint", files["ckpt"], "--out", str(tmp_path / "o"),
                           "--points-per-side", "0"])
    assert one_line_error(capsys, code)
