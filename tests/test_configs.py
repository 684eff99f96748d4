"""Every shipped config loads (including `base:` chains) and builds its model."""
import pytest

from actions.config import load_config
from actions.models import architecture_args, create_model
from configs import CONFIG_DIR

CONFIGS = sorted(CONFIG_DIR.glob("*/*.yaml"))


def without_checkpoints(args: dict) -> dict:
    """Model options minus weight files (the runs and files they point at need not exist in a test)."""
    return architecture_args(args)


def test_the_strg_rows_ship():
    names = {p.relative_to(CONFIG_DIR).as_posix() for p in CONFIGS}
    assert {"ssv2/strg.yaml", "ssv2/fusion_strg_stin_oie_nl.yaml", "synthetic/strg.yaml",
            "synthetic/fusion_strg.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.relative_to(CONFIG_DIR).as_posix())
def test_config_loads_and_builds(path):
    cfg = load_config(path)
    model = create_model(cfg.model, 7, **without_checkpoints(cfg.model_args))
    if getattr(model, "needs_rgb_boxes", False):  # STRG pools the pixels at the boxes: both must be read
        assert model.needs_frames and model.needs_boxes
    if cfg.model == "fusion" and hasattr(model.stin, "num_frames"):
        assert model.stin.num_frames == cfg.num_box_frames
