"""`vislearn control cycles transfer --run RUN --policy POLICY`: the source policy acting in the target domain
through the learned maps (a_y = G(H(y), pi(H(y)))), with no target reward and no fine-tuning; its returns, and
with --video an mp4 of the first episode. `--direct` runs it through the fixed joint assignment instead."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from vislearn.common.cli import Parser, command, positive_int
from vislearn.common.errors import UserError
from vislearn.common.jsonio import write_json
from vislearn.common.outputs import claim_file, session

from .correspondence import Correspondence, load_maps
from .domains import Domain, make_env
from .policy import EVAL_SEED, Actor, load_policy, rollout_returns


def transfer_returns(corr: Correspondence, actor: Actor, target: Domain, xml: str, episodes: int,
                     seed: int = EVAL_SEED, frames: list | None = None) -> list[float]:
    env = make_env(target, xml)
    if frames is not None:
        env = _Recording(env, frames)
    try:
        return rollout_returns(env, lambda obs: corr.target_action(actor, obs).numpy(), episodes, seed)
    finally:
        env.close()


def random_returns(target: Domain, xml: str, episodes: int, seed: int = EVAL_SEED) -> list[float]:
    env = make_env(target, xml)
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high
    try:
        return rollout_returns(env, lambda obs: rng.uniform(low, high).astype(np.float32), episodes, seed)
    finally:
        env.close()


class _Recording:
    """Renders the first episode's frames (the task's tracking camera, 320x240) while it runs."""

    def __init__(self, env, frames: list, width: int = 320, height: int = 240):
        from vislearn.control.envs.gl import renderer

        self.env, self.frames, self.episode = env, frames, 0
        model = env.unwrapped.model
        model.vis.quality.offsamples = 0  # DESIGN.md: MuJoCo's 4096 shadow map and 4x multisampling cost ~5x
        model.vis.quality.shadowsize = 512
        self.renderer = renderer(model, height, width)
        self.camera = "track" if any(model.camera(i).name == "track" for i in range(model.ncam)) else -1

    def __getattr__(self, name):
        return getattr(self.env, name)

    def _grab(self):
        if self.episode == 1:
            self.renderer.update_scene(self.env.unwrapped.data, camera=self.camera)
            self.frames.append(self.renderer.render().copy())

    def reset(self, **kw):
        out = self.env.reset(**kw)
        self.episode += 1
        self._grab()
        return out

    def step(self, action):
        out = self.env.step(action)
        self._grab()
        return out

    def close(self):
        self.renderer.close()
        self.env.close()


def write_video(path: Path, frames: list, fps: int = 30) -> None:
    from vislearn.common.video_writer import VideoWriter

    h, w = frames[0].shape[:2]
    with VideoWriter(path, w, h, fps=fps) as out:
        for f in frames:
            out.write(f)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn control cycles transfer",
               description="The source policy acting in the target domain through the learned maps "
                           "(a_y = G(H(y), pi(H(y)))), with no target reward and no fine-tuning: its returns on seeded "
                           "episodes, and with --video an mp4 of the first one. --direct runs it through the fixed "
                           "joint assignment instead (direct transfer).")
    p.add_argument("--run", required=True, help="a fitted run folder (its maps.pt)")
    p.add_argument("--policy", required=True, help="the source domain's policy.pt (train-policy --side source)")
    p.add_argument("--episodes", type=positive_int, default=10, help="evaluation episodes (default 10)")
    p.add_argument("--direct", action="store_true", help="no learned maps: the fixed joint assignment only")
    p.add_argument("--video", default=None, metavar="FILE.mp4", help="an mp4 of the first episode")
    p.add_argument("--out", default=None, metavar="FILE.json", help="the returns as JSON")
    p.add_argument("--overwrite", action="store_true", help="replace output files vislearn did not write")
    return p


def run(args: argparse.Namespace) -> int:
    maps = Path(args.run) / "maps.pt"
    if not maps.is_file():
        raise UserError(f"{args.run}: no maps.pt; fit the run first (vislearn control cycles fit --run {args.run})")
    corr, data = load_maps(maps)
    actor, meta = load_policy(args.policy)
    if actor.obs_mean.numel() != corr.meta["source_obs"] or actor.head.out_features != corr.meta["source_act"]:
        raise UserError(f"{args.policy}: a policy of {actor.obs_mean.numel()} observations and "
                        f"{actor.head.out_features} actions; the pair's source has {corr.meta['source_obs']} and "
                        f"{corr.meta['source_act']}")
    if args.direct:
        if corr.image:
            raise UserError(f"{args.run}: an image pair has no direct transfer (the policy reads states)")
        corr = corr.without_learning()
    from .pairs import PairConfig

    target = PairConfig(**data["pair"]).domain("target")
    with session():
        video = claim_file(args.video, overwrite=args.overwrite, flag="--video") if args.video else None
        out = claim_file(args.out, overwrite=args.overwrite) if args.out else None
        frames: list | None = [] if video else None
        with torch.no_grad():
            rets = transfer_returns(corr, actor, target, data["xml"]["target"], args.episodes, frames=frames)
        if video:
            write_video(video, frames)
        if out:
            write_json(out, {"returns": rets, "mean": float(np.mean(rets)), "direct": args.direct,
                             "run": str(args.run), "policy": str(args.policy)}, indent=1)
    how = "direct (joint assignment)" if args.direct else "through the learned maps"
    print(f"{PairConfig(**data['pair']).name}: return {np.mean(rets):.1f} ± {np.std(rets):.1f} over {len(rets)} "
          f"episodes, {how}" + (f"; video {video}" if video else ""))
    return 0


main = command(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
