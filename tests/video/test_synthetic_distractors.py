"""The synthetic set's distractor boxes, rebuilt from the seeds, lie where the distractors are drawn."""
import json

import numpy as np
import pytest

from vislearn.common.errors import UserError
from vislearn.video.data.synthetic.distractors import distractor_records, main
from vislearn.video.data.synthetic.generate import generate, make_spec
from vislearn.video.data.synthetic.render import build_scene, rasterise


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("distractors")
    generate(out, videos=6, seed=2, width=128, height=96)
    return out


def test_boxes_cover_the_pixels_the_distractors_change(data):
    meta = json.loads((data / "synthetic.json").read_text())
    records = distractor_records(data)
    assert set(records) == set(meta["videos"])
    checked = 0
    for vid, v in meta["videos"].items():
        assert len(records[vid]) == v["frames"]
        assert all(len(r["labels"]) <= v["distractors"] for r in records[vid])
        if v["distractors"] != 1:
            continue
        # the same scene drawn with and without its distractor: the pixels that differ are the
        # distractor and its shadow, which falls below it
        spec = make_spec(2, int(vid) - 1, 128, 96)
        scene = build_scene(spec.template, spec.nouns, spec.distractors, spec.frames, 128, 96,
                            np.random.default_rng([2, spec.index, 1]))
        with_it = rasterise(scene).frames.astype(int)
        scene.distractors = []
        without = rasterise(scene).frames.astype(int)
        for t in (0, spec.frames - 1):
            labels = records[vid][t]["labels"]
            ys, xs = np.nonzero(np.abs(with_it[t] - without[t]).sum(-1) > 30)
            if not labels:
                assert len(xs) < 20  # no box: the distractor is out of view
                continue
            b = labels[0]["box2d"]
            assert labels[0]["standard_category"] == "distractor" and labels[0]["category"] == v["distractor_nouns"][0]
            inside = (xs >= b["x1"] - 1) & (xs <= b["x2"] + 1) & (ys >= b["y1"] - 1)
            assert inside.mean() > 0.97  # nothing drawn left, right or above the box
            assert xs.min() <= b["x1"] + 2 and xs.max() >= b["x2"] - 2 and ys.min() <= b["y1"] + 2  # box is tight
            checked += 1
    assert checked >= 2


def test_cli_and_a_data_set_of_another_generator(data, tmp_path, capsys):
    assert main(["--data", str(data), "--out", str(tmp_path / "d.json")]) == 0
    assert json.loads((tmp_path / "d.json").read_text()) == distractor_records(data)
    meta = json.loads((data / "synthetic.json").read_text())
    vid = next(iter(meta["videos"]))
    meta["videos"][vid]["distractor_nouns"] = ["not a noun"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "synthetic.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="another generator version"):
        distractor_records(other, [vid])
    assert main(["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "e.json")]) == 2
    assert "synthetic data set description not found" in capsys.readouterr().err
    # the data set's own files are never the output
    before = (data / "synthetic.json").read_bytes()
    for name in ("synthetic.json", "annotations.json"):
        assert main(["--data", str(data), "--out", str(data / name)]) == 2
        assert "refusing to overwrite an input" in capsys.readouterr().err
    assert (data / "synthetic.json").read_bytes() == before
