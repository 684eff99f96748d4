"""The MAE row of `make demo` runs end to end on rendered hand-object videos (a shortened pre-training)."""
from __future__ import annotations

from pathlib import Path

import pytest

from vislearn.pretrain import demo as mae_demo


@pytest.mark.slow
def test_mae_demo_row(tmp_path, monkeypatch):
    from vislearn.video.data.synthetic.generate import generate

    data = tmp_path / "synthetic"
    generate(data, videos=12, seed=0, width=128, height=96, workers=1)
    monkeypatch.setattr(mae_demo, "DEMO_CONFIG", {**mae_demo.DEMO_CONFIG, "epochs": 1, "steps_per_epoch": 3})
    outcome = mae_demo.quick_demo(data, tmp_path / "out", jobs=1)
    assert outcome.report.is_file() and (tmp_path / "out" / "probe.json").is_file()
    assert "random encoder" in outcome.measures[0].reference
