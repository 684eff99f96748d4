"""The control row of `make demo` (about 2 minutes on 2 cores): behaviour cloning on `reach` from 20 scripted-expert
demonstrations with cached features of two frozen encoders side by side — the MAE ViT_P-tiny that the MAE row just
pre-trained on hand-object frames (RUN/mae/mae/encoder.pth; a random ViT_P-tiny where that row did not run) and
the ImageNet MobileNetV2 — and the state-based oracle as the reference, each evaluated on the same 10 seeded
episodes. Resumable: a second `make demo` reuses the demonstrations and the finished runs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vislearn.common.demo import DemoOutcome, Measure
from vislearn.common.jsonio import write_json

DEMOS = 20
EVAL_EPISODES = 10
SETTINGS = ["threads=1", "epochs=60", "warmup_epochs=6"]


def quick_demo(data: Path, out: Path, jobs: int = 2) -> DemoOutcome:
    from .bc import DEFAULT_CONFIG as BC_CONFIG, load_config, train_bc
    from .compare import Grid, plot, report, stills, summarise
    from .demos import record_demos
    from .envs import RenderSettings
    from .rollouts import evaluate_policy

    torch.set_num_threads(1)
    out = Path(out)
    mae = out.parent / "mae" / "mae" / "encoder.pth"
    encoders = {"mae_vit_p" if mae.is_file() else "random_vit_p": f"ckpt:{mae}" if mae.is_file() else "random:vit_p_tiny",
                "imagenet_mobilenet": "imagenet", "state_oracle": "state"}
    demos = Path(data) / "reach"
    record_demos("reach", DEMOS, demos, render=RenderSettings(size=96), num_envs=max(1, jobs), log=lambda *a: None)
    grid = Grid(encoders=encoders, tasks=["reach"], num_demos=[DEMOS], seeds=[0], eval_episodes=EVAL_EPISODES,
                eval_num_envs=max(1, jobs), size=96, bc=SETTINGS)
    cells = []
    for label, spec in encoders.items():
        run = out / "cells" / "reach" / label / f"n{DEMOS}-s0"
        cfg = load_config(BC_CONFIG, [*SETTINGS, f"demos={demos}", "task=reach", f"encoder={spec}", f"num_demos={DEMOS}",
                                 f"eval_episodes={EVAL_EPISODES}", f"eval_num_envs={max(1, jobs)}"])
        res, _ = train_bc(cfg, run, log=lambda *a, **k: None)
        cells.append({"task": "reach", "encoder": label, "spec": spec, "num_demos": DEMOS, "seed": 0,
                      "success_rate": res["eval"]["success_rate"], "mean_length": res["eval"]["mean_length"],
                      "run": str(run), "seconds": res.get("train_seconds", 0) + res.get("eval_seconds", 0)})
    rng = np.random.default_rng(0)
    random_rate = evaluate_policy(lambda obs: rng.uniform(-1, 1, (len(obs["proprio"]), 4)), "reach", EVAL_EPISODES,
                                  num_envs=1)["success_rate"]
    summary = summarise(grid, cells)
    write_json(out / "results.json", summary, indent=1)
    plot(summary, out / "success.png")
    page = report(summary, out, stills(grid, out))
    rate = {c["encoder"]: f"{100 * c['success_rate']:.0f}%" for c in cells}
    pixel = [k for k in encoders if k != "state_oracle"]
    return DemoOutcome(
        measures=[Measure(f"BC on reach, {DEMOS} demos, frozen {pixel[0]} vs {pixel[1]}: success "
                          f"({EVAL_EPISODES} episodes)", f"{rate[pixel[0]]} vs {rate[pixel[1]]}",
                          f"state oracle {rate['state_oracle']}; random actions {100 * random_rate:.0f}%")],
        report=page,
        notes=[f"{DEMOS} expert demonstrations at 96 px (front camera), MVP's policy on cached features, "
               f"{SETTINGS[1].split('=')[1]} epochs; 1 seed: a demo, not a measurement (docs/control.md has the table)"],
    )
