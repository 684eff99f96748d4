"""The dynamics-cycles row of `make demo` (about a minute on 2 cores): one cross-physics pair (`PAIR`) at a small
budget. The shipped source policy (PPO on the stock HalfCheetah, trained by our command: shipped/README.md) runs in
the target robot through maps learned here from a little unpaired random-action data, and through the fixed joint
assignment (direct transfer); both returns are divided by the oracle's return on the same pair and episodes,
shipped as a figure (the oracle policy trained in the target with its reward, measured by `evaluate`). Every
shipped file is sha256-checked before use."""
from __future__ import annotations

from pathlib import Path

import torch

from vislearn.common.demo import DemoOutcome, Measure
from vislearn.common.jsonio import read_json, write_json
from vislearn.common.weights import shipped_file

SHIPPED = Path(__file__).resolve().parent / "shipped"
PAIR = "cheetah_armature3"
SETTINGS = ["collect_steps=10000", "forward_steps=1500", "rounds=1", "steps_per_phase=600"]
EPISODES = 3


def shipped(name: str) -> Path:
    """A shipped file, checked against the sha256 in shipped/manifest.json."""
    return shipped_file(SHIPPED, name)


def quick_demo(data: Path, out: Path, jobs: int = 2) -> DemoOutcome:
    from .collect import collect_run
    from .correspondence import load_maps
    from .evaluate import evaluate, report
    from .fit import fit_run
    from .pairs import load_pair

    torch.set_num_threads(1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = read_json(SHIPPED / "manifest.json")["figures"][PAIR]
    policy = shipped(figures["policy"])
    run = out / "run"
    cfg, source = load_pair(PAIR, SETTINGS)
    if not (run / "data" / "target.npz").exists():
        collect_run(cfg, run, source, resume=(run / "config.json").exists(), log=lambda s: None)
    if not (run / "maps.pt").exists():
        fit_run(run, resume=(run / "last.pt").exists(), log=lambda s: None, progress=False)
    result = evaluate([run], policy, None, EPISODES, video=out / "transfer.mp4", log=lambda s: None)
    oracle = figures["oracle_return"]
    random = result["rows"]["random"]["mean"]
    for name in ("maps", "direct"):
        r = result["rows"][name]
        r["of_shipped_oracle"] = r["mean"] / oracle
        r["of_shipped_oracle_above_random"] = (r["mean"] - random) / (oracle - random)
    result["shipped_oracle"] = figures
    write_json(out / "results.json", result, indent=1)
    page = report(result, [run], out)
    fit = load_maps(run / "maps.pt")[1]["fit"]
    m, d = result["rows"]["maps"], result["rows"]["direct"]
    return DemoOutcome(
        measures=[
            Measure(f"HalfCheetah policy on a HalfCheetah with 3x joint armature, through maps learned from "
                    f"{cfg.collect_steps // 1000}k unpaired random steps per robot ({fit['map_steps']} map steps), "
                    f"vs direct transfer: return as % of the target oracle's ({EPISODES} episodes)",
                    f"{100 * m['of_shipped_oracle']:.0f}% vs {100 * d['of_shipped_oracle']:.0f}%",
                    f"oracle {oracle:.0f} (shipped figure, {figures['episodes']} episodes); full budget over 3 "
                    f"seeds: maps {100 * figures['maps_of_oracle']:.0f}%, direct "
                    f"{100 * figures['direct_of_oracle']:.0f}% (docs/control.md)"),
        ],
        report=page,
        notes=[f"a small budget (collect {cfg.collect_steps}, {fit['map_steps']} map steps, 1 seed): a demo, not "
               "the measurement; docs/control.md has the table over 3 seeds and all pairs"],
    )
