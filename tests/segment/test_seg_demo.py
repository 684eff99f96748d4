"""The segment row of `make demo`: the shipped checkpoint is the file weights/README.md describes, and loads."""
from __future__ import annotations

import pytest

from vislearn.common.errors import UserError
from vislearn.segment import demo
from vislearn.segment.model.build import load_sam


def test_shipped_checkpoint_is_checked_and_loads():
    path = demo.shipped_checkpoint()  # sha256 checked
    model, arch = load_sam(path)
    assert arch.name == "vit_tiny_c256" and arch.img_size == 256
    assert sum(p.numel() for p in model.parameters()) > 6e6


def test_a_changed_shipped_file_is_refused(tmp_path, monkeypatch):
    changed = tmp_path / "sam.pth"
    data = bytearray(demo.WEIGHTS.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte of the weights
    changed.write_bytes(bytes(data))
    monkeypatch.setattr(demo, "WEIGHTS", changed)
    with pytest.raises(UserError, match="sha256"):
        demo.shipped_checkpoint()


@pytest.mark.slow
def test_quick_demo_beats_the_untrained_model(tmp_path):
    outcome = demo.quick_demo(tmp_path / "data", tmp_path / "out", jobs=2)
    results = (tmp_path / "out" / "results.json").read_text()
    assert outcome.report.is_file() and (tmp_path / "out" / "overlay.png").is_file()
    import json

    miou = json.loads(results)["miou"]
    assert miou["finetuned"]["point_model"] > miou["untrained"]["point_model"] + 0.05
    assert miou["finetuned"]["box"] > miou["untrained"]["box"] + 0.05
