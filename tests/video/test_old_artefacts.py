"""Files written before the move to the `vislearn` package (commit f2d04f5: a STIN checkpoint, its config, its
validation scores and a box store; tests/fixtures/video_main_f2d04f5/README.md) still load, and the old
checkpoint gives the same scores through today's code."""
import subprocess
import sys
from pathlib import Path

import numpy as np

from vislearn.common.checkpoint import load_checkpoint
from vislearn.video.actions.checkpoints import config_of
from vislearn.video.actions.config import load_config
from vislearn.video.data.box_store import BoxStore

OLD = Path(__file__).resolve().parents[1] / "fixtures" / "video_main_f2d04f5"


def test_old_checkpoint_scores_the_same(tmp_path):
    out = tmp_path / "eval"
    r = subprocess.run([sys.executable, "-m", "vislearn", "video", "evaluate", "--checkpoint", OLD / "run" / "best.pt",
                        "--split", OLD / "split", "--boxes", OLD / "box_store", "--workers", "0", "--out", out],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    old, new = np.load(OLD / "run" / "scores.npz"), np.load(out / "scores.npz")
    assert old["video_id"].tolist() == new["video_id"].tolist()
    assert np.array_equal(old["label"], new["label"])
    np.testing.assert_allclose(new["scores"], old["scores"], atol=1e-4)


def test_old_checkpoint_and_config_load():
    ckpt = load_checkpoint(OLD / "run" / "best.pt")
    cfg = config_of(ckpt, {})
    assert cfg.model == "stin_oie_nl" and cfg.model_args == {"feature_dim": 16}
    assert ckpt["class_names"][0].startswith("Pushing")
    saved = load_config(OLD / "run" / "config.yaml")
    assert (saved.model, saved.num_box_frames, saved.num_slots, saved.epochs) == ("stin_oie_nl", 8, 4, 1)


def test_old_box_store_opens():
    store = BoxStore(OLD / "box_store")
    assert len(store) == 24
    boxes = store.get("1000")
    assert len(boxes.frame_index) == 16 and set(boxes.track) == {"hand", "0000"}
