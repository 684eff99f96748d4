"""Benchmark: `vislearn video splits compositional` end to end on 220,000 generated SSv2-style records.

    .venv/bin/python bench/bench_splits.py [--records 220000] [--nouns 1500] [--restarts 4]

Generates SSv2-format metadata (174 templates with 1-3 placeholders, ~55% multi-object videos,
a Zipf-distributed vocabulary with messy spellings: articles, plurals, colour/size adjectives,
spacing variants, typos), then times, in the same process and on the same files:
  baseline       json.load of the train+validation lists + json.dump of them again
  compositional  the full command (read, canonicalise, search, clean up, write 5 files + report)
  validate       `vislearn video splits validate` on the result
  shuffled       `vislearn video splits shuffled` from the result
Measured figures are printed; the issue's bar is compositional < 30 s for 220,000 records.

Measured on the development machine (2 CPU cores shared with other jobs, load average ~3.3
during the run; Python 3.11, numpy 2.4), default settings (4 search starts), one run:
  220,000 records: 10,222 raw noun spellings -> 2,825 canonical nouns
  split: 77,370 train + 77,408 validation, 174 classes, 1,452 / 1,327 nouns in A / B;
         dropped: 65,201 with nouns in both sets, 21 with a validation noun unseen in training
  baseline json load + dump      3.7 s
  compositional (end to end)    17.0 s   (search 9.4 s for 4 starts, preparation 1.3 s)
  validate                       2.4 s
  shuffled                       3.2 s
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from vislearn.common.cli import Parser, run_main  # noqa: E402


VERBS = ["Putting", "Pushing", "Pulling", "Moving", "Dropping", "Lifting", "Holding", "Showing", "Throwing",
         "Taking", "Pretending to put", "Pretending to take", "Tipping", "Turning", "Spinning", "Poking",
         "Covering", "Uncovering", "Squeezing", "Tearing", "Folding", "Unfolding", "Opening", "Closing",
         "Stacking", "Rolling", "Sliding", "Hitting", "Plugging", "Attaching"]
PREPS = ["onto", "into", "next to", "behind", "in front of", "under", "over", "away from", "towards", "with"]
HEADS = ("box cup pen bottle book phone ball spoon glass bowl remote plate coin knife mug charger mouse jar key "
         "battery basket crayon pillow fork tape candle stick toothbrush eraser plug soap orange onion pot adapter "
         "keyboard flower tube ruler rock mirror board sharpener plant bangle bracelet marker lighter cloth watch "
         "shoe cap container chair notebook drawer tissue door stapler laptop clip cable purse lid apple banana "
         "blanket stone leaf hat sponge case bucket lipstick candy doll tumbler lock lemon umbrella napkin tomato "
         "sock speaker envelope lotion magnet fan pan perfume helmet slipper tray tablet cord dish razor belt glove "
         "hammer fridge shampoo button camera hanger bulb straw disk shelf switch torch mat carrot biscuit feather "
         "brick picture sheet pepper rubber towel wallet comb brush toy card paper table bag pencil").split()
MODIFIERS = ("plastic water glass paper tea coffee toy wooden metal steel pencil tissue match note key power cell "
             "screw hair tooth nail spray milk oil wine beer soap shoe tv remote phone").split()
ADJ = ["small", "big", "red", "blue", "white", "black", "old", "empty"]
ART = ["a", "the", "some", "my", "two", "another"]


def make_vocabulary(n_nouns: int, rng: np.random.Generator) -> list[str]:
    words = list(HEADS)
    while len(words) < n_nouns:
        words.append(f"{MODIFIERS[rng.integers(len(MODIFIERS))]} {HEADS[rng.integers(len(HEADS))]}")
        words = list(dict.fromkeys(words))
    return words[:n_nouns]


def variants(noun: str, rng: np.random.Generator) -> list[str]:
    """The raw SSv2-like spellings of one noun (a fixed set per noun, as annotators repeat themselves)."""
    plural = noun + ("es" if noun.endswith(("x", "ch", "sh")) else "s")
    i = int(rng.integers(1, max(2, len(noun) - 1)))
    out = [noun, noun, noun, f"the {noun}", f"a {noun}", plural, f"{ADJ[rng.integers(len(ADJ))]} {noun}",
           noun.replace(" ", "") if " " in noun else noun.capitalize(), noun[:i] + noun[i + 1:]]  # last: a typo
    return out


def make_templates(n: int = 174) -> list[str]:
    out = []
    i = 0
    while len(out) < n:
        verb = VERBS[i % len(VERBS)]
        kind = i // len(VERBS)
        if kind == 0:
            t = f"{verb} [something]"
        elif kind == 1:
            t = f"{verb} [something] {PREPS[i % len(PREPS)]} [something]"
        elif kind == 2:
            t = f"{verb} [something] and [something] {PREPS[(i + 3) % len(PREPS)]} [something]"
        else:
            t = f"{verb} [something] {PREPS[(i + kind) % len(PREPS)]} [something] (variant {kind})"
        out.append(t)
        i += 1
    return out


def make_dataset(folder: Path, n_records: int, n_nouns: int, seed: int = 0) -> dict:
    """SSv2-format labels/train/validation files in `folder` (80/20 like the real release)."""
    rng = np.random.default_rng(seed)
    templates = make_templates(174)
    vocab = make_vocabulary(n_nouns, rng)
    zipf = 1.0 / np.arange(1, len(vocab) + 1) ** 1.05
    zipf /= zipf.sum()
    # class frequencies also long-tailed, like SSv2
    cw = 1.0 / np.arange(1, len(templates) + 1) ** 0.6
    cw /= cw.sum()
    cls = rng.choice(len(templates), size=n_records, p=cw)
    nouns = rng.choice(len(vocab), size=(n_records, 3), p=zipf)
    spell = [variants(v, rng) for v in vocab]
    pick = rng.integers(0, len(spell[0]), size=(n_records, 3))
    records = []
    for i in range(n_records):
        t = templates[cls[i]]
        k = t.count("[something]")
        ph = [spell[j][pick[i, m]] for m, j in enumerate(nouns[i, :k])]
        filled = t
        for p in ph:
            filled = filled.replace("[something]", p, 1)
        records.append({"id": str(100000 + i), "label": filled.lower(), "template": t, "placeholders": ph})
    labels = {t.replace("[", "").replace("]", ""): str(i) for i, t in enumerate(templates)}
    n_train = int(0.8 * n_records)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"labels": folder / "something-something-v2-labels.json",
             "train": folder / "something-something-v2-train.json",
             "validation": folder / "something-something-v2-validation.json"}
    json.dump(labels, open(paths["labels"], "w"))
    json.dump(records[:n_train], open(paths["train"], "w"))
    json.dump(records[n_train:], open(paths["validation"], "w"))
    return paths


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main(argv=None) -> int:
    ap = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=220_000)
    ap.add_argument("--nouns", type=int, default=1500, help="distinct nouns before messy spellings")
    ap.add_argument("--restarts", type=int, default=4)
    ap.add_argument("--keep", type=Path, default=None, help="keep the generated data and split here")
    args = ap.parse_args(argv)
    from vislearn.video.splits.__main__ import main as splits_main

    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        t_gen, paths = timed(lambda: make_dataset(root / "ssv2", args.records, args.nouns))
        print(f"generated {args.records:,} records in {t_gen:.1f} s")

        def baseline():
            recs = json.load(open(paths["train"])) + json.load(open(paths["validation"]))
            with open(root / "baseline.json", "w") as f:
                json.dump(recs, f)
            return len(recs)

        t_base, _ = timed(baseline)
        out = root / "compositional"
        t_comp, rc = timed(lambda: splits_main(["compositional", "--labels", str(paths["labels"]),
                                                "--train", str(paths["train"]), "--val", str(paths["validation"]),
                                                "--out", str(out), "--restarts", str(args.restarts), "--quiet"]))
        if rc != 0:
            print(f"compositional failed with exit code {rc}")
            return 1
        report = json.load(open(out / "report.json"))
        t_val, rc_val = timed(lambda: splits_main(["validate", str(out), "--quiet"]))
        t_shuf, rc_shuf = timed(lambda: splits_main(["shuffled", "--from", str(out), "--out", str(root / "shuffled"),
                                                     "--quiet"]))
        c, n = report["counts"], report["nouns"]
        print(f"nouns: {n['raw_forms']:,} raw forms -> {n['canonical_forms']:,} canonical")
        print(f"split: {c['train']:,} train + {c['validation']:,} validation, {c['classes']} classes, "
              f"{c['nouns_A']}/{c['nouns_B']} nouns in A/B; dropped {report['dropped']}")
        print(f"objective {report['objective']['value']:.1f}; search {report['seconds']['search']:.1f} s, "
              f"prepare {report['seconds']['prepare']:.1f} s")
        print(f"{'step':<28}{'seconds':>10}")
        print(f"{'baseline json load+dump':<28}{t_base:>10.2f}")
        print(f"{'compositional (end to end)':<28}{t_comp:>10.2f}")
        print(f"{'validate':<28}{t_val:>10.2f}   exit {rc_val}")
        print(f"{'shuffled':<28}{t_shuf:>10.2f}   exit {rc_shuf}")
        print(f"compositional / baseline = {t_comp / t_base:.1f}x; under 30 s: {'yes' if t_comp < 30 else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
