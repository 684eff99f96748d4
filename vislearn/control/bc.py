"""`vislearn control bc --demos DIR --encoder SPEC --out RUN`: behaviour cloning as MVP does it (ir413/mvp, BC).

The policy (`policy.MVPPolicy`): the frozen encoder's feature projected to 128-d beside a 128-d embedding of the
proprioception, an MLP [256, 128, 64] to the action; MSE on the expert's actions. Features and proprioception
are standardised with the training set's statistics (`agent.Norm`, kept in policy.pt). AdamW (lr 1e-3, weight
decay 0.01 on weight matrices only), batch 128, linear warm-up then cosine, per step. MVP trains 400 epochs with
40 of warm-up (configs/control/bc_mvp.yaml); the default here (configs/control/bc.yaml) is 100 with 10 of warm-up:
measured on reach, the loss is flat from epoch ~50 and 400 epochs gave the same success rate, and at 100 epochs 100
demonstrations of the longest tasks train in about a minute on one core (docs/control.md).

- A frozen encoder (`ckpt:`, `mvp:`, `imagenet`, `random:`) trains on cached features (`features.py`): the encoder
  runs once per frame of the demonstrations folder, ever.
- `scratch:ARCH` trains the encoder end to end on the frames: slow, so it runs a step budget (`scratch_steps`)
  instead of epochs.
- `state` is the oracle: Meta-World's full state is the feature.

The run folder gets config.json, last.pt (every `ckpt_every` epochs, atomic), metrics.jsonl (per epoch: loss, lr,
seconds), policy.pt (`agent.policy_file`) and results.json (losses, seconds per phase and, with `eval_episodes`,
the success rate on evaluation seeds: `rollouts.evaluate_policy`). The batches of step t depend on (seed, t)
only, so a killed run, run again with the same arguments, continues from last.pt and ends with the same weights.
A finished run run again only evaluates (e.g. with another `eval_episodes`).

Several GPUs or processes: the same command under `torchrun`; each process takes its share of every global batch
and DistributedDataParallel sums the gradients, so N processes compute what one does (to float rounding)."""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from vislearn.backbones.optim import param_groups, warmup_cosine
from vislearn.common.checkpoint import load_checkpoint, load_state, save_checkpoint
from vislearn.common.cli import Parser, command
from vislearn.common.distributed import DistInfo, barrier, cleanup_distributed, init_distributed
from vislearn.common.errors import UserError
from vislearn.common.files import atomic_path
from vislearn.common.jsonio import read_json, write_json, write_jsonl
from vislearn.common.outputs import claim_folder, session
from vislearn.common.validate import load_settings, setting, validate

from .agent import Agent, Norm, policy_file
from .demos import demos_info, load_demos
from .encoders import build_encoder, parse_spec
from .envs.sawyer import ACTION_DIM, PROPRIO_DIM
from .envs.tasks import EVAL_SEEDS, TASKS
from .features import cached_features
from .policy import MVPPolicy

KIND = "control bc"
RUN_FILES = ("config.json", "last.pt", "metrics.jsonl", "policy.pt", "results.json")
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "control" / "bc.yaml"
STD_FLOOR = 1e-3  # a feature (or state entry) constant over the demonstrations is not blown up by 1/std
# settings that do not change the weights: a run may be continued (or evaluated again) with other values
FREE = ("eval_episodes", "eval_num_envs", "ckpt_every", "threads", "device")


@dataclass
class BCConfig:
    """MVP's BC recipe (field defaults: its sim config, 400 epochs); the command's defaults are configs/control/bc.yaml."""

    demos: str = ""  # the demonstrations folder (`vislearn control demos`)
    encoder: str = "state"  # an encoder spec (`encoders.py`)
    task: str = ""  # when given, the demonstrations must be of this task
    num_demos: int = setting(0, min=0)  # the first N demonstrations of the folder (0: all)
    epochs: int = setting(400, min=1)
    warmup_epochs: float = setting(40.0, min=0)
    batch_size: int = setting(128, min=1)
    lr: float = setting(1e-3, above=0)
    weight_decay: float = setting(0.01, min=0)
    scratch_steps: int = setting(500, min=1)  # `scratch:` encoders: optimizer steps (instead of epochs)
    eval_episodes: int = setting(0, min=0)  # at the end, on seeds EVAL_SEEDS + i (0: no evaluation)
    eval_num_envs: int = setting(2, min=1)
    ckpt_every: int = setting(10, min=1)  # epochs
    seed: int = 0
    threads: int = setting(0, min=0)  # torch threads (0: torch's default)
    device: str = "auto"


def load_config(path: str | os.PathLike | None, overrides: Sequence[str] = ()) -> BCConfig:
    """The defaults, then the YAML `path` (and its `base:` chain), then `key=value` overrides."""
    return load_settings(BCConfig(), path, overrides)


class BCModel(nn.Module):
    """What is trained: the policy, and the encoder when it is trained too (`scratch:`)."""

    def __init__(self, policy: MVPPolicy, encoder: nn.Module | None):
        super().__init__()
        self.policy, self.encoder = policy, encoder

    def forward(self, x: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        return self.policy(self.encoder(x) if self.encoder is not None else x, proprio)


@dataclass
class Data:
    """The training set on the device: inputs (normalised features, or uint8 frames for `scratch:`), proprio, actions."""

    x: torch.Tensor
    proprio: torch.Tensor
    actions: torch.Tensor
    norm: Norm
    feature_dim: int
    num_demos: int
    feature_seconds: float


def fit_norm(features: np.ndarray | None, proprio: np.ndarray, feature_dim: int) -> Norm:
    """The training set's statistics (`features` None: the encoder is trained, its output is left as it is)."""
    def stats(a):
        return a.mean(0).astype(np.float32), np.maximum(a.std(0), STD_FLOOR).astype(np.float32)

    fm, fs = stats(features) if features is not None else (np.zeros(feature_dim, np.float32),
                                                          np.ones(feature_dim, np.float32))
    pm, ps = stats(proprio)
    return Norm(fm, fs, pm, ps)


def prepare_data(cfg: BCConfig, spec, encoder, dist: DistInfo, log, overwrite: bool = False) -> Data:
    info = demos_info(cfg.demos)
    n = cfg.num_demos or len(info["episodes"])
    demos = load_demos(cfg.demos, n, pixels=spec.kind == "scratch", task=cfg.task or None)
    t0 = time.perf_counter()
    if spec.kind == "state":
        feats = demos.states.astype(np.float32)
    elif spec.frozen:
        if dist.is_main:
            feats = cached_features(cfg.demos, spec, 0, encoder, log, sys.stderr.isatty(), overwrite)
        barrier()  # the other processes read what the first one cached
        if not dist.is_main:
            feats = cached_features(cfg.demos, spec, 0, encoder, log=lambda *a: None)
        feats = feats[:len(demos)]  # episodes in the folder's order: the first n are the first frames
    else:
        feats = None
    seconds = time.perf_counter() - t0
    dim = feats.shape[1] if feats is not None else encoder.dim
    norm = fit_norm(feats if spec.frozen else None, demos.proprio, dim)
    dev = dist.device
    proprio = norm.proprio(torch.from_numpy(demos.proprio)).to(dev)
    x = norm.features(torch.from_numpy(feats)).to(dev) if feats is not None else torch.from_numpy(demos.pixels).to(dev)
    return Data(x, proprio, torch.from_numpy(demos.actions).to(dev), norm, dim, n, seconds)


def schedule(cfg: BCConfig, spec, frames: int) -> tuple[int, int, float]:
    """(steps per epoch, total steps, warm-up steps)."""
    per_epoch = math.ceil(frames / cfg.batch_size)
    if spec.kind == "scratch":
        total = cfg.scratch_steps
        return per_epoch, total, total * cfg.warmup_epochs / max(cfg.epochs, 1)
    return per_epoch, cfg.epochs * per_epoch, cfg.warmup_epochs * per_epoch


def batch_indices(cfg: BCConfig, frames: int, per_epoch: int, step: int) -> np.ndarray:
    """The global batch of `step`: a permutation per epoch drawn from (seed, epoch) alone."""
    epoch, j = divmod(step, per_epoch)
    perm = np.random.default_rng([cfg.seed, epoch, 7]).permutation(frames)
    return perm[j * cfg.batch_size:(j + 1) * cfg.batch_size]


def _check_resume(out: Path, config: dict) -> None:
    saved = read_json(out / "config.json")
    diff = [f"{k}: {saved.get(k)!r} -> {v!r}" for k, v in config.items() if k not in FREE and saved.get(k) != v]
    if diff:
        raise UserError(f"{out / 'config.json'}: the run was started with other settings ({'; '.join(diff[:4])}); "
                        f"run it with those, or choose another --out")


# ----------------------------------------------------------------------------------------------------- the run
def train_bc(cfg: BCConfig, out: str | os.PathLike, overwrite: bool = False, log=print) -> tuple[dict, Agent | None]:
    """Train (or continue) the run in `out`; returns results.json's content and the trained agent (on the first
    process; None on the others)."""
    validate(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    dist = init_distributed(cfg.device)
    try:
        with session():
            return _train(cfg, Path(out), overwrite, log if dist.is_main else (lambda *a, **k: None), dist)
    finally:
        cleanup_distributed()


def _train(cfg: BCConfig, out: Path, overwrite: bool, log, dist: DistInfo) -> tuple[dict, Agent | None]:
    if not cfg.demos:
        raise UserError("--demos: a demonstrations folder is required")
    if cfg.task and cfg.task not in TASKS:
        raise UserError(f"task: unknown task {cfg.task!r}; choose one of {', '.join(TASKS)}")
    spec = parse_spec(cfg.encoder)
    info = demos_info(cfg.demos)
    if cfg.task and info["task"] != cfg.task:
        raise UserError(f"{cfg.demos}: demonstrations of task {info['task']!r}, not {cfg.task!r}")
    task = info["task"]
    # the number of demonstrations resolved: a folder that grew since a run started does not change its data
    num_demos = cfg.num_demos or len(info["episodes"])
    cfg = dataclasses.replace(cfg, num_demos=num_demos)
    config = {**dataclasses.asdict(cfg), "task": task, "demos": str(Path(cfg.demos).resolve())}
    last = out / "last.pt"
    resume = last.exists() and not overwrite
    if dist.is_main:
        claim = claim_folder(out, kind=KIND, lock=True, overwrite=overwrite, inputs=[cfg.demos])
        if resume:
            _check_resume(out, config)
        claim.check(RUN_FILES, overwrite or resume, [cfg.demos])
        write_json(out / "config.json", config, indent=1)
    barrier()
    # a frozen `random:ARCH` is one network (seed 0, what `load_agent` rebuilds); `scratch:` starts from the run's seed
    encoder = build_encoder(spec, cfg.seed if not spec.frozen else 0)
    data = prepare_data(cfg, spec, encoder, dist, log, overwrite)
    frames = len(data.actions)
    per_epoch, total, warmup = schedule(cfg, spec, frames)

    torch.manual_seed(cfg.seed)
    policy = MVPPolicy(data.feature_dim, PROPRIO_DIM, ACTION_DIM)
    model = BCModel(policy, encoder if not spec.frozen else None).to(dist.device).train()
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr)
    scheduler = warmup_cosine(optimizer, 1, warmup / total, total)  # per step: `total` steps, `warmup` of them warm-up
    start, metrics, seconds = 0, [], 0.0
    if resume:
        ckpt = load_checkpoint(last)
        load_state(model, ckpt["model"], last)
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["lr_scheduler"])
        start, metrics, seconds = int(ckpt["step"]), list(ckpt["metrics"]), float(ckpt["seconds"])
        if start < total:
            log(f"continuing {out} after step {start} of {total}")
    ddp = nn.parallel.DistributedDataParallel(model) if dist.distributed else model
    log(f"BC on {task}: {data.num_demos} demonstrations ({frames} frames), encoder {spec} ({data.feature_dim}-d"
        f"{', trained' if not spec.frozen else ', frozen, cached features' if spec.pixels else ''}); {total} steps "
        f"of {cfg.batch_size} ({per_epoch} per epoch), {dist.world_size} process(es) on {dist.device}")
    from tqdm import tqdm

    bar = tqdm(total=total, initial=start, desc="bc", unit="step", disable=not (dist.is_main and sys.stderr.isatty()))
    sq_sum, count, t0 = torch.zeros((), dtype=torch.float64, device=dist.device), 0, time.perf_counter()
    for step in range(start, total):
        idx = batch_indices(cfg, frames, per_epoch, step)
        local = torch.from_numpy(idx[dist.rank::dist.world_size]).to(dist.device)
        pred = ddp(data.x[local], data.proprio[local])
        err = (pred - data.actions[local]).pow(2).mean(1).sum()
        # DDP averages gradients over processes: scaled so that the result is the global batch's mean
        loss = err * dist.world_size / len(idx)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        sq_sum += err.detach().double()
        count += len(idx)
        bar.update(1)
        end_of_epoch = (step + 1) % per_epoch == 0 or step + 1 == total
        if not end_of_epoch:
            continue
        if dist.distributed:
            torch.distributed.all_reduce(sq_sum)
        seconds += time.perf_counter() - t0
        epoch = step // per_epoch
        metrics.append({"epoch": epoch, "step": step + 1, "loss": float(sq_sum) / count,
                        "lr": optimizer.param_groups[0]["lr"], "seconds": seconds})
        sq_sum.zero_()
        count = 0
        if (epoch + 1) % cfg.ckpt_every == 0 or step + 1 == total:
            if dist.is_main:
                save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                 "lr_scheduler": scheduler.state_dict(), "step": step + 1, "metrics": metrics,
                                 "seconds": seconds, "config": config}, last)
                write_jsonl(out / "metrics.jsonl", metrics)
            bar.set_postfix(loss=f"{metrics[-1]['loss']:.4f}")
        t0 = time.perf_counter()
    bar.close()
    barrier()
    if not dist.is_main:
        return {}, None

    losses = [m["loss"] for m in metrics]
    model = model.cpu().eval()
    render = load_demos_render(cfg.demos)
    with atomic_path(out / "policy.pt") as tmp:
        torch.save(policy_file(task, "bc", str(spec), policy, data.norm, render, encoder=model.encoder,
                               extra={"demos": config["demos"], "num_demos": data.num_demos, "frames": frames}), tmp)
    if encoder is not None:
        encoder = encoder.cpu().eval()
    agent = Agent(task, encoder, policy.eval(), data.norm, render, str(spec))
    results = {"task": task, "encoder": str(spec), "num_demos": data.num_demos, "frames": frames, "steps": total,
               "epochs": math.ceil(total / per_epoch), "first_loss": losses[0] if losses else None,
               "final_loss": losses[-1] if losses else None, "feature_seconds": data.feature_seconds,
               "train_seconds": seconds, "policy": str(out / "policy.pt")}
    write_jsonl(out / "metrics.jsonl", metrics)
    log(f"trained: loss {results['first_loss']:.4f} (first epoch) -> {results['final_loss']:.4f} (last) in "
        f"{seconds:.1f} s; {out / 'policy.pt'}")
    if cfg.eval_episodes:
        from .rollouts import evaluate_policy

        t0 = time.perf_counter()
        ev = evaluate_policy(agent, task, cfg.eval_episodes, cfg.eval_num_envs, EVAL_SEEDS, render)
        results["eval_seconds"] = time.perf_counter() - t0
        results["eval"] = ev
        results["success_rate"] = ev["success_rate"]
        log(f"evaluation: success {ev['success_rate']:.0%} of {ev['episodes']} episodes (seeds {EVAL_SEEDS}.."
            f"{EVAL_SEEDS + cfg.eval_episodes - 1}), mean length {ev['mean_length']:.1f}, in "
            f"{results['eval_seconds']:.1f} s")
    write_json(out / "results.json", results, indent=1)
    return results, agent


def load_demos_render(folder):
    from .envs import RenderSettings

    return RenderSettings(**demos_info(folder)["render"])


# ----------------------------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn control bc",
               description="Behaviour cloning with MVP's recipe: a frozen encoder's features (cached per frame) and "
                           "the proprioception -> MVP's MLP policy, MSE on the expert's actions, AdamW + warm-up + "
                           "cosine. Run it again with the same arguments to continue a killed run; under torchrun "
                           "it trains on every process. Settings: --config YAML and key=value (keys: "
                           f"{', '.join(f.name for f in dataclasses.fields(BCConfig))}), e.g. eval_episodes=20.")
    p.add_argument("--demos", required=True, help="demonstrations folder (`vislearn control demos`)")
    p.add_argument("--encoder", required=True, help="ckpt:PATH, mvp:ARCH:PATH, imagenet, random:ARCH, scratch:ARCH "
                   "or state, each with an optional @SIZE")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--num-demos", type=int, default=None, help="train on the first N demonstrations (default all)")
    p.add_argument("--task", default=None, help="refuse demonstrations of another task")
    p.add_argument("--seed", type=int, default=None, help="seed of the policy's initialisation and batches")
    p.add_argument("--config", default=None, help="YAML config (default configs/control/bc.yaml)")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config settings, e.g. epochs=50 eval_episodes=20")
    p.add_argument("--overwrite", action="store_true", help="start the run afresh, replacing files vislearn did not "
                   "write")
    return p


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides) + [f"demos={args.demos}", f"encoder={args.encoder}"]
    for key, value in (("num_demos", args.num_demos), ("task", args.task), ("seed", args.seed),
                       ("device", args.device)):
        if value is not None:
            overrides.append(f"{key}={value}")
    cfg = load_config(args.config or (DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None), overrides)
    train_bc(cfg, args.out, overwrite=args.overwrite)
    return 0


main = command(build_parser, run)


if __name__ == "__main__":
    sys.exit(main())
