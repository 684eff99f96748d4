"""`vislearn control ppo --task TASK --encoder SPEC --out RUN`: PPO as MVP trains its policies (ir413/mvp `mvp/ppo`),
with the same policy BC trains, from a frozen encoder's features of each frame or from the state.

Why our own PPO and not a library's (measured on `reach` from states with 2 environments, docs/control.md "PPO"):
stable-baselines3 2.9.2 with MVP's layout ran at the same env steps/s (ratio 0.92 and 1.04 over 2 seeds) and was
ahead at 50k steps (success 0.72 / 0.55 against 0.29 / 0.43; ours reaches ~1.0 by 250k). What decided: SB3's
buffer keeps observations and its update re-runs the features extractor on every minibatch of every epoch (10
passes of a frozen pixel encoder per frame; here the rollout stores the features once), SB3 has no exact resume (no
environment or RNG state in its saves) and no DDP over torchrun, and this loop is MVP's algorithm as written (value
clipped as max(clipped, unclipped), advantages normalised over the whole rollout, cosine step size per epoch)
writing the policy file BC writes.

The algorithm (MVP's): rollouts of `num_steps` per environment; GAE(gamma, lambda); `epochs` passes over the
rollout in `minibatches`; clipped surrogate (clip 0.1), clipped value loss (coefficient 2), no entropy bonus,
gradient norm 1, Adam with the cosine step size; Gaussian actions with a learned state-independent log-std (init
std 1). One departure for CPU scale: MVP runs 32 steps x 256+ environments on a GPU; with 2 environments that is
64 samples per update, so the default here is 256 steps per environment (`configs/control/ppo.yaml`). Rewards are
Meta-World's (0..10 per step) times `reward_scale`; an episode cut by the horizon is bootstrapped with its value,
and so (`bootstrap_success`) is one ended by success: Meta-World's dense reward is ~10 per step near the goal and
`SawyerTaskEnv` ends the episode on success, so without it reaching the goal would cost the agent the reward it
earns hovering just outside the success radius.

Exact resume: the checkpoint (`last.pt`, at update boundaries) holds the model, optimizer, RNG states and, per
environment, its episode's seed and the actions taken since its reset; a resumed run resets each environment with
that seed and replays those actions (MuJoCo is deterministic), so it ends with the same weights as one never
stopped. Episode seeds are `PPO_SEEDS + seed * 10,000,000 + env * 100,000 + k`: never an evaluation's or a demo's.

torchrun: every process runs `num_envs` environments of its own (distinct seeds), DDP averages the gradients;
process 0 writes the run folder."""
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

from vislearn.common.checkpoint import load_checkpoint, load_state, rng_state, save_checkpoint, set_rng_state
from vislearn.common.cli import Parser, command
from vislearn.common.errors import UserError
from vislearn.common.jsonio import read_json, write_json, write_jsonl
from vislearn.common.outputs import claim_folder, session
from vislearn.common.validate import load_settings, setting, validate

from .envs import ACTION_DIM, PROPRIO_DIM, STATE_DIM, TASKS, RenderSettings, get_task, make_vector_env
from .envs.tasks import EVAL_SEEDS

KIND = "control ppo"
RUN_FILES = ("config.json", "last.pt", "metrics.jsonl", "policy.pt", "results.json", "success.png")
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "control" / "ppo.yaml"
PPO_SEEDS = 100_000_000  # above evaluation (0..) and demonstration (1,000,000 + 100,000 per --seed) seeds
SEEDS_PER_ENV = 100_000


@dataclass
class PPOConfig:
    """MVP's PPO (configs/ppo/train/FrankaReachPixels.yaml of ir413/mvp) except `num_steps` (see the module)."""

    task: str = setting("reach", choices=tuple(TASKS))
    encoder: str = "state"
    steps: int = setting(100_000, min=1)  # environment steps in all (all processes)
    num_envs: int = setting(2, min=1)  # per process
    num_steps: int = setting(32, min=2)  # per environment and update (MVP: 32, with 256+ environments)
    epochs: int = setting(10, min=1)
    minibatches: int = setting(4, min=1)
    clip: float = setting(0.1, above=0)
    gamma: float = setting(0.99, min=0, max=1)
    lam: float = setting(0.95, min=0, max=1)
    lr: float = setting(1e-3, above=0)
    schedule: str = setting("cos", choices=("cos", "fixed"))
    max_grad_norm: float = setting(1.0, min=0)  # 0: none
    value_coef: float = setting(2.0, min=0)
    entropy_coef: float = setting(0.0, min=0)
    init_noise_std: float = setting(1.0, above=0)
    reward_scale: float = setting(0.1, above=0)
    bootstrap_success: bool = True  # success ends our episodes: value its last state as if it went on (see module)
    size: int = setting(64, min=16, max=1024)  # rendered frame side (pixels only)
    camera: str = "front"
    shadows: str = setting("fast", choices=("fast", "default", "off"))
    eval_episodes: int = setting(20, min=0)  # final evaluation on EVAL_SEEDS
    ckpt_every: int = setting(10, min=1)  # updates
    seed: int = setting(0, min=0, max=999)
    threads: int = setting(0, min=0)
    device: str = "auto"


def load_config(path: str | os.PathLike | None, overrides: Sequence[str] = ()) -> PPOConfig:
    """The defaults, then the YAML `path` (and its `base:` chain), then `key=value` overrides."""
    return load_settings(PPOConfig(), path, overrides)


# ---------------------------------------------------------------------------------------------------- rollouts
class Envs:
    """A vector env and where each of its environments is in its episode (seed, actions since reset: enough to
    put it back exactly, `restore`). Autoreset is off: a finished episode is reset here with its next seed."""

    def __init__(self, cfg: PPOConfig, pixels: bool, rank: int):
        self.cfg, self.n = cfg, cfg.num_envs
        self.ids = [rank * cfg.num_envs + i for i in range(cfg.num_envs)]
        self.vec = make_vector_env(cfg.task, cfg.num_envs, pixels,
                                   RenderSettings(cfg.size, cfg.camera, cfg.shadows))
        self.count = [0] * self.n  # episodes started by each environment
        self.actions: list[list[np.ndarray]] = [[] for _ in range(self.n)]
        self.ret = [0.0] * self.n
        self.obs: dict = {}

    def seed_of(self, i: int, k: int) -> int:
        return PPO_SEEDS + self.cfg.seed * 10_000_000 + self.ids[i] * SEEDS_PER_ENV + k % SEEDS_PER_ENV

    def _merge(self, obs: dict, rows) -> None:
        for key, v in obs.items():
            if key not in self.obs:
                self.obs[key] = np.array(v)
            else:
                self.obs[key][rows] = v[rows]

    def _reset(self, rows: list[int], seeds: list[int]) -> None:
        mask = np.zeros(self.n, dtype=bool)
        mask[rows] = True
        full = [None] * self.n
        for i, s in zip(rows, seeds):
            full[i] = int(s)
        obs, _ = self.vec.reset(seed=full, options={"reset_mask": mask}) if self.obs else self.vec.reset(seed=full)
        self._merge(obs, mask)

    def start(self) -> None:
        self._reset(list(range(self.n)), [self.seed_of(i, 0) for i in range(self.n)])
        self.count = [1] * self.n

    def state(self) -> dict:
        return {"count": list(self.count), "ret": list(self.ret),
                "actions": [torch.from_numpy(np.asarray(a, dtype=np.float32).reshape(-1, ACTION_DIM)) for a in self.actions]}

    def restore(self, st: dict) -> None:
        """Each environment back where it was: reset with its episode's seed, then its actions replayed (the
        environments step together: a shorter replay starts later, after placeholder steps of a spare episode)."""
        self.count, self.ret = list(st["count"]), list(st["ret"])
        acts = [a.numpy() for a in st["actions"]]
        lens = [len(a) for a in acts]
        total = max(lens)
        seeds = [self.seed_of(i, self.count[i] - 1) for i in range(self.n)]
        self._reset(list(range(self.n)), [seeds[i] if lens[i] == total else PPO_SEEDS - 1 for i in range(self.n)])
        for t in range(total):
            late = [i for i in range(self.n) if t > 0 and total - lens[i] == t]
            if late:
                self._reset(late, [seeds[i] for i in late])
            a = np.zeros((self.n, ACTION_DIM), dtype=np.float32)
            for i in range(self.n):
                if t >= total - lens[i]:
                    a[i] = acts[i][t - (total - lens[i])]
            obs, *_ = self.vec.step(a)
            self._merge(obs, np.ones(self.n, dtype=bool))
        empty = [i for i in range(self.n) if lens[i] == 0 and total > 0]
        if empty:
            self._reset(empty, [seeds[i] for i in empty])
        self.actions = [list(a) for a in acts]

    def step(self, actions: np.ndarray):
        """Step all; returns (reward, terminated, truncated, the final observations before any reset, finished
        episodes [(return, success, length)])."""
        obs, reward, term, trunc, info = self.vec.step(actions)
        final = {k: np.array(v) for k, v in obs.items()}
        self._merge(obs, np.ones(self.n, dtype=bool))
        finished, rows = [], []
        for i in range(self.n):
            self.actions[i].append(actions[i].copy())
            self.ret[i] += float(reward[i])
            if term[i] or trunc[i]:
                finished.append((self.ret[i], bool(info["success"][i]), len(self.actions[i])))
                rows.append(i)
                self.actions[i], self.ret[i] = [], 0.0
        if rows:
            self._reset(rows, [self.seed_of(i, self.count[i]) for i in rows])
            for i in rows:
                self.count[i] += 1
        return reward, term, trunc, final, finished

    def close(self) -> None:
        self.vec.close()


class Featurizer:
    """Observations -> (features, proprio) tensors on the device: the frozen encoder's (eval mode, no gradients)
    features of the frames, or the state."""

    def __init__(self, spec, encoder, device: torch.device):
        self.spec, self.encoder, self.device = spec, encoder, device
        self.dim = encoder.dim if encoder is not None else STATE_DIM

    @torch.no_grad()
    def __call__(self, obs: dict) -> tuple[torch.Tensor, torch.Tensor]:
        p = torch.as_tensor(np.asarray(obs["proprio"]), dtype=torch.float32, device=self.device)
        if self.encoder is None:
            return torch.as_tensor(np.asarray(obs["state"]), dtype=torch.float32, device=self.device), p
        return self.encoder(torch.as_tensor(np.asarray(obs["pixels"]), device=self.device)).float(), p


def gae(rewards, values, dones, last_value, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns [T, N] (generalised advantage estimation); `dones[t]` ends the episode after t."""
    adv = torch.zeros_like(rewards)
    running = torch.zeros_like(last_value)
    for t in reversed(range(len(rewards))):
        next_value = values[t + 1] if t + 1 < len(rewards) else last_value
        live = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_value * live - values[t]
        running = delta + gamma * lam * live * running
        adv[t] = running
    return adv, adv + values


def cosine_lr(cfg: PPOConfig, update: int, epoch: int, updates: int) -> float:
    """MVP's step size: cosine over updates, moved on at each epoch."""
    if cfg.schedule == "fixed":
        return cfg.lr
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * (update + epoch / cfg.epochs) / updates))


def ppo_update(model, optimizer, batch: dict, cfg: PPOConfig, update: int, updates: int,
               generator: torch.Generator) -> dict:
    """`epochs` passes over the rollout in `minibatches`; returns the mean losses. `model` may be DDP-wrapped."""
    n = len(batch["actions"])
    size = max(1, n // cfg.minibatches)
    value_losses, surrogates, lr = [], [], cfg.lr
    params = [p for p in model.parameters() if p.requires_grad]
    for epoch in range(cfg.epochs):
        lr = cosine_lr(cfg, update, epoch, updates)
        for g in optimizer.param_groups:
            g["lr"] = lr
        order = torch.randperm(n, generator=generator).to(batch["actions"].device)
        for k in range(cfg.minibatches):
            idx = order[k * size:(k + 1) * size]
            logp, entropy, value = model(batch["features"][idx], batch["proprio"][idx], batch["actions"][idx])
            adv, old_v, ret = batch["advantages"][idx], batch["values"][idx], batch["returns"][idx]
            ratio = torch.exp(logp - batch["logp"][idx])
            surrogate = torch.max(-adv * ratio, -adv * ratio.clamp(1.0 - cfg.clip, 1.0 + cfg.clip)).mean()
            clipped = old_v + (value - old_v).clamp(-cfg.clip, cfg.clip)
            value_loss = torch.max((value - ret).pow(2), (clipped - ret).pow(2)).mean()
            loss = surrogate + cfg.value_coef * value_loss - cfg.entropy_coef * entropy.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            value_losses.append(float(value_loss.detach()))
            surrogates.append(float(surrogate.detach()))
    return {"value_loss": float(np.mean(value_losses)), "surrogate_loss": float(np.mean(surrogates)), "lr": lr}


def collect(ac, envs: Envs, featurize: Featurizer, cfg: PPOConfig) -> tuple[dict, list]:
    """`num_steps` steps of every environment with the current policy: the rollout (features, not frames) with
    advantages and returns, and the episodes that ended."""
    T, N = cfg.num_steps, envs.n
    dev = featurize.device
    buf = {"features": torch.empty(T, N, featurize.dim, device=dev), "proprio": torch.empty(T, N, PROPRIO_DIM, device=dev),
           "actions": torch.empty(T, N, ACTION_DIM, device=dev), "logp": torch.empty(T, N, device=dev),
           "values": torch.empty(T, N, device=dev), "rewards": torch.empty(T, N, device=dev),
           "dones": torch.empty(T, N, device=dev)}
    episodes = []
    f, p = featurize(envs.obs)
    for t in range(T):
        a, logp, v = ac.act(f, p)
        buf["features"][t], buf["proprio"][t], buf["actions"][t], buf["logp"][t], buf["values"][t] = f, p, a, logp, v
        env_a = a.clamp(-1.0, 1.0).cpu().numpy().astype(np.float32)
        reward, term, trunc, final, finished = envs.step(env_a)
        r = torch.as_tensor(np.asarray(reward, dtype=np.float32) * cfg.reward_scale, device=dev)
        cut = np.logical_or(trunc, term) if cfg.bootstrap_success else np.asarray(trunc)
        if cut.any():  # cut by the horizon (or success), not ended: bootstrap with the value of where it was cut
            with torch.no_grad():
                _, v_final = ac.heads(*featurize({k: final[k][cut] for k in final}))
            r[torch.as_tensor(cut, device=dev)] += cfg.gamma * v_final
        buf["rewards"][t] = r
        buf["dones"][t] = torch.as_tensor(np.logical_or(term, trunc), dtype=torch.float32, device=dev)
        episodes += finished
        f, p = featurize(envs.obs)
    with torch.no_grad():
        _, last_value = ac.heads(f, p)
    adv, ret = gae(buf["rewards"], buf["values"], buf["dones"], last_value, cfg.gamma, cfg.lam)
    flat = {k: v.reshape(T * N, *v.shape[2:]) for k, v in buf.items() if k not in ("rewards", "dones")}
    adv = adv.reshape(-1)
    flat["advantages"] = (adv - adv.mean()) / (adv.std() + 1e-8)  # over the whole rollout, as MVP
    flat["returns"] = ret.reshape(-1)
    return flat, episodes


# ---------------------------------------------------------------------------------------------------- the run
def train(cfg: PPOConfig, out: str | os.PathLike, resume: bool = False, overwrite: bool = False, log=print,
          progress: bool | None = None) -> dict:
    """Train (or with `resume`, continue) the PPO run in `out`; returns results.json's content (process 0). Under
    torchrun the process group is destroyed before the process exits: left to the interpreter's exit, gloo's
    threads sometimes abort a process ("terminate called without an active exception", 1 run in 5 here)."""
    from vislearn.common.distributed import cleanup_distributed

    try:
        with session():
            return _train(cfg, Path(out), resume, overwrite, log,
                          sys.stderr.isatty() if progress is None else progress)
    finally:
        cleanup_distributed()


def _setup(cfg: PPOConfig):
    from vislearn.common.distributed import init_distributed

    from .encoders import build_encoder, parse_spec

    validate(cfg)
    get_task(cfg.task)
    spec = parse_spec(cfg.encoder)
    if not spec.frozen:
        raise UserError(f"encoder: {cfg.encoder!r}: PPO here trains the policy on a frozen encoder's features "
                        "(MVP's setting); a `scratch:` encoder is trained end to end by `vislearn control bc` only")
    RenderSettings(cfg.size, cfg.camera, cfg.shadows).check()
    info = init_distributed(cfg.device)
    encoder = build_encoder(spec, seed=cfg.seed)
    if encoder is not None:
        encoder = encoder.to(info.device).eval()
    return info, spec, encoder


def _train(cfg: PPOConfig, out: Path, resume: bool, overwrite: bool, log, progress: bool) -> dict:
    import torch.distributed as dist

    from .actor_critic import ActorCritic
    from .agent import Norm, policy_file
    from .curves import plot_success_curve

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    info, spec, encoder = _setup(cfg)
    main_proc = info.is_main
    last = out / "last.pt"
    config = dataclasses.asdict(cfg)
    if main_proc:
        claim = claim_folder(out, kind=KIND, lock=True, flag="--out", overwrite=overwrite)
        if last.exists() and not resume:
            raise UserError(f"{out}: already holds a run (last.pt); pass --resume to continue it or choose another --out")
        claim.check(RUN_FILES, overwrite or (resume and last.exists()), [spec.path] if spec.path else [])
        if resume and (out / "config.json").exists():
            saved = read_json(out / "config.json")
            diff = [f"{k}: {saved.get(k)!r} -> {v!r}" for k, v in config.items()
                    if k not in ("threads", "device", "eval_episodes", "ckpt_every") and saved.get(k) != v]
            if diff:
                raise UserError(f"{out / 'config.json'}: the run was started with other settings ({'; '.join(diff[:4])});"
                                " resume with the run's values or choose another --out")
        write_json(out / "config.json", {**config, "world_size": info.world_size}, indent=1)
    if info.distributed:
        dist.barrier()
    per_update = cfg.num_envs * cfg.num_steps * info.world_size
    updates = math.ceil(cfg.steps / per_update)
    torch.manual_seed(cfg.seed)
    ac = ActorCritic(encoder.dim if encoder is not None else STATE_DIM, PROPRIO_DIM, ACTION_DIM,
                     cfg.init_noise_std).to(info.device)
    model = ac
    if info.distributed:
        model = torch.nn.parallel.DistributedDataParallel(ac, device_ids=[info.device] if info.device.type == "cuda" else None)
    optimizer = torch.optim.Adam(ac.parameters(), lr=cfg.lr)
    torch.manual_seed(cfg.seed * 1000 + info.rank + 1)  # exploration noise: each process its own
    shuffle = torch.Generator().manual_seed(cfg.seed)  # the same minibatch order on every process
    envs = Envs(cfg, spec.pixels, info.rank)
    start, metrics, seconds = 0, [], 0.0
    try:
        if resume and last.exists():
            ckpt = load_checkpoint(last)
            if ckpt.get("world_size", 1) != info.world_size:
                raise UserError(f"{last}: written by {ckpt.get('world_size', 1)} processes; resume it with as many")
            load_state(ac, ckpt["model"], last)
            optimizer.load_state_dict(ckpt["optimizer"])
            start, metrics, seconds = int(ckpt["update"]), list(ckpt["metrics"]), float(ckpt["seconds"])
            mine = ckpt["ranks"][info.rank]
            set_rng_state(mine["rng"])
            shuffle.set_state(ckpt["shuffle"])
            envs.restore(mine["envs"])
            if main_proc:
                log(f"resumed {last} after update {start}")
        else:
            envs.start()
        if main_proc:
            write_jsonl(out / "metrics.jsonl", metrics)
            log(f"PPO on {cfg.task} from {spec} ({envs.vec.num_envs} envs x {info.world_size} processes, "
                f"{updates} updates of {per_update} steps, {cfg.epochs} epochs x {cfg.minibatches} minibatches)")
        featurize = Featurizer(spec, encoder, info.device)
        window: list = [e for m in metrics for e in m.get("_episodes", [])][-100:]
        for update in range(start, updates):
            t0 = time.perf_counter()
            ac.train()
            batch, episodes = collect(ac, envs, featurize, cfg)
            t1 = time.perf_counter()
            losses = ppo_update(model, optimizer, batch, cfg, update, updates, shuffle)
            t2 = time.perf_counter()
            if info.distributed:
                gathered = [None] * info.world_size
                dist.all_gather_object(gathered, episodes)
                episodes = [e for g in gathered for e in g]
            seconds += t2 - t0
            window = (window + [list(e) for e in episodes])[-100:]
            row = {"update": update + 1, "steps": (update + 1) * per_update, "episodes": len(episodes),
                   "mean_return": float(np.mean([e[0] for e in episodes])) if episodes else None,
                   "success_rate": float(np.mean([e[1] for e in episodes])) if episodes else None,
                   "success_last100": float(np.mean([e[1] for e in window])) if window else None,
                   **losses, "std": float(ac.log_std.detach().exp().mean()), "rollout_s": t1 - t0, "update_s": t2 - t1,
                   "steps_per_s": per_update / (t2 - t0), "_episodes": [list(e) for e in episodes]}
            metrics.append(row)
            done = update + 1 == updates
            if (update + 1) % cfg.ckpt_every == 0 or done:
                mine = {"rng": rng_state(), "envs": envs.state()}
                ranks = [mine]
                if info.distributed:
                    ranks = [None] * info.world_size
                    dist.all_gather_object(ranks, mine)
                if main_proc:
                    save_checkpoint({"model": ac.state_dict(), "optimizer": optimizer.state_dict(), "update": update + 1,
                                     "metrics": metrics, "seconds": seconds, "config": config, "ranks": ranks,
                                     "shuffle": shuffle.get_state(), "world_size": info.world_size}, last)
                    write_jsonl(out / "metrics.jsonl", [{k: v for k, v in m.items() if k != "_episodes"} for m in metrics])
                    sr = row["success_last100"]
                    log(f"update {update + 1}/{updates}: {row['steps']} steps, {row['steps_per_s']:.0f} steps/s, "
                        f"success (last 100 episodes) {'-' if sr is None else f'{sr:.2f}'}, "
                        f"value loss {losses['value_loss']:.3f}, std {row['std']:.2f}")
    finally:
        envs.close()
    if info.distributed:
        dist.barrier()
    if not main_proc:
        return {}
    norm = Norm.identity(featurize.dim, PROPRIO_DIM)  # MVP feeds the frozen features and proprioception as they are
    render = RenderSettings(cfg.size, cfg.camera, cfg.shadows)
    actor = ac.actor.to("cpu")
    save_policy(out / "policy.pt", policy_file(cfg.task, "ppo", str(spec), actor, norm, render, extra=ac.extra()))
    ac.to(info.device)
    steps_per_s = [m["steps_per_s"] for m in metrics]
    results = {"task": cfg.task, "encoder": str(spec), "steps": updates * per_update, "updates": updates,
               "train_seconds": seconds, "steps_per_s": updates * per_update / seconds if seconds else None,
               "median_update_steps_per_s": float(np.median(steps_per_s)) if steps_per_s else None,
               "train_success_last100": metrics[-1]["success_last100"] if metrics else None,
               "policy": str(out / "policy.pt")}
    if cfg.eval_episodes:
        results["eval"] = evaluate_run(out / "policy.pt", cfg)
        log(f"evaluation ({cfg.eval_episodes} episodes, seeds {EVAL_SEEDS}..): success "
            f"{results['eval']['success_rate']:.2f}, mean length {results['eval']['mean_length']:.1f}")
    write_json(out / "results.json", results, indent=1)
    plot_success_curve(out / "metrics.jsonl", out / "success.png", f"PPO {cfg.task}, {spec}",
                       results.get("eval", {}).get("success_rate"))
    return results


def save_policy(path: Path, state: dict) -> None:
    from vislearn.common.files import atomic_file

    with atomic_file(path, "wb") as f:
        torch.save(state, f)


def evaluate_run(policy: Path, cfg: PPOConfig) -> dict:
    """Success of the saved policy (its mean action) on `eval_episodes` episodes from EVAL_SEEDS (what `evaluate`
    and BC report)."""
    from .agent import load_agent
    from .rollouts import evaluate_policy

    agent, _ = load_agent(policy, cfg.task)
    return evaluate_policy(agent, cfg.task, cfg.eval_episodes, cfg.num_envs, EVAL_SEEDS)


# ----------------------------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn control ppo",
               description="PPO as MVP trains (clip 0.1, 10 epochs x 4 minibatches, GAE 0.99/0.95, lr 1e-3 cosine, "
                           "grad norm 1, no entropy bonus) with MVP's policy on a frozen encoder's features of each "
                           "frame, or on the state (--encoder state). Writes RUN/policy.pt (the file `evaluate` and "
                           "`record` read), metrics.jsonl, config.json, results.json; a killed run continues with "
                           "--resume. Under torchrun every process runs its own environments. Settings: --config "
                           f"YAML and key=value (keys: {', '.join(f.name for f in dataclasses.fields(PPOConfig))}).")
    p.add_argument("--task", default=None, help=f"one of {', '.join(TASKS)} (default: the config's, reach)")
    p.add_argument("--encoder", default=None, help="ckpt:PATH, mvp:ARCH:PATH, imagenet, random:ARCH or state "
                   "(optionally @SIZE); default: the config's, state")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--steps", default=None, help="environment steps in all")
    p.add_argument("--num-envs", default=None, help="environments per process (default 2)")
    p.add_argument("--seed", default=None, help="seed (weights, exploration and the training episodes)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--config", default=None, help=f"YAML config (default {DEFAULT_CONFIG.relative_to(DEFAULT_CONFIG.parents[2])})")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config settings, e.g. num_steps=128 lr=5e-4")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    p.add_argument("--overwrite", action="store_true", help="replace files of the run's names in --out that vislearn "
                   "did not write")
    return p


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    for key, flag in (("task", "task"), ("encoder", "encoder"), ("steps", "steps"), ("num_envs", "num_envs"),
                      ("seed", "seed"), ("device", "device")):
        if getattr(args, flag) is not None:
            overrides.append(f"{key}={getattr(args, flag)}")
    cfg = load_config(args.config or (DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None), overrides)
    train(cfg, args.out, resume=args.resume, overwrite=args.overwrite)
    return 0


main = command(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
