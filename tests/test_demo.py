"""`python -m actions.demo` end to end on a tiny data set: every column of the table filled, a few-shot
draw included, last-layer fine-tuning, the run folder's table/JSON/figure, resuming, bad settings."""
import json
import re

import pytest
import torch

from actions.demo import main

# 2 seeds, 1 epoch, 100 videos at the smallest size; 1- and 2-shot sets in 2 draws (~30 s on 2 cores)
ARGS = ["--videos", "100", "--width", "96", "--height", "96", "--seeds", "0", "1", "--shots", "1", "2",
        "--draws", "2", "--workers", "1"]
OVERRIDES = ["epochs=1", "workers=0", "lr_steps=[]", "batch_size=8"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    data, out = root / "data", root / "runs"
    assert main(OVERRIDES + ["--data", str(data), "--out", str(out)] + ARGS) == 0
    return data, out


def test_every_column_filled(demo_run):
    _, out = demo_run
    text = (out / "results.md").read_text()
    table = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header == ["model", "compositional top-1", "compositional top-5", "shuffled top-1", "shuffled top-5",
                      "few-shot base top-1", "novel 1-shot top-1", "novel 2-shot top-1"]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table[2:]]
    assert [r[0] for r in rows] == ["STIN+OIE+NL (boxes)", "Scene stream (pixels)",
                                    "STIN+OIE+NL + scene (feature fusion)", "Scene, STIN+OIE+NL (score fusion)"]
    for r in rows:
        for cell in r[1:]:
            assert re.fullmatch(r"\d+\.\d( ± \d+\.\d)?", cell), (r[0], cell)
    res = json.loads((out / "results.json").read_text())
    for key in ("stin", "scene", "fusion", "ensemble"):
        row = res["rows"][key]
        assert len(row["compositional"]["top1"]) == 2 and len(row["shuffled"]["top5"]) == 2  # 2 seeds
        for k in ("1", "2"):
            assert len(row["fewshot"]["shots"][k]["top1"]) == 2  # 2 draws
    assert "noun_bias" in res and "few-shot fine-tuning" in res["seconds"]
    assert (out / "compositional_gap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "The paper's qualitative findings" in text


def test_fewshot_tunes_only_the_last_layer_on_novel_classes(demo_run):
    data, out = demo_run
    root = out / "fewshot" / "seed0"
    novel = set(json.loads((data / "splits" / "fewshot" / "finetune_labels.json").read_text()))
    base_classes = {r["template"].replace("[", "").replace("]", "")
                    for r in json.loads((root / "base_split" / "train.json").read_text())}
    assert base_classes and base_classes.isdisjoint(novel)  # novel classes never in base training
    for model in ("stin", "scene", "fusion"):
        base = torch.load(root / model / "best.pt", weights_only=True)
        assert set(base["class_names"]).isdisjoint(novel)
        for k in (1, 2):
            ft = torch.load(root / model / "finetune" / f"{k}shot" / "draw_1" / "best.pt", weights_only=True)
            assert set(ft["class_names"]) == novel
            changed = sorted(n for n in base["model"] if not torch.equal(base["model"][n], ft["model"][n]))
            assert len(changed) == 2 and changed[0].endswith(".bias") and changed[1].endswith(".weight"), changed
            assert changed[0].rsplit(".", 1)[0] == changed[1].rsplit(".", 1)[0]  # one layer: the output layer
            assert ft["model"][changed[1]].shape[0] == len(novel)
            res = json.loads((root / model / "finetune" / f"{k}shot" / "draw_1" / "results.json").read_text())
            assert res["train_videos"] == k * len(novel)


def test_rerun_resumes_and_bad_settings_are_one_line(demo_run, capsys):
    data, out = demo_run
    before = json.loads((out / "results.json").read_text())["rows"]
    assert main(OVERRIDES + ["--data", str(data), "--out", str(out)] + ARGS) == 0  # everything read back
    assert json.loads((out / "results.json").read_text())["rows"] == before
    capsys.readouterr()
    assert main(OVERRIDES + ["--data", str(data), "--out", str(out)] + ARGS + ["--noun-bias", "none"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "other settings" in err and "noun_bias" in err
    old = out.parent / "old_runs"
    (old / "compositional").mkdir(parents=True)  # runs of a demo that wrote no demo.json
    assert main(OVERRIDES + ["--data", str(data), "--out", str(old)] + ARGS) == 2
    assert "older demo" in capsys.readouterr().err
