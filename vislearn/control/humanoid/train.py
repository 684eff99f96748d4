"""Teacher, then student (the paper's recipe, at CPU scale): `train-teacher` runs PPO with an MLP on the privileged
state under domain randomisation; `train-student` runs PPO for a history policy (transformer, LSTM or MLP) with an
extra loss lambda * KL(student || teacher) on the states it visits, lambda annealed linearly from `kl_coef` to 0 by
`kl_anneal` of training, and an asymmetric critic on the privileged state (started from the teacher's critic). The
KL is to the teacher's mean clipped to the action range (the environment clips actions; a Walker2d teacher's means lie
outside [-1, 1] 42 % of the time, and copying them there halved how fast a student's KL fell, measured offline).

Why our own PPO (the control issue's choice, re-checked here): the PPO of `vislearn control ppo` is MVP's, tied to
its Sawyer tasks' single-observation policies; stable-baselines3 has no sequence policies (its recurrent PPO is in
sb3-contrib, not installed, and carries LSTM state, not a token window), rsl-rl (not in the registry) has only
LSTM/GRU students. This loop shares `gae` with MVP's and adds what locomotion PPO uses (rsl-rl's recipe): clip 0.2,
5 epochs x 4 minibatches, the step size adapted to keep the policy's KL per update near `desired_kl` (and the epochs
cut short past 4x it, as stable-baselines3's target_kl), a small entropy
bonus, observation normalisation by running statistics (updated after each update, so a rollout and its update see
the same statistics).

Budgets: `steps` (environment steps in all) or also `minutes` of CPU time of the training process (checked after
each update; with threads=1 it is one core's minutes, whatever else the machine runs; the KL schedule then runs on
whichever of steps or time is further along). Exact resume: `last.pt` holds the model,
optimizer, step size, RNG states, every environment's physics and episode RNG, and the history windows, so a run
killed and resumed ends with the weights of one never stopped (when it has a steps budget only)."""
from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from vislearn.common.checkpoint import load_checkpoint, load_state, rng_state, save_checkpoint, set_rng_state
from vislearn.common.errors import UserError
from vislearn.common.jsonio import read_json, write_json, write_jsonl
from vislearn.common.outputs import claim_folder, session
from vislearn.common.validate import load_settings, setting, validate

from ..ppo import gae
from .env import EnvSettings, LocoEnvs
from .policies import STUDENTS, ActorCritic, History, Policy, gaussian_kl
from .policy_file import load_policy, policy_state, save_policy
from .randomization import parse_randomization
from .robots import compile_robot, get_robot

RUN_FILES = ("config.json", "last.pt", "metrics.jsonl", "policy.pt", "results.json", "curves.png")
CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "control" / "humanoid"
TRAIN_SEEDS = 100_000_000  # above evaluation seeds (0..)
SEEDS_PER_ENV = 100_000


@dataclass
class LocoConfig:
    """PPO under domain randomisation. `role` is set by the command (teacher or student)."""

    robot: str = "walker2d"  # walker2d, humanoid or an MJCF file with a free-floating base
    role: str = setting("teacher", choices=("teacher", "student"))
    student: str = setting("transformer", choices=STUDENTS)
    teacher: str = ""  # the teacher's policy.pt (students)
    history: int = setting(16, min=1, max=256)
    steps: int = setting(2_000_000, min=1)
    minutes: float = setting(0.0, min=0)  # training-time budget; 0: steps only
    snapshots: list = field(default_factory=list)  # minutes of training at which to keep policy-<M>min.pt too
    num_envs: int = setting(32, min=1)
    workers: int = setting(0, min=0)  # processes stepping the environments (workers.py); 0: in this process
    num_steps: int = setting(64, min=2)  # per environment and update
    epochs: int = setting(5, min=1)
    minibatches: int = setting(16, min=1)  # 128 samples each with 32 x 64 steps
    clip: float = setting(0.2, above=0)
    gamma: float = setting(0.99, min=0, max=1)
    lam: float = setting(0.95, min=0, max=1)
    lr: float = setting(3e-4, above=0)
    lr_schedule: str = setting("linear", choices=("linear", "constant"))  # linear: down to 0 at the budget's end
    desired_kl: float = setting(0.0, min=0)  # > 0: the step size adapted to keep the KL per update near it
    entropy_coef: float = setting(0.005, min=0)
    reward_scale: float = setting(0.05, above=0)  # returns of ~10, not ~200: the value clip (0.2) is in these units
    value_coef: float = setting(1.0, min=0)
    max_grad_norm: float = setting(1.0, min=0)
    init_noise_std: float = setting(0.5, above=0)
    kl_coef: float = setting(1.0, min=0)  # students: lambda at the start
    kl_anneal: float = setting(0.5, min=0, max=1)  # ... reaching 0 at this fraction of training
    control: str = setting("torque", choices=("torque", "pd"))
    pd_kp: float = setting(5.0, min=0)
    pd_kd: float = setting(0.1, min=0)
    action_scale: float = setting(0.5, above=0)
    episode_seconds: float = setting(20.0, above=0)
    track_sigma2: float = setting(1.0, above=0)  # width of the velocity-tracking reward (m/s squared)
    command: list = field(default_factory=list)  # [min, max] m/s; empty: the robot's
    randomization: dict = field(default_factory=dict)  # items of Table I (randomization.py); missing: its ranges
    eval_episodes: int = setting(50, min=0)
    ckpt_every: int = setting(10, min=1)
    seed: int = setting(0, min=0, max=999)
    threads: int = setting(1, min=0)
    device: str = "cpu"


def env_settings(cfg: LocoConfig) -> EnvSettings:
    if cfg.command and (len(cfg.command) != 2 or cfg.command[0] > cfg.command[1]):
        raise UserError(f"command: expected [min, max] with min <= max, got {cfg.command!r}")
    return EnvSettings(cfg.robot, cfg.control, cfg.pd_kp, cfg.pd_kd, cfg.action_scale, cfg.episode_seconds,
                       list(cfg.command) or None, track_sigma2=cfg.track_sigma2)


def load_config(path, overrides: Sequence[str] = ()) -> LocoConfig:
    return load_settings(LocoConfig(), path, overrides)


def kl_weight(cfg: LocoConfig, progress: float) -> float:
    """lambda: kl_coef at the start, linearly down to 0 at `kl_anneal` of training, 0 after."""
    if cfg.kl_anneal <= 0:
        return 0.0
    return cfg.kl_coef * max(0.0, 1.0 - progress / cfg.kl_anneal)


# --------------------------------------------------------------------------------------------------- rollout
def collect(ac: ActorCritic, envs: LocoEnvs, hist: History | None, cfg: LocoConfig, dev: torch.device):
    """`num_steps` steps of every environment; the rollout with advantages and returns, and the episodes ended."""
    T, N = cfg.num_steps, envs.n
    student = hist is not None
    buf = {"priv": torch.empty(T, N, envs.priv_dim), "actions": torch.empty(T, N, envs.n_act),
           "logp": torch.empty(T, N), "values": torch.empty(T, N), "rewards": torch.empty(T, N),
           "dones": torch.empty(T, N), "mu": torch.empty(T, N, envs.n_act), "std": torch.empty(T, N, envs.n_act)}
    if student:
        buf["window"] = torch.empty(T, N, *hist.buf.shape[1:])
    finished = []
    for t in range(T):
        priv = torch.from_numpy(envs.priv.copy())
        window = torch.from_numpy(hist.buf.copy()) if student else None
        # running statistics move a little every step (rsl-rl's way): updating them in one jump after an update
        # changes the policy's outputs so much that the KL-adapted step size collapses
        if student:
            ac.policy.obs_norm.update(torch.from_numpy(envs.obs).to(dev))
        else:
            ac.policy.priv_norm.update(priv.to(dev))
        with torch.no_grad():
            d = ac.dist(window.to(dev) if student else None, priv.to(dev))
            a = d.sample()
            logp, v = d.log_prob(a).sum(-1), ac.value(priv.to(dev))
        reward, term, trunc, ended = envs.step(a.cpu().numpy())
        r = torch.as_tensor(reward, dtype=torch.float32) * cfg.reward_scale
        if trunc.any():  # cut by the time limit, not ended: bootstrap with the value where it was cut
            with torch.no_grad():
                vf = ac.value(torch.from_numpy(envs.final_priv[trunc]).to(dev)).cpu()
            r[torch.from_numpy(trunc)] += cfg.gamma * vf
        buf["priv"][t], buf["actions"][t], buf["logp"][t], buf["values"][t] = priv, a.cpu(), logp.cpu(), v.cpu()
        buf["mu"][t], buf["std"][t] = d.mean.cpu(), d.stddev.cpu()
        buf["rewards"][t] = r
        buf["dones"][t] = torch.from_numpy(term | trunc).float()
        if student:
            buf["window"][t] = window
            hist.push(envs.obs, term | trunc)
        finished += ended
    with torch.no_grad():
        last_value = ac.value(torch.from_numpy(envs.priv.copy()).to(dev)).cpu()
    adv, ret = gae(buf["rewards"], buf["values"], buf["dones"], last_value, cfg.gamma, cfg.lam)
    flat = {k: v.reshape(T * N, *v.shape[2:]) for k, v in buf.items() if k not in ("rewards", "dones")}
    adv = adv.reshape(-1)
    flat["advantages"] = (adv - adv.mean()) / (adv.std() + 1e-8)
    flat["returns"] = ret.reshape(-1)
    return flat, finished


def ppo_update(ac: ActorCritic, optimizer, batch: dict, cfg: LocoConfig, lr: float, kl_lambda: float,
               teacher: Policy | None, generator: torch.Generator, dev: torch.device) -> tuple[dict, float]:
    """`epochs` passes in `minibatches`; returns the mean losses and the adapted step size."""
    n = len(batch["actions"])
    size = max(1, n // cfg.minibatches)
    stats = {"value_loss": [], "surrogate": [], "entropy": [], "kl_teacher": [], "kl_update": []}
    student = "window" in batch
    stopped = False
    for _ in range(cfg.epochs):
        if stopped:
            break
        order = torch.randperm(n, generator=generator)
        for k in range(cfg.minibatches):
            idx = order[k * size:(k + 1) * size]
            mb = {key: v[idx].to(dev) for key, v in batch.items()}
            logp, entropy, value, mu, std = ac(mb.get("window"), mb["priv"], mb["actions"])
            with torch.no_grad():
                kl = gaussian_kl(mb["mu"], mb["std"], mu, std).mean()
            if cfg.desired_kl and kl > 4.0 * cfg.desired_kl:  # gone too far from the rollout's policy: stop here
                stopped = True
                break
            ratio = torch.exp(logp - mb["logp"])
            adv = mb["advantages"]
            surrogate = torch.max(-adv * ratio, -adv * ratio.clamp(1 - cfg.clip, 1 + cfg.clip)).mean()
            clipped = mb["values"] + (value - mb["values"]).clamp(-cfg.clip, cfg.clip)
            value_loss = torch.max((value - mb["returns"]).pow(2), (clipped - mb["returns"]).pow(2)).mean()
            loss = surrogate + cfg.value_coef * value_loss - cfg.entropy_coef * entropy.mean()
            if student and teacher is not None and kl_lambda > 0:
                with torch.no_grad():  # the teacher's mean as the motors get it: the environment clips to [-1, 1]
                    mu_t = teacher.mean(None, mb["priv"]).clamp(-1.0, 1.0)
                    std_t = teacher.log_std.exp().expand_as(mu_t)
                kl_t = gaussian_kl(mu, std, mu_t, std_t).mean()
                loss = loss + kl_lambda * kl_t
                stats["kl_teacher"].append(float(kl_t.detach()))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(ac.parameters(), cfg.max_grad_norm)
            optimizer.step()
            stats["value_loss"].append(float(value_loss.detach()))
            stats["surrogate"].append(float(surrogate.detach()))
            stats["entropy"].append(float(entropy.mean().detach()))
            stats["kl_update"].append(float(kl))
    # the step size, adapted once per update to the policy's change over it (rsl-rl adapts it per minibatch: with
    # 512-sample minibatches that oscillated between 1e-5 and 1e-2 within one update here)
    last_kl = float(np.mean(stats["kl_update"][-cfg.minibatches:])) if stats["kl_update"] else 0.0
    if cfg.desired_kl:
        if stopped or last_kl > 2.0 * cfg.desired_kl:
            lr = max(1e-5, lr / 1.5)
        elif last_kl < 0.5 * cfg.desired_kl:
            lr = min(1e-2, lr * 1.5)
        for g in optimizer.param_groups:
            g["lr"] = lr
    out = {k: (float(np.mean(v)) if v else None) for k, v in stats.items()}
    out["early_stop"] = stopped
    return out, lr


# --------------------------------------------------------------------------------------------------- the run
def _tensors(x):
    """NumPy arrays (the environments' state, the history windows) as tensors: last.pt must load with
    weights_only=True, which refuses arrays; `LocoEnvs.restore` and the window take tensors as they are."""
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    if isinstance(x, dict):
        return {k: _tensors(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_tensors(v) for v in x]
    return x


def seed_fn(cfg: LocoConfig):
    def seed_of(i: int, k: int) -> int:
        return TRAIN_SEEDS + cfg.seed * 10_000_000 + i * SEEDS_PER_ENV + k % SEEDS_PER_ENV
    return seed_of


def train(cfg: LocoConfig, out: str | os.PathLike, resume: bool = False, overwrite: bool = False, log=print,
          source: str = "config") -> dict:
    """Train (or with `resume`, continue) the run in `out`; returns results.json's content. `source` names where
    the settings came from (the config file) in messages about them."""
    with session():
        return _train(cfg, Path(out), resume, overwrite, log, source)


def _setup(cfg: LocoConfig, source: str):
    from vislearn.common.device import resolve_device

    validate(cfg)
    if any(isinstance(m, bool) or not isinstance(m, (int, float)) or m <= 0 for m in cfg.snapshots):
        raise UserError(f"snapshots: expected minutes > 0, e.g. [15], got {cfg.snapshots!r}")
    rand = parse_randomization(cfg.randomization, source)
    settings = env_settings(cfg)
    compile_robot(get_robot(cfg.robot), rand.rough)  # a robot that does not compile: refused before --out is made
    teacher = None
    if cfg.role == "student":
        if not cfg.teacher:
            raise UserError("--teacher: a student learns from a teacher: pass the teacher run's policy.pt")
        teacher, meta = load_policy(cfg.teacher)
        if meta["arch"] != "teacher":
            raise UserError(f"{cfg.teacher}: a {meta['arch']} student's policy, not a teacher's")
        if meta["env"]["robot"] != cfg.robot:
            raise UserError(f"{cfg.teacher}: a teacher of {meta['env']['robot']}, not of {cfg.robot}")
    dev = resolve_device(cfg.device)
    if teacher is not None:
        teacher.to(dev).eval()
    return rand, settings, teacher, dev


def _train(cfg: LocoConfig, out: Path, resume: bool, overwrite: bool, log, source: str) -> dict:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rand, settings, teacher, dev = _setup(cfg, source)
    last = out / "last.pt"
    config = dataclasses.asdict(cfg)
    config["randomization"] = dataclasses.asdict(rand)  # every range, as used
    claim = claim_folder(out, kind="control humanoid", lock=True, flag="--out", overwrite=overwrite)
    if last.exists() and not resume:
        raise UserError(f"{out}: already holds a run (last.pt); pass --resume to continue it or choose another --out")
    snaps = sorted(float(m) for m in cfg.snapshots)
    snap_files = {m: f"policy-{m:g}min.pt" for m in snaps}
    claim.check(RUN_FILES + tuple(snap_files.values()), overwrite or (resume and last.exists()), [cfg.teacher or None])
    if resume and (out / "config.json").exists():
        saved = read_json(out / "config.json")
        diff = [f"{k}: {saved.get(k)!r} -> {v!r}" for k, v in config.items()
                if k not in ("threads", "device", "eval_episodes", "ckpt_every", "minutes") and saved.get(k) != v]
        if diff:
            raise UserError(f"{out / 'config.json'}: the run was started with other settings ({'; '.join(diff[:4])}); "
                            "resume with the run's values or choose another --out")
    write_json(out / "config.json", config, indent=1)
    if cfg.workers:
        from .workers import ProcEnvs

        envs = ProcEnvs(settings, cfg.num_envs, rand, seed_fn(cfg), cfg.workers)
    else:
        envs = LocoEnvs(settings, cfg.num_envs, rand, seed_fn(cfg))
    try:
        return _run(cfg, out, resume, log, rand, settings, teacher, dev, envs, config, last, snap_files)
    finally:
        envs.close()


def _run(cfg, out, resume, log, rand, settings, teacher, dev, envs, config, last, snap_files) -> dict:
    arch = "teacher" if cfg.role == "teacher" else cfg.student
    torch.manual_seed(cfg.seed)
    policy = Policy(arch, envs.obs_dim, envs.priv_dim, envs.n_act, cfg.history, cfg.init_noise_std)
    ac = ActorCritic(policy, envs.priv_dim)
    if teacher is not None:  # the asymmetric critic starts as the teacher's, with its statistics of the state
        ac.critic.load_state_dict(teacher.critic_state)
        policy.priv_norm.load_state_dict(teacher.priv_norm.state_dict())
    ac.to(dev)
    optimizer = torch.optim.Adam(ac.parameters(), lr=cfg.lr)
    shuffle = torch.Generator().manual_seed(cfg.seed)
    per_update = cfg.num_envs * cfg.num_steps
    updates = math.ceil(cfg.steps / per_update)
    hist = History(cfg.num_envs, cfg.history, envs.obs_dim) if arch != "teacher" else None
    start, metrics, seconds, lr = 0, [], 0.0, cfg.lr
    if resume and last.exists():
        ckpt = load_checkpoint(last)
        load_state(ac, ckpt["model"], last)
        optimizer.load_state_dict(ckpt["optimizer"])
        start, metrics, seconds, lr = int(ckpt["update"]), list(ckpt["metrics"]), float(ckpt["seconds"]), ckpt["lr"]
        set_rng_state(ckpt["rng"])
        shuffle.set_state(ckpt["shuffle"])
        envs.restore(ckpt["envs"])
        if hist is not None:
            hist.buf[...] = ckpt["history"]
        log(f"resumed {last} after update {start}")
    else:
        envs.start()
        if hist is not None:
            hist.push(envs.obs, np.ones(envs.n, dtype=bool))
        torch.manual_seed(cfg.seed * 1000 + 1)
    write_jsonl(out / "metrics.jsonl", metrics)
    what = f"{cfg.student} student of {cfg.teacher}" if teacher is not None else "teacher (privileged MLP)"
    budget = f"{updates} updates of {per_update} steps" + (f" or {cfg.minutes:g} min" if cfg.minutes else "")
    log(f"PPO on {envs.robot.name} ({cfg.control}), {what}, {cfg.num_envs} envs, {budget}; randomisation "
        f"{'on' if rand.enabled else 'off'}")
    update = start
    for update in range(start, updates):
        if cfg.minutes and seconds >= cfg.minutes * 60:
            break
        t0, c0 = time.perf_counter(), time.process_time()
        progress = max(update / updates, seconds / (cfg.minutes * 60) if cfg.minutes else 0.0)
        lam = kl_weight(cfg, progress) if teacher is not None else 0.0
        if not cfg.desired_kl and cfg.lr_schedule == "linear":
            lr = cfg.lr * max(0.0, 1.0 - progress)
            for g in optimizer.param_groups:
                g["lr"] = lr
        ac.train()
        batch, ended = collect(ac, envs, hist, cfg, dev)
        t1 = time.perf_counter()
        losses, lr = ppo_update(ac, optimizer, batch, cfg, lr, lam, teacher, shuffle, dev)
        t2 = time.perf_counter()
        seconds += time.process_time() - c0  # CPU time of this process: a budget that a busy machine does not eat
        row = {"update": update + 1, "steps": (update + 1) * per_update, "seconds": seconds, "wall_s": t2 - t0, "episodes": len(ended),
               "mean_return": float(np.mean([e[2] for e in ended])) if ended else None,
               "mean_length": float(np.mean([e[3] for e in ended])) if ended else None,
               "falls": float(np.mean([e[4] for e in ended])) if ended else None,
               "tracking_error": float(np.mean([e[5] for e in ended])) if ended else None,
               **losses, "kl_lambda": lam, "lr": lr, "std": float(policy.log_std.detach().exp().mean()),
               "rollout_s": t1 - t0, "update_s": t2 - t1, "steps_per_s": per_update / (t2 - t0)}
        metrics.append(row)
        for m, name in snap_files.items():  # the policy as a run of m minutes would have ended
            if seconds >= m * 60 and not (out / name).exists():
                save_policy(out / name, policy_state(policy, ac.critic, arch, envs, settings, rand, cfg))
                row["snapshot"] = name
                log(f"kept {name} after {seconds / 60:.1f} min ({row['steps']} steps)")
        stop = update + 1 == updates or (cfg.minutes and seconds >= cfg.minutes * 60)
        if (update + 1) % cfg.ckpt_every == 0 or stop:
            save_checkpoint({"model": ac.state_dict(), "optimizer": optimizer.state_dict(), "update": update + 1,
                             "metrics": metrics, "seconds": seconds, "lr": lr, "rng": rng_state(),
                             "shuffle": shuffle.get_state(), "envs": _tensors(envs.state()),
                             "history": torch.from_numpy(hist.buf.copy()) if hist is not None else None,
                             "config": config}, last)
            write_jsonl(out / "metrics.jsonl", metrics)
            ret, falls = row["mean_return"], row["falls"]
            log(f"update {update + 1}/{updates}: {row['steps']} steps, {seconds / 60:.1f} min, "
                f"{row['steps_per_s']:.0f} steps/s, return {'-' if ret is None else f'{ret:.0f}'}, "
                f"falls {'-' if falls is None else f'{falls:.2f}'}, lr {lr:.1e}, "
                f"std {row['std']:.2f}" + (f", KL to teacher {losses['kl_teacher']:.3f} x {lam:.2f}"
                                          if losses.get("kl_teacher") is not None else ""))
    ac.cpu()
    save_policy(out / "policy.pt", policy_state(policy, ac.critic, arch, envs, settings, rand, cfg))
    results = {"robot": envs.robot.name, "role": cfg.role, "arch": arch, "steps": len(metrics) * per_update,
               "updates": len(metrics), "train_seconds": seconds,
               "steps_per_s": len(metrics) * per_update / seconds if seconds else None,
               "teacher": cfg.teacher or None, "policy": str(out / "policy.pt")}
    if cfg.eval_episodes:
        from .evaluate import evaluate_file

        results["eval"] = evaluate_file(out / "policy.pt", cfg.eval_episodes, conditions=("train",),
                                        num_envs=min(cfg.num_envs, 16))["train"]
        e = results["eval"]
        log(f"evaluation ({cfg.eval_episodes} randomised episodes, seeds 0..): return {e['mean_return']:.0f}, "
            f"falls {e['falls']:.2f}, tracking error {e['tracking_error']:.3f} m/s")
    write_json(out / "results.json", results, indent=1)
    from .curves import plot_training

    plot_training(out / "metrics.jsonl", out / "curves.png", f"{envs.robot.name}: {what}")
    return results


# ----------------------------------------------------------------------------------------------- command line
def cli(role: str):
    """The `main` of `train-teacher` or `train-student`."""
    import argparse

    from vislearn.common.cli import Parser, command

    default = CONFIGS / f"{role}.yaml"

    def build_parser() -> argparse.ArgumentParser:
        what = ("PPO with an MLP [512, 512, 256, 128] on the privileged state (true dynamics, contacts, velocity)"
                if role == "teacher" else
                "PPO for a history policy (--student transformer, lstm or mlp over the last 16 observation-action "
                "tokens) plus lambda x KL(student || teacher), lambda annealed to 0 by mid-training, with an "
                "asymmetric critic on the privileged state")
        p = Parser(prog=f"vislearn control humanoid train-{role}",
                   description=f"{what}, under the domain randomisation of the paper's Table I (ranges in the config, "
                               "written into RUN/config.json). Writes RUN/policy.pt, metrics.jsonl, curves.png, "
                               "results.json (50 randomised evaluation episodes); a killed run continues with --resume. "
                               f"Settings: --config YAML and key=value (keys: "
                               f"{', '.join(f.name for f in dataclasses.fields(LocoConfig))}).")
        p.add_argument("--robot", default=None, help="walker2d, humanoid or an MJCF .xml with a floating base "
                       "(default: the config's, walker2d)")
        if role == "student":
            p.add_argument("--teacher", required=True, help="the teacher run's policy.pt")
            p.add_argument("--student", default=None, help="transformer (default), lstm or mlp")
        p.add_argument("--out", required=True, help="run folder")
        p.add_argument("--steps", default=None, help="environment steps in all")
        p.add_argument("--minutes", default=None, help="training-time budget in minutes (stops at steps or time)")
        p.add_argument("--num-envs", default=None, help="environments (default 32)")
        p.add_argument("--seed", default=None, help="seed (weights, exploration, training episodes)")
        p.add_argument("--device", default=None, help="cpu (default), cuda or cuda:N: where the networks run")
        p.add_argument("--config", default=None, help=f"YAML config (default configs/control/humanoid/{role}.yaml)")
        p.add_argument("overrides", nargs="*", metavar="key=value", help="settings, e.g. num_steps=32 "
                       "randomization.latency=[0,0.1]")
        p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
        p.add_argument("--overwrite", action="store_true", help="replace files of the run's names in --out that "
                       "vislearn did not write")
        return p

    def run(args: argparse.Namespace) -> int:
        overrides = [f"role={role}"]
        rand_overrides = {}
        for o in args.overrides:
            if o.startswith("randomization."):
                from vislearn.common.validate import load_yaml

                key, _, value = o[len("randomization."):].partition("=")
                rand_overrides[key] = load_yaml(value, "command line")
            else:
                overrides.append(o)
        flags = [("robot", "robot"), ("steps", "steps"), ("minutes", "minutes"), ("num_envs", "num_envs"),
                 ("seed", "seed"), ("device", "device"), ("teacher", "teacher"), ("student", "student")]
        for key, flag in flags:
            if getattr(args, flag, None) is not None:
                overrides.append(f"{key}={getattr(args, flag)}")
        config = args.config or (default if default.is_file() else None)
        cfg = load_config(config, overrides)
        source = str(config) if config else "config"
        if rand_overrides:
            cfg.randomization = {**cfg.randomization, **rand_overrides}
            source = "command line"
        train(cfg, args.out, resume=args.resume, overwrite=args.overwrite, log=lambda s: print(s, flush=True),
              source=source)
        return 0

    return command(build_parser, run)
