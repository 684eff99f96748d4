"""LooC against MoCo where LooC claims to help: downstream tasks that need what an augmentation destroys. Both
pre-train MobileNetV2 on the object image set's train split with the same augmentations (colour, rotation, texture),
then linear probes on three tasks (`vislearn/pretrain/contrastive/tasks.py`): colour-defined classes, 4-way
rotation, and the ordinary object classes.

    python bench/pretrain/looc_probes.py --out runs/looc_probes [--seeds 0,1,2] [--epochs 2]

Every run is a CLI call (printed); finished runs are kept and a rerun continues. Writes OUT/table.json and
OUT/table.md (test error, mean ± std over seeds; C of each probe chosen on val).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

PRETRAIN = ["--data", "objects", "--backbone", "mobilenet_v2_ms", "--img-size", "64", "--batch-size", "64",
            "--augment", "colour,rotation,texture", "--threads", "1"]
SPACES = {"moco": ("backbone", "all"), "looc": ("backbone", "all", "concat")}
TASKS = ("colours", "rotation", "objects")


def run(cmd: list[str], log: Path) -> None:
    print("$", " ".join(cmd), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with open(log, "a") as f:
        subprocess.run(["nice", "-n", "5", *cmd], check=True, stdout=f, stderr=subprocess.STDOUT, env=env)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/looc_probes")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=2)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for method, spaces in SPACES.items():
            run_dir = out / f"{method}_s{seed}"
            if not (run_dir / "results.json").exists():
                resume = ["--resume"] if (run_dir / "last.pt").exists() else []
                run([sys.executable, "-m", "vislearn", "pretrain", method, "--out", str(run_dir), "--epochs",
                     str(args.epochs), "--seed", str(seed), *PRETRAIN, *resume], out / f"{method}_s{seed}.log")
            probe_dir = out / f"probe_{method}_s{seed}"
            if not (probe_dir / "results.json").exists():
                cmd = [sys.executable, "-m", "vislearn", "pretrain", "probe", "--report", str(probe_dir)]
                for space in spaces:
                    cmd += ["--encoder", f"{run_dir}@{space}"]
                for task in TASKS:
                    cmd += ["--task", task]
                run(cmd, out / f"probe_{method}_s{seed}.log")
            for r in json.loads((probe_dir / "results.json").read_text())["results"]:
                space = r["encoder"].rsplit("@", 1)[1]
                rows.append({"method": method, "space": space, "seed": seed, "task": r["task"],
                             "test_error": r["test_error"], "val_error": r["val_error"], "C": r["C"]})
    table = {}
    for r in rows:
        table.setdefault(f"{r['method']}@{r['space']}", {}).setdefault(r["task"], []).append(r["test_error"])
    (out / "table.json").write_text(json.dumps({"rows": rows, "args": vars(args)}, indent=1))
    lines = ["| encoder | " + " | ".join(TASKS) + " |", "|---|" + "---|" * len(TASKS)]
    for name, per_task in table.items():
        lines.append(f"| {name} | " + " | ".join(
            f"{100 * np.mean(per_task[t]):.1f} ± {100 * np.std(per_task[t]):.1f}" for t in TASKS) + " |")
    (out / "table.md").write_text("test error %, mean ± std over seeds\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
