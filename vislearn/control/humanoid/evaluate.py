"""`vislearn control humanoid evaluate POLICY --out JSON`: success (no fall for the whole episode, 20 s by default)
and velocity-tracking error over seeded randomised episodes, on the training dynamics and on held-out dynamics
outside every training range (heavy: a payload of 60% of the body's mass; slippery: friction 0.15; weak: motors at
70%), and with `--change CONDITION --change-at SECONDS`, the adaptation test: the change happens mid-episode and the
tracking error is recorded against time since it (no weight is updated; a history policy can only adapt in context).

Episodes use evaluation seeds 0.. (training uses 100,000,000 and up), the policy's mean action, and the dynamics
ranges it was trained under (from its file), so two policies of one robot meet the same episodes."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from vislearn.common.cli import Parser, command
from vislearn.common.errors import UserError
from vislearn.common.files import input_file
from vislearn.common.jsonio import write_json
from vislearn.common.outputs import claim_file

from .env import EnvSettings, LocoEnvs
from .policies import History, Policy
from .policy_file import load_policy
from .randomization import CONDITIONS, Randomization

EVAL_SEEDS = 0
IDLE_SEED = 99_999_999  # an environment with no episode left runs this one, unrecorded


def make_envs(meta: dict, n: int, seeds: Sequence[int], condition: str, idle: np.ndarray,
              randomization: Randomization | None = None) -> LocoEnvs:
    queue = list(seeds)

    def seed_of(i: int, k: int) -> int:
        if queue:
            return int(queue.pop(0))
        idle[i] = True
        return IDLE_SEED

    rand = randomization or Randomization(**meta["randomization"])
    envs = LocoEnvs(EnvSettings(**meta["env"]), n, rand, seed_of)
    envs.condition = [condition] * n
    return envs


@torch.no_grad()
def rollout(policy: Policy, meta: dict, seeds: Sequence[int], condition: str = "train", num_envs: int = 16,
            change: str | None = None, change_at: float = 5.0, trace: bool = False) -> list[dict]:
    """One episode per seed with the policy's mean action; per episode: seed, success, fell, length (s), return,
    tracking error (mean |v - command|) and, with `trace`, the error at every step."""
    n = max(1, min(num_envs, len(seeds)))
    idle = np.zeros(n, dtype=bool)
    envs = make_envs(meta, n, seeds, condition, idle)
    envs.start()
    hist = None if policy.privileged else History(n, policy.history, envs.obs_dim)
    if hist is not None:
        hist.push(envs.obs, np.ones(n, dtype=bool))
    change_step = int(round(change_at / envs.control_dt)) if change else -1
    traces: list[list[float]] = [[] for _ in range(n)]
    results: dict[int, dict] = {}
    while not idle.all():
        window = torch.from_numpy(hist.buf.copy()) if hist is not None else None
        actions = policy.mean(window, torch.from_numpy(envs.priv.copy())).numpy()
        if change:
            for i in range(n):
                if envs.t[i] == change_step:
                    envs.change_dynamics(i, change)
        was_idle = idle.copy()
        seeds_now = envs.seeds.copy()
        _, term, trunc, ended = envs.step(actions)
        for i in range(n):
            if not was_idle[i] and trace:
                traces[i].append(abs(envs.last_velocity[i] - envs.last_command[i]))
        for i, seed, ret, length, fell, err in ended:
            if was_idle[i] or seed != seeds_now[i]:
                continue
            results[seed] = {"seed": seed, "success": not fell, "fell": fell, "seconds": length * envs.control_dt,
                             "return": ret, "tracking_error": err, "dt": envs.control_dt}
            if trace:
                results[seed]["trace"] = traces[i]
            traces[i] = []
        if hist is not None:
            hist.push(envs.obs, term | trunc)
    return [results[int(s)] for s in seeds]


def summarise(episodes: list[dict]) -> dict:
    def stat(key):
        v = np.array([e[key] for e in episodes], dtype=float)
        return float(v.mean()), float(v.std())
    return {"episodes": len(episodes), "success": stat("success")[0], "falls": stat("fell")[0],
            "mean_return": stat("return")[0], "mean_seconds": stat("seconds")[0],
            "tracking_error": stat("tracking_error")[0], "tracking_error_std": stat("tracking_error")[1]}


def evaluate_file(path, episodes: int, conditions: Sequence[str] = CONDITIONS, num_envs: int = 16) -> dict:
    policy, meta = load_policy(path)
    seeds = list(range(EVAL_SEEDS, EVAL_SEEDS + episodes))
    return {c: summarise(rollout(policy, meta, seeds, c, num_envs)) for c in conditions}


def adaptation_curve(policy: Policy, meta: dict, episodes: int, change: str, change_at: float,
                     num_envs: int = 16, seed_base: int = EVAL_SEEDS) -> dict:
    """Mean tracking error against time since the change, from 1 s before it, over the episodes still standing
    (cut where fewer than a quarter stand); the error in the second before it, and the share that fell after it."""
    eps = rollout(policy, meta, list(range(seed_base, seed_base + episodes)), "train", num_envs, change,
                  change_at, trace=True)
    dt = eps[0]["dt"]
    start, second = int(round(change_at / dt)), int(round(1.0 / dt))
    t, err = [], []
    for k in range(max(0, start - second), max(len(e["trace"]) for e in eps)):
        vals = [e["trace"][k] for e in eps if len(e["trace"]) > k]
        if len(vals) < max(1, len(eps) // 4):
            break
        t.append((k - start) * dt)
        err.append(float(np.mean(vals)))
    before = [np.mean(e["trace"][max(0, start - second):start]) for e in eps if len(e["trace"]) > start]
    return {"t": t, "error": err, "falls": float(np.mean([e["fell"] and e["seconds"] > change_at for e in eps])),
            "episodes": len(eps), "before": float(np.mean(before)) if before else None}


# ----------------------------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn control humanoid evaluate",
               description="Success (no fall for the episode) and velocity-tracking error of policies over seeded "
                           "randomised episodes (seeds 0..), on the training dynamics and the held-out ones "
                           f"({', '.join(CONDITIONS[1:])}); with --change, the mid-episode adaptation test and its plot.")
    p.add_argument("policies", nargs="+", help="policy.pt files (of one robot)")
    p.add_argument("--out", required=True, help="results JSON (with --change, a PNG of the same name beside it)")
    p.add_argument("--episodes", type=int, default=50, help="episodes per condition (default 50)")
    p.add_argument("--conditions", default=",".join(CONDITIONS), help=f"comma list of {', '.join(CONDITIONS)}")
    p.add_argument("--change", default=None, choices=CONDITIONS[1:], help="mid-episode change for the adaptation test")
    p.add_argument("--change-at", type=float, default=5.0, help="seconds into the episode (default 5)")
    p.add_argument("--num-envs", type=int, default=16, help="environments stepped together (default 16)")
    p.add_argument("--seed-base", type=int, default=EVAL_SEEDS, help="the first episode's seed (default 0; a "
                   "figure you report after choosing settings on seeds 0.. should come from unused ones, e.g. 10000)")
    p.add_argument("--overwrite", action="store_true", help="replace an --out file vislearn did not write")
    return p


def run(args: argparse.Namespace) -> int:
    from .curves import plot_adaptation

    torch.set_num_threads(1)
    if args.episodes < 1 or args.num_envs < 1:
        raise UserError("--episodes and --num-envs: expected 1 or more")
    conditions = [c for c in args.conditions.split(",") if c]
    bad = [c for c in conditions if c not in CONDITIONS]
    if bad:
        raise UserError(f"--conditions: {bad[0]!r}: not one of {', '.join(CONDITIONS)}")
    paths = [input_file(p, "policy file", "a policy.pt") for p in args.policies]
    if args.change and Path(args.out).suffix.lower() == ".png":
        raise UserError(f"--out: {args.out}: with --change the plot is written beside the JSON as .png; name the "
                        "JSON otherwise (e.g. eval.json)")
    out = claim_file(args.out, overwrite=args.overwrite, inputs=paths)
    png = claim_file(out.with_suffix(".png"), overwrite=args.overwrite, inputs=paths) if args.change else None
    loaded = [load_policy(p) for p in paths]
    robots = {m["env"]["robot"] for _, m in loaded}
    if len(robots) > 1:
        raise UserError(f"{paths[1]}: a policy of another robot ({', '.join(sorted(robots))}): compare one robot's")
    if not 0 <= args.seed_base < 100_000_000:
        raise UserError("--seed-base: expected 0 to 99,999,999 (training episodes use 100,000,000 and up)")
    report: dict = {"episodes": args.episodes, "seeds": [args.seed_base, args.seed_base + args.episodes - 1],
                    "policies": {}}
    curves = {}
    for path, (policy, meta) in zip(paths, loaded):
        label = f"{meta['arch']} ({path.parent.name})"
        seeds = list(range(args.seed_base, args.seed_base + args.episodes))
        row = {c: summarise(rollout(policy, meta, seeds, c, args.num_envs)) for c in conditions}
        if args.change:
            curves[label] = adaptation_curve(policy, meta, args.episodes, args.change, args.change_at, args.num_envs,
                                             args.seed_base)
            row["adaptation"] = {args.change: curves[label]}
        report["policies"][str(path)] = {"arch": meta["arch"], **row}
        print(f"{label}: " + ", ".join(f"{c} success {100 * row[c]['success']:.0f}% error "
                                      f"{row[c]['tracking_error']:.3f}" for c in conditions))
    write_json(out, report, indent=1)
    if png is not None:
        plot_adaptation(curves, png, f"{args.change} at {args.change_at:g} s ({args.episodes} episodes)")
        print(f"wrote {out} and {png}")
    else:
        print(f"wrote {out}")
    return 0


main = command(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
