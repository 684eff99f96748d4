"""`vislearn control cycles evaluate --runs RUN... --policy SOURCE.pt --oracle ORACLE.pt --out FOLDER`: the table
of one pair over seeds (one fitted run per seed), in the target domain, on the same evaluation episodes:

- maps: the source policy through the learned maps (mean over episodes per seed, then mean ± std over seeds);
- direct: the source policy through the fixed joint assignment, no learned maps (identity for equal robots);
- oracle: a policy trained in the target with the target's reward (for an image pair: the state policy reading
  the true state, an upper bound);
- random: uniform random actions;
- for an image pair, the state-estimation error of H on held-out frames (true states never used in training),
  next to that of predicting the mean state.

Writes results.json, results.md, index.html (the table, the fit curves of every seed, a return chart) and
transfer.mp4 (the first episode of the first seed, through the maps)."""
from __future__ import annotations

import argparse
import html
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from vislearn.common.cli import Parser, command, positive_int
from vislearn.common.errors import UserError
from vislearn.common.files import write_text
from vislearn.common.jsonio import write_json
from vislearn.common.outputs import claim_folder, session
from vislearn.common.tables import format_table

from . import data as datamod
from .correspondence import Correspondence, load_maps
from .pairs import PairConfig
from .policy import load_policy, policy_returns
from .transfer import random_returns, transfer_returns, write_video

KIND = "control cycles evaluate"
OUT_FILES = ("results.json", "results.md", "index.html", "returns.png", "transfer.mp4")


def state_error(corr: Correspondence, heldout: dict) -> dict:
    """Mean |H(frames) - state| over held-out frames, per coordinate in units of the state's spread, against
    predicting the training data's mean state."""
    trans = datamod.Transitions.of(heldout)
    states = torch.as_tensor(heldout["states"])
    errs = []
    with torch.no_grad():
        for chunk in torch.arange(len(trans)).split(512):
            frames = trans.stacks(trans.obs_idx[chunk], trans.first_idx[chunk])
            errs.append(((corr.H(frames) - states[chunk]) / corr.sx.std).abs())
    err = torch.cat(errs)
    mean_err = ((states - corr.sx.mean) / corr.sx.std).abs()
    return {"normalised_l1": float(err.mean()), "mean_state_l1": float(mean_err.mean()),
            "per_coordinate": err.mean(0).tolist(), "frames": len(trans)}


def summarise(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "values": [float(v) for v in values]}


def load_inputs(runs: list[Path], policy: Path, oracle: Path | None) -> tuple:
    """The fitted maps of every run, the source policy and the oracle, each checked (one line otherwise)."""
    actor, _ = load_policy(policy)
    maps = []
    for run in runs:
        path = run / "maps.pt"
        if not path.is_file():
            raise UserError(f"{run}: no maps.pt; fit it first (vislearn control cycles fit --run {run})")
        maps.append(load_maps(path))
    names = {PairConfig(**d["pair"]).name for _, d in maps}
    if len(names) > 1:
        raise UserError(f"--runs: runs of different pairs ({', '.join(sorted(names))}); one pair per table")
    corr0 = maps[0][0]
    if actor.obs_mean.numel() != corr0.meta["source_obs"] or actor.head.out_features != corr0.meta["source_act"]:
        raise UserError(f"{policy}: not a policy of the pair's source ({corr0.meta['source_obs']} observations, "
                        f"{corr0.meta['source_act']} actions)")
    o_actor = None
    if oracle is not None:
        o_actor, _ = load_policy(oracle)
        want = corr0.meta["target_obs"] if not corr0.image else corr0.meta["source_obs"]
        if o_actor.obs_mean.numel() != want:
            raise UserError(f"{oracle}: not a policy of the pair's target ({want} observations)")
    return actor, maps, o_actor


def evaluate(runs: list[Path], policy: Path, oracle: Path | None, episodes: int, video: Path | None = None,
             log=print, inputs: tuple | None = None) -> dict:
    actor, maps, o_actor = inputs or load_inputs(runs, policy, oracle)
    corr0, data0 = maps[0]
    cfg = PairConfig(**data0["pair"])
    target, xml = cfg.domain("target"), data0["xml"]["target"]
    rows: dict[str, dict] = {}
    per_seed = []
    for i, (corr, _) in enumerate(maps):
        frames = [] if (video is not None and i == 0) else None
        rets = transfer_returns(corr, actor, target, xml, episodes, frames=frames)
        if frames:
            write_video(video, frames)
        per_seed.append(float(np.mean(rets)))
        log(f"{runs[i]}: maps {per_seed[-1]:.1f}")
    rows["maps"] = summarise(per_seed)
    if not corr0.image:
        rows["direct"] = summarise(transfer_returns(corr0.without_learning(), actor, target, xml, episodes))
    if o_actor is not None:
        o_domain = target if not corr0.image else cfg.domain("source")
        o_xml = xml if not corr0.image else data0["xml"]["source"]
        rows["oracle"] = summarise(policy_returns(o_actor, o_domain, o_xml, episodes))
    rows["random"] = summarise(random_returns(target, xml, episodes))
    result = {"pair": cfg.name, "target": target.describe(), "episodes": episodes, "seeds": len(runs),
              "runs": [str(r) for r in runs], "policy": str(policy), "oracle": str(oracle) if oracle else None,
              "rows": rows}
    if "oracle" in rows:
        o, r = rows["oracle"]["mean"], rows["random"]["mean"]
        for name in ("maps", "direct"):
            if name in rows:
                rows[name]["of_oracle"] = rows[name]["mean"] / o if o else None
                rows[name]["of_oracle_above_random"] = (rows[name]["mean"] - r) / (o - r) if o != r else None
    if corr0.image:
        errs = []
        for run, (corr, _) in zip(runs, maps):
            held = run / "data" / "heldout.npz"
            if held.is_file():
                errs.append(state_error(corr, datamod.load(held)))
        if errs:
            result["state_error"] = {"normalised_l1": summarise([e["normalised_l1"] for e in errs]),
                                     "mean_state_l1": errs[0]["mean_state_l1"], "frames": errs[0]["frames"]}
    result["cycle_losses"] = [d.get("fit", {}).get("final", {}) for _, d in maps]
    return result


def markdown(result: dict) -> str:
    rows = []
    for name, r in result["rows"].items():
        std = f" ± {r['std']:.0f}" if name == "maps" else f" (± {r['std']:.0f} over episodes)"
        frac = f"{100 * r['of_oracle']:.0f}%" if r.get("of_oracle") is not None else "-"
        above = f"{100 * r['of_oracle_above_random']:.0f}%" if r.get("of_oracle_above_random") is not None else "-"
        rows.append([name, f"{r['mean']:.0f}{std}", frac, above])
    text = (f"{result['pair']}: target {result['target']}; {result['episodes']} episodes, maps over "
            f"{result['seeds']} seeds\n\n" + format_table(rows, ["policy", "target return", "of oracle",
                                                                 "of oracle above random"]))
    if "state_error" in result:
        e = result["state_error"]
        text += (f"\n\nimage -> state on {e['frames']} held-out frames: L1 {e['normalised_l1']['mean']:.3f} ± "
                 f"{e['normalised_l1']['std']:.3f} state spreads (predicting the mean state: {e['mean_state_l1']:.3f})")
    return text + "\n"


def _plot(result: dict, out: Path) -> None:
    from .report import _plt, _save

    plt = _plt()
    names = list(result["rows"])
    fig, ax = plt.subplots(figsize=(5, 3))
    means = [result["rows"][n]["mean"] for n in names]
    stds = [result["rows"][n]["std"] for n in names]
    ax.bar(names, means, yerr=stds, color=["C0", "C1", "C2", "C7"][:len(names)], capsize=3)
    ax.set_ylabel("target-domain return")
    ax.set_title(f"{result['pair']}", fontsize=9)
    fig.tight_layout()
    _save(fig, out)


def report(result: dict, runs: list[Path], out: Path) -> Path:
    write_text(out / "results.md", markdown(result))
    _plot(result, out / "returns.png")
    curves = []
    for i, run in enumerate(runs):
        if (run / "fit_curves.png").is_file():
            name = f"fit_curves_seed{i}.png"
            shutil.copyfile(run / "fit_curves.png", out / name)
            curves.append(name)
    md = html.escape(markdown(result))
    video = "<video src='transfer.mp4' controls></video>" if (out / "transfer.mp4").is_file() else ""
    page = out / "index.html"
    write_text(page, "<!doctype html><meta charset='utf-8'><title>Dynamics cycles: " + html.escape(result["pair"])
               + "</title><h1>Cross-domain transfer by dynamics cycle-consistency: " + html.escape(result["pair"])
               + f"</h1><pre>{md}</pre><img src='returns.png'><h2>The source policy in the target, through the "
               f"maps (seed 0, first episode)</h2>{video}<h2>Map training, per seed</h2>"
               + "".join(f"<img src='{c}' style='max-width:100%'>" for c in curves))
    return page


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn control cycles evaluate",
               description="The table of one pair over seeds (one fitted run per seed), in the target domain, on the "
                           "same seeded episodes: the source policy through the maps (mean ± std over seeds), direct "
                           "transfer through the fixed joint assignment, the --oracle (trained in the target with its "
                           "reward) and random actions; for an image pair also H's state-estimation error on held-out "
                           "frames. Writes results.json, results.md, returns.png, transfer.mp4 and index.html.")
    p.add_argument("--runs", nargs="+", required=True, help="fitted run folders of one pair, one per seed")
    p.add_argument("--policy", required=True, help="the source policy.pt")
    p.add_argument("--oracle", default=None, help="the target oracle's policy.pt (image pairs: the state policy)")
    p.add_argument("--episodes", type=positive_int, default=10, help="evaluation episodes per row (default 10)")
    p.add_argument("--out", required=True, help="folder for the table and report page")
    p.add_argument("--overwrite", action="store_true", help="replace output files vislearn did not write")
    return p


def run(args: argparse.Namespace) -> int:
    runs = [Path(r) for r in args.runs]
    out = Path(args.out)
    oracle = Path(args.oracle) if args.oracle else None
    inputs = load_inputs(runs, Path(args.policy), oracle)
    with session():
        claim = claim_folder(out, kind=KIND, lock=True, overwrite=args.overwrite)
        claim.check(OUT_FILES, args.overwrite, [args.policy, args.oracle])
        result = evaluate(runs, Path(args.policy), oracle, args.episodes, video=out / "transfer.mp4",
                          log=lambda s: print(s, flush=True), inputs=inputs)
        write_json(out / "results.json", result, indent=1)
        page = report(result, runs, out)
    print(markdown(result))
    print(f"report: {page}")
    return 0


main = command(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
