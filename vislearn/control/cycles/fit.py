"""`vislearn control cycles fit --run RUN`: the correspondence of a pair from its unpaired random-action data.

1. Each domain's forward model T on its own transitions (`forward_steps`, L1 of the normalised change), frozen.
2. The maps, `rounds` x (a state phase: F and H learn; an action phase: G and G_inv learn), `steps_per_phase`
   steps each, as the official code alternates them. Per step, a source batch (x, a, x') and a target batch
   (y, b, y'), drawn independently:
   - dynamics cycle, x20: |T_y(F(x), G(x, a)) - F(x')| and |T_x(H(y), G_inv(H(y), b)) - H(y')|;
   - back-translation, x10: |H(F(x)) - x|, |F(H(y)) - y|, |G_inv(x, G(x, a)) - a|, |G(H(y), G_inv(H(y), b)) - b|;
   - adversarial (least squares), x1: D_y on F(x) against y, D_x on H(y) against x.
   Image pairs have no F and no T_y: the cycle through T_x and the adversarial loss on H(y) are what teach H.
No target reward and no pairing is used. With `eval_every` and --policy, the transfer's target return is measured
every so many steps for the curve only: the maps kept are always the last ones (no selection on the return).

Exact resume: `last.pt` (every 500 steps) holds every network, the optimisers, the batch generator's state and the
metrics so far; a killed fit continued with --resume ends with the weights of one never stopped."""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

from vislearn.common.checkpoint import load_checkpoint, save_checkpoint
from vislearn.common.cli import Parser, command
from vislearn.common.errors import UserError
from vislearn.common.jsonio import read_json, write_json, write_jsonl
from vislearn.common.outputs import claim_folder, session
from vislearn.common.validate import load_settings

from . import data as datamod
from .correspondence import Correspondence, save_maps
from .models import back_translation_loss, dynamics_cycle_loss, gan_discriminator_loss, gan_generator_loss, l1
from .pairs import PairConfig, Sizes, assignments

KIND = "control cycles"
FIT_FILES = ("last.pt", "maps.pt", "fit_metrics.jsonl", "fit.json", "fit_curves.png")
# what the run's data was collected with: a fit cannot change it
DATA_KEYS = ("name", "source", "target", "state_assignment", "action_assignment", "collect_steps", "episode_steps",
             "heldout_steps")
CHECKPOINT_EVERY = 500  # a multiple of LOG_EVERY: a resumed run logs the same rows
LOG_EVERY = 100


def read_run(run: Path, overrides=()) -> tuple[PairConfig, Sizes, dict]:
    cfg_path = run / "config.json"
    if run.is_file():
        raise UserError(f"{run}: is a file; --run expects the run folder `collect` wrote")
    if not cfg_path.is_file():
        raise UserError(f"{run}: no config.json; collect the data first (vislearn control cycles collect PAIR "
                        f"--out {run})")
    config = read_json(cfg_path)
    try:
        cfg = PairConfig(**config["pair"])
        sizes = Sizes(**config["sizes"])
    except (KeyError, TypeError) as e:
        raise UserError(f"{cfg_path}: not a dynamics-cycles run's config ({e})") from None
    fixed = [o.split("=", 1)[0] for o in overrides if o.split("=", 1)[0] in DATA_KEYS]
    if fixed:
        raise UserError(f"{fixed[0]}: set when the run's data was collected; collect another run to change it "
                        "(fit settings: forward_*, map_hidden, disc_hidden, rounds, steps_per_phase, batch_size, lr*, "
                        "lambda_*, learn_actions, eval_*, seed)")
    cfg = load_settings(cfg, None, list(overrides))
    return cfg, sizes, config


def build(cfg: PairConfig, sizes: Sizes) -> Correspondence:
    state, action = assignments(cfg, sizes)
    target = cfg.domain("target")
    meta = {"source_obs": sizes.source_obs, "source_act": sizes.source_act, "target_obs": sizes.target_obs,
            "target_act": sizes.target_act, "state_assignment": state, "action_assignment": action,
            "map_hidden": list(cfg.map_hidden), "forward_hidden": list(cfg.forward_hidden),
            "disc_hidden": list(cfg.disc_hidden),
            "image": {"frames": target.frames, "size": target.image_size} if sizes.image else None}
    return Correspondence(meta)


def _split(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    perm = torch.randperm(n, generator=generator)
    k = max(1, n // 10)
    return perm[k:], perm[:k]


def train_forward(model, trans: datamod.Transitions, steps: int, batch: int, lr: float, g: torch.Generator) -> dict:
    """Fit one forward model; returns its held-out error next to the no-change baseline's (normalised L1)."""
    train_idx, val_idx = _split(len(trans), g)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        x, a, x1 = trans.batch(train_idx[torch.randint(len(train_idx), (batch,), generator=g)])
        loss = model.loss(x, a, x1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        x, a, x1 = trans.batch(val_idx)
        err = float(model.loss(x, a, x1))
        still = float(((x - x1) / model.stats.delta_std).abs().mean())
    for p in model.parameters():
        p.requires_grad_(False)
    return {"heldout_l1": err, "no_change_l1": still}


def map_losses(corr: Correspondence, src, tgt, cfg: PairConfig) -> dict[str, torch.Tensor]:
    x, a, x1 = src
    y, b, y1 = tgt
    sx = corr.sx.std
    hy, hy1 = corr.H(y), corr.H(y1)
    out = {"cycle_x": dynamics_cycle_loss(lambda s: s, lambda s, u: u, corr.T_x, hy, corr.G_inv(hy, b), hy1, sx)}
    out["adv"] = gan_generator_loss(corr.D_x, hy)
    back = l1(corr.G(hy, corr.G_inv(hy, b)), b)
    if corr.F is not None:
        sy = corr.sy.std
        out["cycle_y"] = dynamics_cycle_loss(corr.F, corr.G, corr.T_y, x, a, x1, sy)
        out["adv"] = out["adv"] + gan_generator_loss(corr.D_y, corr.F(x))
        back = back + back_translation_loss(corr.F, corr.H, x, sx) + back_translation_loss(corr.H, corr.F, y, sy)
    back = back + l1(corr.G_inv(x, corr.G(x, a)), a)
    out["back"] = back
    cycle = out["cycle_x"] + out.get("cycle_y", 0.0)
    out["total"] = cfg.lambda_dynamics * cycle + cfg.lambda_back * back + cfg.lambda_adv * out["adv"]
    return out


def disc_loss(corr: Correspondence, src, tgt) -> torch.Tensor:
    x, y = src[0], tgt[0]
    with torch.no_grad():
        hy = corr.H(y)
        fx = corr.F(x) if corr.F is not None else None
    loss = gan_discriminator_loss(corr.D_x, x, hy)
    if fx is not None:
        loss = loss + gan_discriminator_loss(corr.D_y, y, fx)
    return loss


def map_step(corr: Correspondence, src, tgt, cfg: PairConfig, opt, opt_disc, also_zero=()) -> dict:
    """One step of the maps (`opt`: the phase's optimiser; `also_zero`: the other phase's, whose gradients are
    dropped) and one of the discriminators, on a source and a target batch; returns the losses."""
    losses = map_losses(corr, src, tgt, cfg)
    for o in (opt, *also_zero):
        o.zero_grad()
    losses["total"].backward()
    opt.step()
    d = disc_loss(corr, src, tgt)
    opt_disc.zero_grad()
    d.backward()
    opt_disc.step()
    return {**losses, "disc": d}


def phases(cfg: PairConfig) -> list[str]:
    names = ["state", "action"] if cfg.learn_actions else ["state"]
    return [p for _ in range(cfg.rounds) for p in names]


def fit_run(run: Path, overrides=(), policy: str | None = None, resume: bool = False, overwrite: bool = False,
            log=print, progress: bool = True) -> dict:
    cfg, sizes, config = read_run(run, overrides)
    if policy is not None:  # checked before the work (and only read when eval_every > 0)
        from .policy import load_policy

        actor, _ = load_policy(policy)
        if actor.obs_mean.numel() != sizes.source_obs or actor.head.out_features != sizes.source_act:
            raise UserError(f"{policy}: a policy of {actor.obs_mean.numel()} observations and "
                            f"{actor.head.out_features} actions; the pair's source has {sizes.source_obs} and "
                            f"{sizes.source_act}")
    with session():
        claim = claim_folder(run, kind=KIND, lock=True, overwrite=overwrite, flag="--run")
        last = run / "last.pt"
        if last.exists() and not resume:
            raise UserError(f"{run}: already holds a fit (last.pt); pass --resume to continue it, or collect into "
                            "another run folder")
        claim.check(FIT_FILES, overwrite, [policy])
        return _fit(cfg, sizes, run, policy, resume, log, progress)


def _fit(cfg: PairConfig, sizes: Sizes, run: Path, policy_path, resume: bool, log, progress: bool) -> dict:
    torch.set_num_threads(1)
    src_data = datamod.load(run / "data" / "source.npz")
    tgt_data = datamod.load(run / "data" / "target.npz")
    src, tgt = datamod.Transitions.of(src_data), datamod.Transitions.of(tgt_data)
    torch.manual_seed(cfg.seed)
    corr = build(cfg, sizes)
    corr.set_stats(src_data, None if sizes.image else tgt_data)
    g = torch.Generator().manual_seed(cfg.seed)
    schedule = phases(cfg)
    total = len(schedule) * cfg.steps_per_phase
    opt_state = torch.optim.Adam(corr.state_parameters(), lr=cfg.lr)
    opt_action = torch.optim.Adam(corr.action_parameters(), lr=cfg.lr)
    opt_disc = torch.optim.Adam([p for d in corr.discriminators() for p in d.parameters()], lr=cfg.lr)
    metrics, step, forward_info, cpu0 = [], 0, None, 0.0
    if resume and (run / "last.pt").exists():
        ckpt = load_checkpoint(run / "last.pt")
        corr.load_state_dict(ckpt["model"])
        opt_state.load_state_dict(ckpt["opt_state"])
        opt_action.load_state_dict(ckpt["opt_action"])
        opt_disc.load_state_dict(ckpt["opt_disc"])
        g.set_state(ckpt["generator"])
        if ckpt.get("config") != dataclasses.asdict(cfg):
            changed = sorted(k for k, v in dataclasses.asdict(cfg).items() if ckpt.get("config", {}).get(k) != v)
            raise UserError(f"{run / 'last.pt'}: the fit ran with other settings ({', '.join(changed)}); resume "
                            "with the same key=value settings")
        metrics, step, forward_info, cpu0 = ckpt["metrics"], ckpt["step"], ckpt["forward"], ckpt["cpu_seconds"]
        for m in corr.forward_models():
            for p in m.parameters():
                p.requires_grad_(False)
        log(f"resumed {run / 'last.pt'} at map step {step}")
    else:
        forward_info = {"source": train_forward(corr.T_x, src, cfg.forward_steps, cfg.batch_size, cfg.lr_forward, g)}
        if corr.T_y is not None:
            forward_info["target"] = train_forward(corr.T_y, tgt, cfg.forward_steps, cfg.batch_size,
                                                   cfg.lr_forward, g)
        log("forward models (held-out L1, normalised; no-change baseline): " + ", ".join(
            f"{k} {v['heldout_l1']:.3f} ({v['no_change_l1']:.3f})" for k, v in forward_info.items()))
    evaluator = _evaluator(cfg, run, policy_path) if policy_path and cfg.eval_every else None
    start = time.process_time()
    from tqdm import tqdm

    bar = tqdm(total=total, initial=step, desc="fit maps", unit="step", leave=False, mininterval=2,
               disable=None if progress else True)
    sums: dict[str, float] = {}
    while step < total:
        phase = schedule[step // cfg.steps_per_phase]
        opt, other = (opt_state, opt_action) if phase == "state" else (opt_action, opt_state)
        losses = map_step(corr, src.sample(cfg.batch_size, g), tgt.sample(cfg.batch_size, g), cfg, opt, opt_disc,
                          (other,))
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + v.item()
        step += 1
        bar.update(1)
        if step % LOG_EVERY == 0 or step == total:
            n = LOG_EVERY if step % LOG_EVERY == 0 else step % LOG_EVERY
            row = {"step": step, "phase": phase, **{k: v / n for k, v in sums.items()}}
            sums = {}
            if evaluator is not None and step % cfg.eval_every == 0:
                row["eval_return"] = evaluator(corr)
            metrics.append(row)
        if step % CHECKPOINT_EVERY == 0 or step == total:
            save_checkpoint({"model": corr.state_dict(), "opt_state": opt_state.state_dict(),
                             "opt_action": opt_action.state_dict(), "opt_disc": opt_disc.state_dict(),
                             "generator": g.get_state(), "metrics": metrics, "step": step, "forward": forward_info,
                             "config": dataclasses.asdict(cfg),
                             "cpu_seconds": cpu0 + time.process_time() - start}, run / "last.pt")
            write_jsonl(run / "fit_metrics.jsonl", metrics)
    bar.close()
    corr.eval()
    info = {"map_steps": total, "cpu_seconds": round(cpu0 + time.process_time() - start, 1),
            "forward": forward_info, "final": metrics[-1] if metrics else {}}
    save_maps(run / "maps.pt", corr, {"pair": dataclasses.asdict(cfg), "sizes": dataclasses.asdict(sizes),
                                      "xml": {s: (run / f"{s}.xml").read_text() for s in ("source", "target")},
                                      "fit": info})
    write_jsonl(run / "fit_metrics.jsonl", metrics)
    write_json(run / "fit.json", info, indent=1)
    from .report import plot_fit_curves

    plot_fit_curves(run / "fit_metrics.jsonl", run / "fit_curves.png", cfg.name)
    return info


def _evaluator(cfg: PairConfig, run: Path, policy_path):
    from .policy import load_policy
    from .transfer import transfer_returns

    actor, _ = load_policy(policy_path)
    xml = (run / "target.xml").read_text()

    def evaluate(corr: Correspondence) -> float:
        corr.eval()
        rets = transfer_returns(corr, actor, cfg.domain("target"), xml, cfg.eval_episodes, seed=20_000)
        corr.train()
        return float(np.mean(rets))

    return evaluate


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn control cycles fit",
               description="The correspondence of a pair from its unpaired random-action data (no target reward). "
               "Forward models first, then the state and action maps by dynamics cycle-consistency (x20), back-translation and adversarial losses, in "
               "alternating phases. Writes RUN/maps.pt, fit_metrics.jsonl, fit_curves.png, fit.json; a killed fit "
               "continues exactly with --resume.")
    p.add_argument("--run", required=True, help="the run folder `collect` wrote")
    p.add_argument("--policy", default=None, help="a source policy.pt: with eval_every=N, the transfer's target "
                   "return every N steps (a curve; never used to choose the maps)")
    p.add_argument("--seed", default=None, help="seed of the networks and batches (default: the run's)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="fit settings, e.g. steps_per_phase=1000 "
                   "lambda_dynamics=20")
    p.add_argument("--resume", action="store_true", help="continue the fit in --run from its last.pt")
    p.add_argument("--overwrite", action="store_true", help="replace fit files that vislearn did not write")
    return p


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides) + ([f"seed={args.seed}"] if args.seed is not None else [])
    info = fit_run(Path(args.run), overrides, args.policy, args.resume, args.overwrite,
                   log=lambda s: print(s, flush=True))
    final = info["final"]
    print(f"fit {info['map_steps']} map steps in {info['cpu_seconds']:.0f} CPU-s; last losses: cycle "
          f"{final.get('cycle_x', float('nan')) + final.get('cycle_y', 0.0):.3f}, back {final.get('back', 0):.3f}, "
          f"adversarial {final.get('adv', 0):.3f}; wrote {Path(args.run) / 'maps.pt'}")
    return 0


main = command(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
