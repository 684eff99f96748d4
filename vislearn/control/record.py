"""`vislearn control record POLICY --out FILE.mp4` (or `--expert TASK`: the scripted expert): a video of seeded
episodes, to see what a policy does rather than only its success rate.

Each frame shows the step and, once the episode is over, the outcome: the frames from the step success is reached
on are bordered green and say "success" (the episode ends there; its last frame is held a second), a failed
episode's last frames are bordered red. The video is rendered at `--size` by a second renderer of the same scene,
so it does not change what the policy sees (its own render size, camera and encoder, from the policy file).
H.264 .mp4 via PyAV, written atomically; `--still` also writes the first episode's last frame as a PNG."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from vislearn.common.cli import Parser, command, positive_int
from vislearn.common.errors import UserError

GREEN, RED = (40, 200, 40), (220, 30, 30)
HOLD_SECONDS = 1.0  # the last frame of an episode stays this long, bordered with its outcome


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn control record", description=__doc__.split("\n\n")[0],
               formatter_class=argparse.RawDescriptionHelpFormatter,
               epilog="examples:\n  vislearn control record runs/bc/reach/policy.pt --out reach.mp4 --still reach.png\n"
                      "  vislearn control record --expert push --out push-expert.mp4 --episodes 3")
    p.add_argument("policy", metavar="POLICY", nargs="?", help="a policy file (policy.pt) of `bc` or `ppo`")
    p.add_argument("--expert", metavar="TASK", help="record TASK's scripted expert instead of a policy file")
    p.add_argument("--out", metavar="FILE.mp4", required=True, help="the video (H.264 .mp4)")
    p.add_argument("--episodes", type=positive_int, default=2, help="episodes, one after the other (default 2)")
    p.add_argument("--seed-base", type=int, default=None, help="the first episode's seed (default: the evaluation "
                   "seeds, as `evaluate`)")
    p.add_argument("--size", type=positive_int, default=256, help="video side in pixels, even (default 256)")
    p.add_argument("--fps", type=positive_int, default=20, help="frames per second of the video (default 20)")
    p.add_argument("--still", metavar="FILE.png", help="also write the first episode's last frame as a PNG")
    p.add_argument("--overwrite", action="store_true", help="replace --out / --still files vislearn did not write")
    return p


# ----------------------------------------------------------------------------- frames
def annotate(frame: np.ndarray, step: int, outcome: str | None = None, caption: str = "") -> np.ndarray:
    """`frame` with the step (and caption) written on it; with an outcome ("success" / "failed") a green / red
    border and the word."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(frame)
    draw = ImageDraw.Draw(img)
    size = frame.shape[0]
    border = max(3, size // 40)
    if outcome is not None:
        color = GREEN if outcome == "success" else RED
        draw.rectangle([0, 0, frame.shape[1] - 1, size - 1], outline=color, width=border)
    text = f"step {step}" + (f"  {outcome}" if outcome else "")
    x = y = border + 2
    draw.rectangle([x - 1, y - 1, x + 6 * len(text) + 1, y + 11], fill=(0, 0, 0))
    draw.text((x, y), text, fill=(255, 255, 255) if outcome is None else (GREEN if outcome == "success" else RED))
    if caption:
        cy = size - border - 14
        draw.rectangle([x - 1, cy - 1, x + 6 * len(caption) + 1, cy + 11], fill=(0, 0, 0))
        draw.text((x, cy), caption, fill=(255, 255, 255))
    return np.asarray(img)


# ----------------------------------------------------------------------------- episodes
def record_episode(env, act, seed: int, size: int, hold: int, write, caption: str = "") -> tuple[bool, int, np.ndarray]:
    """Run one episode from `seed`, writing each annotated frame (rendered at `size`) with `write`; returns
    (success, steps, the last frame)."""
    obs, _ = env.reset(seed=seed)
    step = 0
    while True:
        write(annotate(env.frame(size), step, caption=caption))
        obs, _, terminated, truncated, info = env.step(act(obs))
        step += 1
        if terminated or truncated:
            success = bool(info["success"])
            last = annotate(env.frame(size), step, "success" if success else "failed", caption)
            for _ in range(hold):
                write(last)
            return success, step, last


def actor(args: argparse.Namespace):
    """(task, act on one observation, pixels needed, render settings, label) of the policy file or the expert."""
    from vislearn.control.envs import RenderSettings, ScriptedExpert, get_task

    if args.expert:
        task = get_task(args.expert, "--expert").name
        expert = ScriptedExpert(task)
        return task, lambda obs: expert(obs["state"])[0], False, RenderSettings(), f"{task} expert"
    from vislearn.control.agent import load_agent

    agent, ckpt = load_agent(args.policy)
    act = lambda obs: agent({k: np.asarray(v)[None] for k, v in obs.items()})[0]  # noqa: E731
    return agent.task, act, agent.encoder is not None, agent.render, f"{agent.task} {ckpt.get('method')} {agent.spec}"


def run(args: argparse.Namespace) -> int:
    from vislearn.common.files import input_file, new_output_file
    from vislearn.common.video_writer import VideoWriter
    from vislearn.control.envs import SawyerTaskEnv
    from vislearn.control.envs.tasks import EVAL_SEEDS

    if (args.policy is None) == (args.expert is None):
        raise UserError("give a POLICY file or --expert TASK (one of the two)")
    if args.policy is not None:
        input_file(args.policy, "policy file", "a policy file (policy.pt)")
    if Path(args.out).suffix.lower() != ".mp4":
        raise UserError(f"--out: {args.out}: expected a .mp4 file (H.264)")
    if args.size % 2 or not 16 <= args.size <= 1024:
        raise UserError(f"--size: expected an even number of pixels from 16 to 1024 (H.264), got {args.size}")
    inputs = [args.policy] if args.policy else []
    new_output_file(args.out, inputs, args.overwrite)
    if args.still:
        if os.path.abspath(args.still) == os.path.abspath(args.out):
            raise UserError(f"--still: {args.still} is also --out")
        new_output_file(args.still, inputs, args.overwrite, flag="--still")
    task, act, pixels, render, label = actor(args)
    seed_base = EVAL_SEEDS if args.seed_base is None else args.seed_base
    hold = max(1, round(HOLD_SECONDS * args.fps))
    env = SawyerTaskEnv(task, pixels=pixels, render=render)
    first_last = None
    try:
        with VideoWriter(Path(args.out), args.size, args.size, fps=args.fps, crf=23) as writer:
            for k in range(args.episodes):
                seed = seed_base + k
                success, steps, last = record_episode(env, act, seed, args.size, hold, writer.write,
                                                      f"{label} seed {seed}")
                first_last = last if first_last is None else first_last
                print(f"episode {k + 1}/{args.episodes} seed {seed}: "
                      f"{'success at step' if success else 'failed after'} {steps}")
    finally:
        env.close()
    print(f"wrote {args.out} ({writer.count} frames, {args.size}x{args.size}, {args.fps} fps)")
    if args.still:
        from vislearn.common.files import save_png

        save_png(args.still, first_last)
        print(f"wrote {args.still}")
    return 0


main = command(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
