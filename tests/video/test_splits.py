"""The split tool: noun canonicalisation, the compositional search, shuffled control, few-shot,
validation (incl. the official split files), stats, and bad input through the CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from vislearn.video.splits.__main__ import main
from vislearn.video.splits import io as sio
from vislearn.video.splits.nouns import build_noun_map, canonical_form
from vislearn.video.splits.search import Problem, search

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO.parent / "shared" / "fixtures" / "something_else_sample"
OFFICIAL = SAMPLE / "splits"


@pytest.fixture(scope="module")
def official() -> Path:
    if not (OFFICIAL / "fewshot" / "finetune_5shot_training.json").exists():
        pytest.skip(f"official split sample not found at {OFFICIAL}")
    return OFFICIAL


# ---------------------------------------------------------------------------------------------
# small SSv2-format data made here

TEMPLATES = [
    "Pushing [something] from left to right", "Pushing [something] from right to left", "Lifting [something] up",
    "Dropping [something]", "Opening [something]", "Closing [something]", "Spinning [something]",
    "Putting [something] onto [something]", "Putting [something] next to [something]",
    "Covering [something] with [something]", "Moving [something] and [something] closer to each other",
    "Putting [something], [something] and [something] on the table",
]
NOUNS = ["box", "cup", "pen", "bottle", "book", "phone", "ball", "spoon", "glass", "bowl", "remote", "plate", "coin",
         "knife", "mug", "key", "battery", "pillow", "fork", "tape", "candle", "brush", "comb", "towel", "marker",
         "lighter", "shoe", "cap", "wallet", "matchbox"]


def messy(noun: str, rng: np.random.Generator) -> str:
    forms = [noun, noun, f"the {noun}", f"a {noun}", f"small {noun}",
             noun + ("es" if noun.endswith(("x", "ch", "sh")) else "s"), noun.upper()]
    if noun == "matchbox":
        forms.append("match box")
    return forms[int(rng.integers(len(forms)))]


def make_records(n: int, seed: int = 0, start_id: int = 1000, templates=TEMPLATES, nouns=NOUNS) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        t = templates[int(rng.integers(len(templates)))]
        k = t.count("[something]")
        ph = [messy(nouns[int(rng.integers(len(nouns)))], rng) for _ in range(k)]
        label = t
        for p in ph:
            label = label.replace("[something]", p, 1)
        out.append({"id": str(start_id + i), "label": label.lower(), "template": t, "placeholders": ph})
    return out


def labels_of(templates=TEMPLATES) -> dict[str, str]:
    return {t.replace("[", "").replace("]", ""): str(i) for i, t in enumerate(templates)}


def write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture()
def ssv2(tmp_path) -> dict[str, Path]:
    """SSv2-format folder: 700 records, 12 templates (1-3 placeholders), messy nouns."""
    recs = make_records(700, seed=1)
    d = tmp_path / "ssv2"
    return {"dir": d,
            "labels": write(d / "something-something-v2-labels.json", labels_of()),
            "train": write(d / "something-something-v2-train.json", recs[:560]),
            "val": write(d / "something-something-v2-validation.json", recs[560:])}


def run(args: list[str], capsys) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def comp_args(ssv2, out, *extra):
    return ["compositional", "--labels", ssv2["labels"], "--train", ssv2["train"], "--val", ssv2["val"],
            "--out", out, "--quiet", *extra]


def load(path: Path):
    return json.loads(Path(path).read_text())


# ---------------------------------------------------------------------------------------------
# nouns

@pytest.mark.parametrize("raw, canon", [
    ("small box", "box"), ("The Ice-Chest", "ice chest"), ("2 toy blocks", "toy block"), ("batteries", "battery"),
    ("boxes", "box"), ("knives", "knife"), ("scissors", "scissor"), ("clothes", "clothes"), ("glass", "glass"),
    ("pair of flip flop", "flip flop"), ("man's sandals", "man sandal"), ("half of mango", "mango"),
    ("a", "a"), ("the", "the"), ("!!!", ""), ("tomatoes", "tomato"), ("bus", "bus"), ("nail-brush", "nail brush"),
])
def test_canonical_form_rule(raw, canon):
    assert canonical_form(raw) == canon


def test_official_object_names_are_fixed_points(official):
    """The rule agrees with the release's own canonical nouns: none of the 371 changes."""
    names = load(official / "compositional" / "objectsA.json") + load(official / "compositional" / "objectsB.json")
    assert [n for n in names if canonical_form(n) != n] == []
    assert all(canonical_form(canonical_form(n)) == canonical_form(n) for n in names)


def test_noun_map_merges_space_variants_and_reports_them():
    nmap = build_noun_map(Counter({"match box": 2, "matchbox": 5, "the matchbox": 1, "small box": 3, "box": 9}))
    assert nmap["match box"] == nmap["the matchbox"] == "matchbox"
    assert nmap["small box"] == "box"
    merges = nmap.merges()
    assert merges["matchbox"] == {"matchbox": 5, "match box": 2, "the matchbox": 1}
    assert merges["box"] == {"box": 9, "small box": 3}
    assert nmap.summary()["space_variant_merges"] == {"matchbox": ["match box"]}


def test_head_merge_is_optional():
    counts = Counter({"bottle": 10, "plastic bottle": 2, "water bottle": 3})
    assert build_noun_map(counts)["plastic bottle"] == "plastic bottle"
    merged = build_noun_map(counts, merge_heads=5)
    assert merged["plastic bottle"] == merged["water bottle"] == "bottle"
    assert build_noun_map(counts, merge_heads=11)["water bottle"] == "water bottle"


# ---------------------------------------------------------------------------------------------
# search

def _problem(videos: list[tuple[int, list[int]]], n_classes: int, n_nouns: int) -> Problem:
    cls = [c for c, _ in videos]
    ptr = np.cumsum([0] + [len(ns) for _, ns in videos])
    idx = [n for _, ns in videos for n in ns]
    return Problem(cls=np.array(cls), vn_ptr=ptr, vn_idx=np.array(idx), n_classes=n_classes, n_nouns=n_nouns)


def test_search_finds_the_planted_split_and_is_deterministic():
    """Nouns 0-4 and 5-9 never share a video: a split dropping no video exists; the search finds it."""
    rng = np.random.default_rng(0)
    videos = []
    for _ in range(400):
        c = int(rng.integers(6))
        group = int(rng.integers(2)) * 5
        k = int(rng.integers(1, 3))
        videos.append((c, sorted(set((group + rng.integers(5, size=k)).tolist()))))
    prob = _problem(videos, 6, 10)
    best, outs = search(prob, restarts=3, seed=1)
    assert best.classes_ok.all()
    assert (best.reason == 0).sum() == len(videos)  # nothing dropped
    assert len(set(best.s[:5].tolist())) == 1 and len(set(best.s[5:].tolist())) == 1
    again, _ = search(prob, restarts=3, seed=1)
    assert np.array_equal(again.s, best.s) and np.array_equal(again.g, best.g) and again.objective == best.objective
    assert best.objective == max(o.objective for o in outs)


def test_incremental_search_state_matches_a_full_recount():
    """After the local search, every incrementally kept count equals a recomputation from scratch."""
    from vislearn.video.splits.search import _LocalSearch

    rng = np.random.default_rng(7)
    videos = [(int(rng.integers(8)), sorted(set(rng.integers(40, size=int(rng.integers(1, 4))).tolist())))
              for _ in range(600)]
    videos += [(c, [40 + c]) for c in range(8) for _ in range(3)]  # attached nouns 40..47
    prob = _problem(videos, 8, 48)
    assert prob.attached[40:].all() and not prob.attached[:40].any()
    ls = _LocalSearch(prob, 1, 0.5, 0.3)
    g = (rng.random(8) < 0.5).astype(np.int8)
    s0 = (rng.random(48) < 0.5).astype(np.int8)
    s0[40:] = g  # as search() starts: attached nouns follow their class's group (their videos train)
    ls.reset(s0, g)
    ls.run(np.random.default_rng(1), 20)
    got = {k: getattr(ls, k).copy() for k in ("sum_b", "st", "trn", "eff", "tr", "va")}
    score, noun_diff = ls.score, ls.noun_diff
    ls.reset(ls.s.copy(), ls.g.copy())
    for k, v in got.items():
        assert np.array_equal(v, getattr(ls, k)), k
    assert score == pytest.approx(ls.score) and noun_diff == ls.noun_diff
    assert (ls.st[len(videos) - 24:] == 1).all()  # attached nouns' videos stay in training


def test_search_objective_penalises_class_imbalance():
    """One frequent noun per class half: balance moves videos so that each class has both sides."""
    prob = _problem([(0, [0])] * 10 + [(0, [1])] * 10 + [(1, [0])] * 10 + [(1, [1])] * 10, 2, 2)
    best, _ = search(prob, restarts=2)
    assert best.n_train == best.n_val == 20
    assert best.classes_ok.all()


# ---------------------------------------------------------------------------------------------
# compositional end to end

def test_compositional_then_validate(ssv2, tmp_path, capsys):
    out = tmp_path / "comp"
    rc, _, err = run(comp_args(ssv2, out), capsys)
    assert rc == 0, err
    for name in ("labels.json", "train.json", "validation.json", "objectsA.json", "objectsB.json", "report.json",
                 "noun_map.json"):
        assert (out / name).exists(), name
    labels = load(out / "labels.json")
    assert sorted(int(v) for v in labels.values()) == list(range(len(labels)))
    assert all(isinstance(v, str) for v in labels.values())  # official style: {"name": "index"}
    train, val = load(out / "train.json"), load(out / "validation.json")
    src = {r["id"]: r for r in load(ssv2["train"]) + load(ssv2["val"])}
    assert all(r == src[r["id"]] for r in train + val)  # records copied verbatim
    a, b = load(out / "objectsA.json"), load(out / "objectsB.json")
    assert a and b and not set(a) & set(b) and all(isinstance(x, str) for x in a + b)
    report = load(out / "report.json")
    c = report["counts"]
    assert (c["train"], c["validation"]) == (len(train), len(val))
    assert c["kept"] + sum(report["dropped"].values()) == c["input_videos"] == 700
    assert "matchbox" in report["nouns"]["space_variant_merges"]
    assert report["nouns"]["merges"]["box"]["small box"] > 0
    assert set(report["multi_placeholder_rules"]) == {"chosen", "all-same-set", "first-noun", "single-noun"}
    o = report["objective"]
    assert o["value"] == pytest.approx(o["P"] * o["classes_with_both_sides"] + o["videos_kept"]
                                       - o["balance"] * o["class_imbalance"] - o["noun_balance"] * o["noun_imbalance"])
    assert min(len(train), len(val)) > 0.3 * (len(train) + len(val))  # roughly balanced sides
    rc, text, err = run(["validate", out], capsys)
    assert rc == 0, text + err
    assert "FAIL" not in text and "pairs" in text


def test_compositional_is_deterministic_for_a_seed(ssv2, tmp_path, capsys):
    for name in ("a", "b"):
        assert run(comp_args(ssv2, tmp_path / name, "--seed", "3"), capsys)[0] == 0
    for f in ("train.json", "validation.json", "objectsA.json", "objectsB.json", "labels.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_data_folder_option_and_console_summary(ssv2, tmp_path, capsys):
    rc, out, _ = run(["compositional", "--data", ssv2["dir"], "--out", tmp_path / "c", "--restarts", "2"], capsys)
    assert rc == 0
    assert "objective" in out and "dropped" in out and "nouns" in out


@pytest.mark.parametrize("rule", ["first-noun", "single-noun"])
def test_other_multi_placeholder_rules(ssv2, tmp_path, capsys, rule):
    out = tmp_path / rule
    assert run(comp_args(ssv2, out, "--rule", rule), capsys)[0] == 0
    report = load(out / "report.json")
    assert report["options"]["rule"] == rule
    if rule == "single-noun":
        multi = report["dropped"]["multi_noun"]
        assert multi == report["multi_placeholder_rules"]["single-noun"]["drops"] > 0
        assert all(len({canonical_form(p) for p in r["placeholders"]}) == 1
                   for r in load(out / "train.json") + load(out / "validation.json"))
    rc, text, err = run(["validate", out], capsys)
    assert rc == 0, text + err


def test_boxes_drop_videos_without_annotations(sample_dir, tmp_path, capsys):
    """The 7 real annotated ids plus 20 ids without boxes: the 20 are dropped and counted."""
    box_ids = ["2", "4", "2003", "6981", "57082", "151201", "862"]
    t = ["Pushing [something] from left to right", "Lifting [something] up"]
    plan = [(0, "pen"), (0, "cup"), (0, "pen"), (1, "pen"), (1, "cup"), (1, "cup"), (1, "pen")]
    recs = [{"id": i, "label": "", "template": t[c], "placeholders": [n]} for i, (c, n) in zip(box_ids, plan)]
    recs += [{"id": str(90000 + i), "label": "", "template": t[i % 2], "placeholders": ["pen"]} for i in range(20)]
    lab = write(tmp_path / "labels.json", labels_of(t))
    tr = write(tmp_path / "train.json", recs)
    out = tmp_path / "comp"
    rc, _, err = run(["compositional", "--labels", lab, "--train", tr, "--boxes", sample_dir / "annotations.json",
                      "--out", out, "--quiet"], capsys)
    assert rc == 0, err
    report = load(out / "report.json")
    assert report["dropped"]["no_boxes"] == 20
    kept = {r["id"] for r in load(out / "train.json") + load(out / "validation.json")}
    assert kept and kept <= set(box_ids)
    # no id of the metadata has boxes: a clear error, not a crash
    tr2 = write(tmp_path / "train2.json", recs[7:])
    rc, _, err = run(["compositional", "--labels", lab, "--train", tr2, "--boxes", sample_dir / "annotations.json",
                      "--out", tmp_path / "none"], capsys)
    assert rc == 2 and "none of the 20 videos has box annotations" in err


# ---------------------------------------------------------------------------------------------
# the real records and the official files

def test_real_430_records_strict_rule_fails_clearly(official, tmp_path, capsys):
    f = official / "fewshot"
    rc, _, err = run(["compositional", "--labels", f / "finetune_labels.json", "--train",
                      f / "finetune_5shot_training.json", "--out", tmp_path / "strict"], capsys)
    # 5 videos per class and mostly one-off nouns: no validation video has all its nouns seen in training
    assert rc == 2
    assert err.startswith("error: empty result") and "--rule first-noun" in err and "Traceback" not in err
    assert not (tmp_path / "strict" / "train.json").exists()


def test_real_430_records_first_noun_rule(official, tmp_path, capsys):
    f = official / "fewshot"
    out = tmp_path / "real"
    rc, _, err = run(["compositional", "--labels", f / "finetune_labels.json", "--train",
                      f / "finetune_5shot_training.json", "--out", out, "--rule", "first-noun", "--quiet"], capsys)
    assert rc == 0, err
    report = load(out / "report.json")
    assert report["counts"]["input_videos"] == 430
    assert 1 <= report["counts"]["classes"] < 86
    assert len(report["dropped_classes"]) == 86 - report["counts"]["classes"]
    assert report["dropped"]["class_without_both_sides"] > 0
    merges = report["nouns"]["merges"]
    assert merges["sponge"] == {"the sponge": 2, "red sponge": 1}  # messy real nouns merged
    assert merges["toy block"] == {"2 toy blocks": 1, "onto 1 toy block": 1}
    rc, text, err = run(["validate", out], capsys)
    assert rc == 0, text + err
    assert "first noun" in text
    # the weaker rule leaves second nouns unconstrained: a strict check may object, and says why
    rc, text, _ = run(["validate", out, "--pairs", "all"], capsys)
    assert rc in (0, 1)


@pytest.mark.parametrize("folder", ["compositional", "fewshot", "compositional_oneobject"])
def test_official_folders_validate(official, folder, capsys):
    rc, text, err = run(["validate", official / folder], capsys)
    assert rc == 0, text + err
    assert "SKIP" in text or folder == "fewshot"


def test_official_objects_spelling_clash_is_a_warning(official, capsys):
    rc, text, _ = run(["validate", official / "compositional"], capsys)
    assert rc == 0
    assert "WARN" in text and "matchbox (A) ~ match box (B)" in text


def test_official_fewshot_checks(official, capsys):
    rc, text, _ = run(["validate", official / "fewshot"], capsys)
    assert "base-novel-disjoint  PASS" in text
    assert "86 novel classes x 5 = 430 videos (finetune_5shot_training.json)" in text


# ---------------------------------------------------------------------------------------------
# validate: leaks

def _leaky_folder(root: Path, leak: str) -> Path:
    t = ["Pushing [something] from left to right", "Lifting [something] up"]
    names = [x.replace("[", "").replace("]", "") for x in t]

    def rec(i, c, n):
        return {"id": str(i), "label": "", "template": t[c], "placeholders": [n]}

    # group 1 = class 0 (train A = pen, val B = cup); group 2 = class 1 (train B = cup, val A = pen)
    train = [rec(1, 0, "pen"), rec(2, 1, "cup")]
    val = [rec(3, 0, "cup"), rec(4, 1, "pen")]
    if leak == "pair":
        train.append(rec(5, 0, "the cups"))  # canonicalises to "cup": class 0 + cup on both sides
    elif leak == "id":
        val.append(rec(1, 0, "cup"))
    elif leak == "noun":
        val.append(rec(6, 0, "lamp"))
    write(root / "labels.json", {n: str(i) for i, n in enumerate(names)})
    write(root / "train.json", train)
    write(root / "validation.json", val)
    write(root / "objectsA.json", ["pen"] + (["lamp"] if leak == "noun" else []))
    write(root / "objectsB.json", ["cup"])
    return root


def test_validate_clean_handmade_split_passes(tmp_path, capsys):
    rc, text, err = run(["validate", _leaky_folder(tmp_path / "ok", "none")], capsys)
    assert rc == 0, text + err
    assert "9 passed, 0 failed" in text


def test_leaking_pair_fails_naming_the_pair(tmp_path, capsys):
    rc, text, err = run(["validate", _leaky_folder(tmp_path / "leak", "pair")], capsys)
    assert rc == 1
    assert "'Pushing something from left to right' + 'cup' (1 train, 1 validation)" in text
    assert "pairs" in err and "cup" in err


def test_shared_video_id_fails_naming_the_id(tmp_path, capsys):
    rc, text, err = run(["validate", _leaky_folder(tmp_path / "ids", "id")], capsys)
    assert rc == 1
    assert "id 1 in train and validation" in text + err


def test_unseen_validation_noun_fails(tmp_path, capsys):
    rc, text, _ = run(["validate", _leaky_folder(tmp_path / "noun", "noun")], capsys)
    assert rc == 1
    assert "'lamp' (1 videos)" in text


def test_overlapping_object_lists_fail(tmp_path, capsys):
    root = _leaky_folder(tmp_path / "obj", "none")
    write(root / "objectsB.json", ["cup", "pen"])
    rc, text, _ = run(["validate", root], capsys)
    assert rc == 1 and "1 nouns in objectsA and objectsB: 'pen'" in text


def test_bad_label_indices_fail(tmp_path, capsys):
    root = _leaky_folder(tmp_path / "lab", "none")
    write(root / "labels.json", {"Pushing something from left to right": "0", "Lifting something up": "5"})
    rc, text, _ = run(["validate", root], capsys)
    assert rc == 1 and "indices are not 0..1" in text


# ---------------------------------------------------------------------------------------------
# shuffled

def test_shuffled_same_pool_sizes_and_classes(ssv2, tmp_path, capsys):
    comp, shuf = tmp_path / "comp", tmp_path / "shuf"
    assert run(comp_args(ssv2, comp), capsys)[0] == 0
    rc, _, err = run(["shuffled", "--from", comp, "--out", shuf, "--seed", "1", "--quiet"], capsys)
    assert rc == 0, err
    ct, cv = load(comp / "train.json"), load(comp / "validation.json")
    st, sv = load(shuf / "train.json"), load(shuf / "validation.json")
    assert (len(st), len(sv)) == (len(ct), len(cv))
    assert {r["id"] for r in st + sv} == {r["id"] for r in ct + cv}
    assert Counter(r["template"] for r in st) == Counter(r["template"] for r in ct)
    assert Counter(r["template"] for r in sv) == Counter(r["template"] for r in cv)
    assert {r["id"] for r in st} != {r["id"] for r in ct}
    assert load(shuf / "labels.json") == load(comp / "labels.json")
    assert load(shuf / "report.json")["kind"] == "shuffled"
    rc, text, err = run(["validate", shuf], capsys)
    assert rc == 0, text + err
    assert "shared by design" in text
    rc2 = main(["shuffled", "--from", str(comp), "--out", str(tmp_path / "shuf2"), "--seed", "1", "--quiet"])
    assert rc2 == 0 and (tmp_path / "shuf2" / "train.json").read_bytes() == (shuf / "train.json").read_bytes()


# ---------------------------------------------------------------------------------------------
# few-shot

@pytest.fixture()
def fewshot_data(tmp_path) -> dict[str, Path]:
    templates = [f"Doing thing {i} with [something]" for i in range(20)]
    rng = np.random.default_rng(5)
    recs = []
    for c, t in enumerate(templates):
        for j in range(15 + int(rng.integers(10))):
            recs.append({"id": f"{c}_{j}", "label": "", "template": t, "placeholders": [NOUNS[(c + j) % len(NOUNS)]]})
    rng.shuffle(recs)
    train = [r for r in recs if not r["id"].endswith(("_0", "_1", "_2"))]
    val = [r for r in recs if r["id"].endswith(("_0", "_1", "_2"))]
    d = tmp_path / "fsdata"
    return {"labels": write(d / "labels.json", labels_of(templates)), "train": write(d / "train.json", train),
            "val": write(d / "val.json", val)}


def test_fewshot_shots_and_draws(fewshot_data, tmp_path, capsys):
    out = tmp_path / "fs"
    rc, _, err = run(["fewshot", "--labels", fewshot_data["labels"], "--train", fewshot_data["train"], "--val",
                      fewshot_data["val"], "--out", out, "--base-classes", "12", "--shots", "5", "10",
                      "--draws", "3", "--quiet"], capsys)
    assert rc == 0, err
    base, novel = load(out / "base_labels.json"), load(out / "finetune_labels.json")
    assert len(base) == 12 and len(novel) == 8 and not set(base) & set(novel)
    assert sorted(int(v) for v in novel.values()) == list(range(8))
    draws = []
    for d in range(3):
        folder = out if d == 0 else out / "draws" / f"draw_{d}"
        five = load(folder / "finetune_5shot_training.json")
        ten = load(folder / "finetune_10shot_training.json")
        assert Counter(r["template"].replace("[", "").replace("]", "") for r in five) == {c: 5 for c in novel}
        assert Counter(r["template"].replace("[", "").replace("]", "") for r in ten) == {c: 10 for c in novel}
        assert {r["id"] for r in five} <= {r["id"] for r in ten}  # nested within a draw
        draws.append({r["id"] for r in ten})
    assert draws[0] != draws[1] != draws[2]
    fval = load(out / "finetune_5shot_validation.json")
    assert fval == load(out / "finetune_10shot_validation.json")
    assert {r["template"].replace("[", "").replace("]", "") for r in fval} == set(novel)
    btrain = load(out / "base_training_set.json")
    assert {r["template"].replace("[", "").replace("]", "") for r in btrain} == set(base)
    rc, text, err = run(["validate", out], capsys)
    assert rc == 0, text + err
    assert "10-shot draw 2 per class" in text
    report = load(out / "report.json")
    assert report["counts"]["finetune_training"] == {"5": 40, "10": 80}


def test_fewshot_base_labels_file_and_wrong_counts(fewshot_data, tmp_path, capsys):
    names = list(load(fewshot_data["labels"]))
    base_file = write(tmp_path / "base.json", {n: str(i) for i, n in enumerate(names[:15])})
    out = tmp_path / "fs"
    rc, _, err = run(["fewshot", "--labels", fewshot_data["labels"], "--train", fewshot_data["train"], "--val",
                      fewshot_data["val"], "--out", out, "--base-labels", base_file, "--shots", "5", "--quiet"], capsys)
    assert rc == 0, err
    assert set(load(out / "base_labels.json")) == set(names[:15])
    # break the k-shot file: validate names the class with the wrong count
    five = load(out / "finetune_5shot_training.json")
    write(out / "finetune_5shot_training.json", five[1:])
    rc, text, _ = run(["validate", out], capsys)
    assert rc == 1 and ": 4" in text and "without exactly 5 videos" in text


def test_reading_official_fewshot_names(official, tmp_path, capsys):
    root = tmp_path / "official_names"
    recs = load(official / "fewshot" / "finetune_5shot_training.json")
    write(root / "finetune_labels.json", load(official / "fewshot" / "finetune_labels.json"))
    write(root / "base_labels.json", load(official / "fewshot" / "base_labels.json"))
    write(root / "finetune_5shot_training.json", recs)
    write(root / "finetune_10shot_train.json", recs + [dict(r, id="9" + r["id"]) for r in recs])  # official spelling
    folder = sio.scan_folder(root)
    assert folder.shots[0][5].train.name == "finetune_5shot_training.json"
    assert folder.shots[0][10].train.name == "finetune_10shot_train.json"
    rc, text, _ = run(["validate", root], capsys)
    assert rc == 0, text
    assert "86 novel classes x 10 = 860 videos (finetune_10shot_train.json)" in text
    write(root / "finetune_10shot_training.json", recs)  # two files for one set: ambiguous
    rc, _, err = run(["validate", root], capsys)
    assert rc == 2 and "both finetune_10shot_train.json and finetune_10shot_training.json" in err


# ---------------------------------------------------------------------------------------------
# stats

def test_stats_writes_plot_and_counts(ssv2, tmp_path, capsys):
    out = tmp_path / "comp"
    assert run(comp_args(ssv2, out), capsys)[0] == 0
    rc, text, _ = run(["stats", out, "--out", tmp_path / "st"], capsys)  # written only with --out
    assert rc == 0
    png = tmp_path / "st" / "class_distribution.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stats = load(tmp_path / "st" / "stats.json")
    assert stats["videos"]["train"] == len(load(out / "train.json"))
    assert sum(v["train"] for v in stats["per_class"].values()) == stats["videos"]["train"]
    assert "dropped (report.json" in text and "nouns:" in text and "training share per class" in text


def test_stats_on_official_labels_only_folder(official, tmp_path, capsys):
    rc, text, _ = run(["stats", official / "compositional", "--out", tmp_path / "st"], capsys)
    assert rc == 0
    assert "186 in objectsA, 185 in objectsB" in text and "labels only" in text
    assert (tmp_path / "st" / "stats.json").exists()


def _bias_records(n: int, follow: float, seed: int = 0) -> list[dict]:
    """Single-object records: with probability `follow` a template's own noun, else a uniform one."""
    rng = np.random.default_rng(seed)
    templates, nouns = TEMPLATES[:7], NOUNS[:10]
    out = []
    for i in range(n):
        t = int(rng.integers(len(templates)))
        noun = nouns[t] if rng.random() < follow else nouns[int(rng.integers(len(nouns)))]
        out.append({"id": str(i), "label": "", "template": templates[t], "placeholders": [messy(noun, rng)]})
    return out


def test_noun_bias_figures_on_known_counts():
    from vislearn.video.data.ssv2 import Record
    from vislearn.video.splits.stats import noun_bias

    # every noun with one template, messy spellings: the noun tells the template exactly
    recs = [Record(str(i), TEMPLATES[i % 4], "", [messy(NOUNS[i % 4], np.random.default_rng(i))]) for i in range(80)]
    extra = [Record("m1", TEMPLATES[7], "", ["box", "cup"]),  # two objects: left out
             Record("r1", TEMPLATES[0], "", ["rare thing"])]  # a noun with fewer than 10 videos: left out
    b = noun_bias(recs + extra)
    assert (b["videos"], b["templates"], b["nouns"]) == (80, 4, 4)
    assert b["noun_top_template_accuracy"] == 1.0 and b["majority_template_accuracy"] == 0.25
    assert b["mutual_information_bits"] == pytest.approx(2.0) and b["template_entropy_bits"] == pytest.approx(2.0)
    assert b["top3_noun_share_median"] == 1.0 and b["templates_per_noun_median"] == 1
    assert b["noun_top_template_accuracy_shuffled"] < 0.6 and b["mutual_information_shuffled_bits"] < 0.3
    assert b["mutual_information_share"] == pytest.approx((2.0 - b["mutual_information_shuffled_bits"]) / 2.0)
    assert b["accuracy_gain"] == pytest.approx((1 - b["noun_top_template_accuracy_shuffled"])
                                               / (1 - b["noun_top_template_accuracy_shuffled"]))
    # nouns drawn independently of the template: nothing beyond the shuffled control
    indep = [Record(r["id"], r["template"], "", r["placeholders"]) for r in _bias_records(4000, 0.0)]
    b = noun_bias(indep)
    assert abs(b["mutual_information_share"]) < 0.01 and abs(b["accuracy_gain"]) < 0.01
    assert b["templates_per_noun_median"] == 7
    # a planted bias is measured, and grows with it
    weak, strong = (noun_bias([Record(r["id"], r["template"], "", r["placeholders"]) for r in _bias_records(4000, f)])
                    for f in (0.2, 0.5))
    assert 0.03 < weak["mutual_information_share"] < strong["mutual_information_share"]
    assert weak["noun_top_template_accuracy_shuffled"] < weak["noun_top_template_accuracy"] \
        < strong["noun_top_template_accuracy"]


def test_stats_of_ssv2_metadata(tmp_path, capsys):
    recs = _bias_records(1200, 0.3)
    d = tmp_path / "meta"
    write(d / "something-something-v2-labels.json", labels_of())
    write(d / "something-something-v2-train.json", recs[:1000])
    write(d / "something-something-v2-validation.json", recs[1000:])
    rc, text, err = run(["stats", d], capsys)
    assert rc == 0, err
    header = text.splitlines()[1]
    assert all(c in header for c in ("train", "validation", "both", "real SSv2 validation"))
    for row in ("noun -> its top template (shuffled)", "share of H beyond shuffled",
                "template's top-3 nouns, median (shuffled)", "19.8% (9.7%)", "12.9%", "33.0%"):
        assert row in text
    assert len(list(d.iterdir())) == 3  # metadata stats write nothing
    # one record list, and a stricter noun threshold
    rc, text, _ = run(["stats", d / "something-something-v2-train.json", "--min-noun-videos", "50"], capsys)
    assert rc == 0 and "something-something-v2-train.json" in text.splitlines()[1]
    rc, _, err = run(["stats", d, "--min-noun-videos", "5000"], capsys)
    assert rc == 2 and "nothing to measure" in err and len(err.strip().splitlines()) == 1


def test_split_stats_show_the_bias_of_each_side(ssv2, tmp_path, capsys):
    out = tmp_path / "comp"
    assert run(comp_args(ssv2, out), capsys)[0] == 0
    rc, text, _ = run(["stats", out, "--no-plot", "--min-noun-videos", "3", "--out", tmp_path / "st"], capsys)
    assert rc == 0 and "noun-verb bias (single-object templates)" in text
    bias = load(tmp_path / "st" / "stats.json")["noun_bias"]
    assert set(bias) == {"train", "validation"} and bias["train"]["videos"] > 0
    assert "noun shortcut" in text and 0 <= load(tmp_path / "st" / "stats.json")["noun_shortcut"]["accuracy"] <= 1


# ---------------------------------------------------------------------------------------------
# bad input: one line, exit code 2, no traceback

def test_missing_file(tmp_path, capsys):
    rc, _, err = run(["compositional", "--labels", tmp_path / "nope.json", "--train", tmp_path / "t.json",
                      "--out", tmp_path / "o"], capsys)
    assert rc == 2 and err.strip() == f"error: {tmp_path / 'nope.json'}: file not found"


def test_missing_arguments(tmp_path, capsys):
    rc, _, err = run(["compositional", "--data", tmp_path, "--out", tmp_path / "o"], capsys)
    assert rc == 2 and "missing --labels, --train" in err


def test_record_without_placeholders(ssv2, tmp_path, capsys):
    recs = load(ssv2["train"])
    recs[3]["placeholders"] = []
    write(ssv2["train"], recs)
    rc, _, err = run(comp_args(ssv2, tmp_path / "o"), capsys)
    assert rc == 2
    assert f"record 3 (id {recs[3]['id']}): no placeholders" in err and str(ssv2["train"]) in err


def test_template_not_in_labels(ssv2, tmp_path, capsys):
    recs = load(ssv2["val"])
    recs[0]["template"] = "Juggling [something]"
    write(ssv2["val"], recs)
    rc, _, err = run(comp_args(ssv2, tmp_path / "o"), capsys)
    assert rc == 2 and "'Juggling [something]' is not in the labels file" in err


def test_malformed_json_and_records(ssv2, tmp_path, capsys):
    ssv2["val"].write_text('[{"id": "1", "template": "Dropping [something]"')
    rc, _, err = run(comp_args(ssv2, tmp_path / "o"), capsys)
    assert rc == 2 and "not valid JSON" in err
    write(ssv2["val"], {"not": "a list"})
    rc, _, err = run(comp_args(ssv2, tmp_path / "o"), capsys)
    assert rc == 2 and "expected a JSON list of records" in err


def test_duplicate_id_across_lists(ssv2, tmp_path, capsys):
    recs = load(ssv2["val"])
    recs[0]["id"] = load(ssv2["train"])[0]["id"]
    write(ssv2["val"], recs)
    rc, _, err = run(comp_args(ssv2, tmp_path / "o"), capsys)
    assert rc == 2 and f"video id {recs[0]['id']} is also in" in err


def test_empty_result_all_dropped(ssv2, tmp_path, capsys):
    rc, _, err = run(comp_args(ssv2, tmp_path / "o", "--min-noun-videos", "100000"), capsys)
    assert rc == 2 and err.startswith("error: empty result: all 700 videos were dropped") and "rare_noun: 700" in err


def test_validate_and_shuffled_bad_folders(tmp_path, capsys):
    rc, _, err = run(["validate", tmp_path / "missing"], capsys)
    assert rc == 2 and "folder not found" in err
    (tmp_path / "empty").mkdir()
    rc, _, err = run(["validate", tmp_path / "empty"], capsys)
    assert rc == 2 and "no split files found" in err
    write(tmp_path / "half" / "labels.json", {"a": "0"})
    rc, _, err = run(["shuffled", "--from", tmp_path / "half", "--out", tmp_path / "s"], capsys)
    assert rc == 2 and "missing train.json, validation.json" in err


def test_fewshot_impossible_request(fewshot_data, tmp_path, capsys):
    rc, _, err = run(["fewshot", "--labels", fewshot_data["labels"], "--train", fewshot_data["train"], "--val",
                      fewshot_data["val"], "--out", tmp_path / "f", "--shots", "50", "--base-classes", "12"], capsys)
    assert rc == 2 and "classes have >= 50 training" in err
    rc, _, err = run(["fewshot", "--labels", fewshot_data["labels"], "--train", fewshot_data["train"], "--val",
                      fewshot_data["val"], "--out", tmp_path / "f", "--base-classes", "20"], capsys)
    assert rc == 2 and "need 1 <= base classes < 20" in err


def test_cli_subprocess(ssv2, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    help_ = subprocess.run([sys.executable, "-m", "vislearn.video", "splits", "--help"], capture_output=True, text=True, env=env,
                           cwd=REPO)
    assert help_.returncode == 0
    for cmd in ("compositional", "shuffled", "fewshot", "validate", "stats"):
        assert cmd in help_.stdout
    bad = subprocess.run([sys.executable, "-m", "vislearn.video", "splits", "validate", str(tmp_path / "nowhere")], capture_output=True,
                         text=True, env=env, cwd=REPO)
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr
    leak = subprocess.run([sys.executable, "-m", "vislearn.video", "splits", "validate", str(_leaky_folder(tmp_path / "l", "pair"))],
                          capture_output=True, text=True, env=env, cwd=REPO)
    assert leak.returncode == 1 and "cup" in leak.stderr and "Traceback" not in leak.stderr


def test_splits_does_not_import_torch():
    code = "import sys, vislearn.video.splits.__main__, vislearn.video.splits.validate, vislearn.video.splits.stats, vislearn.video.splits.fewshot; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert out.stdout.strip() == "False", out.stderr


def test_one_reader_of_split_folders(tmp_path, official):
    """Trainers and the detector trainer find split files through `datasets.split_layout.split_files`: the
    official `training.json` spelling is read, `noun_map.json` and `report.json` are never a record set,
    two spellings of one set are refused, and the SSv2 release's own files work as a split."""
    from vislearn.common.errors import UserError
    from vislearn.video.data.split_layout import split_files

    folder = tmp_path / "split"
    folder.mkdir()
    for name in ("labels.json", "training.json", "validation.json", "noun_map.json", "report.json", "objectsA.json"):
        (folder / name).write_text("{}")
    files = split_files(folder)
    assert files.labels == folder / "labels.json"
    assert files.sets == {"train": folder / "training.json", "validation": folder / "validation.json"}
    with pytest.raises(UserError, match=r"no noun_map set .*\(available: train, validation\)"):
        files.records("noun_map")
    (folder / "train.json").write_text("[]")
    with pytest.raises(UserError, match="both train.json and training.json"):
        split_files(folder)
    ssv2 = tmp_path / "ssv2"
    ssv2.mkdir()
    for part in ("labels", "train", "validation", "test"):
        (ssv2 / f"something-something-v2-{part}.json").write_text("{}")
    files = split_files(ssv2)
    assert files.labels.name == "something-something-v2-labels.json"
    assert {k: p.name for k, p in files.sets.items()} == {
        "train": "something-something-v2-train.json", "validation": "something-something-v2-validation.json",
        "test": "something-something-v2-test.json"}
    with pytest.raises(UserError, match="no labels.json"):
        split_files(official / "fewshot")
