"""Every shipped config loads (including `base:` chains) and builds its model."""
import pytest

from vislearn.video.actions.checkpoints import without_weight_sources
from vislearn.video.actions.config import load_config
from vislearn.video.actions.models import create_model
from vislearn.common.paths import CONFIG_DIR

CONFIGS = sorted((CONFIG_DIR / "video").glob("*/*.yaml"))


def test_the_strg_rows_ship():
    names = {p.relative_to(CONFIG_DIR / "video").as_posix() for p in CONFIGS}
    assert {"ssv2/strg.yaml", "ssv2/fusion_strg_stin_oie_nl.yaml", "synthetic/strg.yaml",
            "synthetic/fusion_strg.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.relative_to(CONFIG_DIR / "video").as_posix())
def test_config_loads_and_builds(path):
    cfg = load_config(path)
    model = create_model(cfg.model, 7, **without_weight_sources(cfg.model_args))  # the weight files are not here
    if getattr(model, "needs_rgb_boxes", False):  # STRG pools the pixels at the boxes: both must be read
        assert model.needs_frames and model.needs_boxes
    if cfg.model == "fusion" and hasattr(model.stin, "num_frames"):
        assert model.stin.num_frames == cfg.num_box_frames


def test_one_name_per_sampler(tmp_path):
    """The strided RGB sampler is `strided` everywhere; a checkpoint that called it `official` still reads."""
    from vislearn.video.actions.checkpoints import config_of
    from vislearn.common.errors import UserError

    assert load_config(None, ["rgb_sampler=strided"]).rgb_sampler == "strided"
    with pytest.raises(UserError, match="'official' is now called 'strided'"):
        load_config(None, ["rgb_sampler=official"])
    assert config_of({"config": {"rgb_sampler": "official"}}, {}).rgb_sampler == "strided"
