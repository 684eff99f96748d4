"""The humanoid-locomotion row of `make demo` (about a minute on 2 cores): the shipped Walker2d students (a causal
transformer and an MLP on the same 16-token history, trained by our commands: shipped/README.md) on held-out
dynamics they never met in training (a payload of 60% of the body's mass), from the start of the episode and as a
mid-episode change (the adaptation plot); then a little training: an MLP student from the shipped teacher for a
few updates (its KL to the teacher, first and last). Every shipped file is sha256-checked before use."""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import torch

from vislearn.common.demo import DemoOutcome, Measure
from vislearn.common.files import write_text
from vislearn.common.jsonio import read_json, read_jsonl, write_json
from vislearn.common.weights import shipped_file

SHIPPED = Path(__file__).resolve().parent / "shipped"
EPISODES = 12
CHANGE, CHANGE_AT = "heavy", 5.0
TRAIN_UPDATES = 8


def shipped(name: str) -> Path:
    """A shipped file, checked against the sha256 in shipped/manifest.json."""
    return shipped_file(SHIPPED, name)


def quick_demo(data: Path, out: Path, jobs: int = 2) -> DemoOutcome:
    from .curves import plot_adaptation
    from .evaluate import adaptation_curve, rollout, summarise
    from .policy_file import load_policy
    from .train import load_config, train, CONFIGS

    torch.set_num_threads(1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(EPISODES))
    rows, curves = {}, {}
    for arch in ("transformer", "mlp"):
        policy, meta = load_policy(shipped(f"walker2d-{arch}.pt"))
        rows[arch] = {c: summarise(rollout(policy, meta, seeds, c, 16)) for c in ("train", CHANGE)}
        curves[arch] = adaptation_curve(policy, meta, EPISODES, CHANGE, CHANGE_AT, 16)
    plot_adaptation(curves, out / "adaptation.png", f"Walker2d, {CHANGE} payload at {CHANGE_AT:g} s ({EPISODES} episodes)")
    # a little training: an MLP student of the shipped teacher
    run = out / "train-mlp-student"
    cfg = load_config(CONFIGS / "student.yaml", ["role=student", "student=mlp", f"teacher={shipped('walker2d-teacher.pt')}",
                                                 "num_envs=16", "num_steps=32", f"steps={16 * 32 * TRAIN_UPDATES}",
                                                 "eval_episodes=0", "threads=1", "ckpt_every=2"])
    last = run / "last.pt"
    res = train(cfg, run, resume=last.exists(), log=lambda *a: None) if not (run / "results.json").exists() \
        else read_json(run / "results.json")
    kl = [r["kl_teacher"] for r in read_jsonl(run / "metrics.jsonl") if r.get("kl_teacher") is not None]
    summary = {"episodes": EPISODES, "change": CHANGE, "change_at": CHANGE_AT, "students": rows,
               "adaptation": curves,
               "train": {"updates": res.get("updates"), "kl_teacher": kl}}
    write_json(out / "results.json", summary, indent=1)

    def after(c, lo=2.0, hi=5.0):
        v = [e for t, e in zip(c["t"], c["error"]) if lo <= t <= hi]
        return float(np.mean(v)) if v else float("nan")

    page = _report(out, rows, curves, after)
    s = {a: rows[a][CHANGE] for a in rows}
    return DemoOutcome(
        measures=[
            Measure(f"Walker2d students on held-out dynamics (payload +60% of the body's mass): no fall in 20 s, "
                    f"transformer vs MLP ({EPISODES} episodes)",
                    f"{100 * s['transformer']['success']:.0f}% vs {100 * s['mlp']['success']:.0f}%",
                    "paper (real humanoid, its own tasks): transformer 97%, MLP 75%"),
            Measure("tracking error 2-5 s after a mid-episode payload, transformer vs MLP (m/s)",
                    f"{after(curves['transformer']):.2f} vs {after(curves['mlp']):.2f}",
                    f"before the change: {curves['transformer']['before']:.2f} vs {curves['mlp']['before']:.2f}"),
            Measure(f"a little training: an MLP student of the shipped teacher, {TRAIN_UPDATES} updates of 512 steps: "
                    "KL to the teacher, first -> last update",
                    f"{kl[0]:.2f} -> {kl[-1]:.2f}" if len(kl) > 1 else "-",
                    "the loop runs; the shipped students took 98k steps (docs/control.md)"),
        ],
        report=page,
        notes=["shipped policies: Walker2d, 15 CPU-minute teacher, students of the same step budget "
               "(shipped/README.md); 1 seed each: a demo, not the measurement (docs/control.md has it)"],
    )


def _report(out: Path, rows: dict, curves: dict, after) -> Path:
    head = "<tr><th>student</th><th>condition</th><th>no fall (%)</th><th>tracking error (m/s)</th></tr>"
    body = "".join(f"<tr><td>{a}</td><td>{html.escape(c)}</td><td>{100 * r['success']:.0f}</td>"
                   f"<td>{r['tracking_error']:.3f}</td></tr>" for a, conds in rows.items() for c, r in conds.items())
    import shutil

    curves = []
    for name in ("walker2d-teacher-curves.png", "walker2d-transformer-curves.png"):
        if (SHIPPED / name).is_file():
            shutil.copyfile(SHIPPED / name, out / name)
            curves.append(name)
    page = out / "index.html"
    write_text(page, "<!doctype html><meta charset='utf-8'><title>Humanoid locomotion: students</title>"
               "<h1>Locomotion under domain randomisation: history students on held-out dynamics</h1>"
               f"<p>{EPISODES} seeded episodes of 20 s per row; train = the training ranges (Table I), "
               f"{CHANGE} = a payload of 60% of the body's mass (outside them).</p>"
               f"<table border=1 cellpadding=3>{head}{body}</table>"
               "<h2>Adaptation: tracking error after a mid-episode payload (no weight update)</h2>"
               "<img src='adaptation.png' style='max-width:100%'>"
               "<h2>Training curves of the shipped teacher and transformer student</h2>"
               + "".join(f"<img src='{n}' style='max-width:100%'>" for n in curves)
               + "<p>The full measurement (3 seeds, 50 episodes per condition): docs/control.md.</p>")
    return page
