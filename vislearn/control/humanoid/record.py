"""`vislearn control humanoid record POLICY --out FILE.mp4`: a policy's randomised episodes from the side (a camera
tracking the base), with the commanded and the actual forward velocity written and drawn as bars on every frame;
a fall ends the episode with a red border, a full episode with a green one. `--change` applies a held-out dynamics
change mid-episode, as `evaluate --change` does."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from vislearn.common.cli import Parser, command, positive_int
from vislearn.common.errors import UserError

from .randomization import CONDITIONS

GREEN, RED, WHITE, GREY = (40, 200, 40), (220, 30, 30), (255, 255, 255), (120, 120, 120)
HOLD_SECONDS = 1.0


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn control humanoid record", description=__doc__.split("\n\n")[0])
    p.add_argument("policy", metavar="POLICY", help="a policy.pt of train-teacher or train-student")
    p.add_argument("--out", metavar="FILE.mp4", required=True, help="the video (H.264 .mp4)")
    p.add_argument("--episodes", type=positive_int, default=1, help="episodes, one after the other (default 1)")
    p.add_argument("--seed-base", type=int, default=0, help="the first episode's seed (default 0, as evaluate)")
    p.add_argument("--condition", default="train", choices=CONDITIONS, help="dynamics (default: training ranges)")
    p.add_argument("--change", default=None, choices=CONDITIONS[1:], help="a mid-episode dynamics change")
    p.add_argument("--change-at", type=float, default=5.0, help="seconds into the episode (default 5)")
    p.add_argument("--seconds", type=float, default=None, help="cut each episode after this long (default: whole)")
    p.add_argument("--width", type=positive_int, default=480, help="video width, even (default 480)")
    p.add_argument("--height", type=positive_int, default=320, help="video height, even (default 320)")
    p.add_argument("--overwrite", action="store_true", help="replace an --out file vislearn did not write")
    return p


def overlay(frame: np.ndarray, command: float, velocity: float, t: float, caption: str,
            outcome: str | None = None) -> np.ndarray:
    """The frame with `command` and `velocity` as numbers and as bars on one scale (0..2 m/s)."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(frame)
    draw = ImageDraw.Draw(img)
    w, h = img.size
    x0, x1, scale = 10, w - 10, 2.0
    def at(v):
        return int(x0 + (x1 - x0) * min(max(v, 0.0), scale) / scale)
    draw.rectangle([0, 0, w, 44], fill=(0, 0, 0))
    draw.text((x0, 4), f"{t:5.2f} s  command {command:4.2f} m/s  actual {velocity:5.2f} m/s   {caption}", fill=WHITE)
    draw.rectangle([x0, 20, x1, 38], outline=GREY)
    draw.rectangle([x0, 24, at(velocity), 34], fill=GREEN)
    draw.line([at(command), 18, at(command), 40], fill=WHITE, width=3)
    if outcome is not None:
        draw.rectangle([0, 0, w - 1, h - 1], outline=GREEN if outcome == "stood" else RED, width=6)
        draw.text((x0, h - 18), outcome, fill=GREEN if outcome == "stood" else RED)
    return np.asarray(img)


def run(args: argparse.Namespace) -> int:
    import torch

    from vislearn.common.files import input_file, new_output_file
    from vislearn.common.video_writer import VideoWriter

    from ..envs import gl
    from .evaluate import make_envs
    from .policies import History
    from .policy_file import load_policy

    if Path(args.out).suffix.lower() != ".mp4":
        raise UserError(f"--out: {args.out}: expected a .mp4 file (H.264)")
    if args.width % 2 or args.height % 2 or args.width < 64 or args.height < 64:
        raise UserError(f"--width/--height: expected even sizes of 64 pixels or more, got {args.width}x{args.height}")
    path = input_file(args.policy, "policy file", "a policy.pt")
    new_output_file(args.out, [path], args.overwrite)
    gl.import_mujoco()
    policy, meta = load_policy(path)
    torch.set_num_threads(1)
    mujoco = gl.import_mujoco()
    caption = f"{meta['arch']} on {meta['env']['robot']}" + (f", {args.change} at {args.change_at:g} s"
                                                          if args.change else f", {args.condition}")
    renderer = None
    with VideoWriter(Path(args.out), args.width, args.height, fps=25, crf=23) as writer:
        for k in range(args.episodes):
            seed = args.seed_base + k
            idle = np.zeros(1, dtype=bool)
            envs = make_envs(meta, 1, [seed], args.condition, idle)
            envs.start()
            if renderer is None:
                renderer = gl.renderer(envs.models[0], args.height, args.width)
            cam = mujoco.MjvCamera()
            cam.type, cam.trackbodyid = mujoco.mjtCamera.mjCAMERA_TRACKING, 1
            cam.distance, cam.elevation, cam.azimuth = 4.0 if envs.planar else 5.0, -10.0, 90.0
            hist = None if policy.privileged else History(1, policy.history, envs.obs_dim)
            if hist is not None:
                hist.push(envs.obs, np.ones(1, dtype=bool))
            change_step = int(round(args.change_at / envs.control_dt)) if args.change else -1
            limit = int(args.seconds / envs.control_dt) if args.seconds else envs.max_steps
            every = max(1, round(1.0 / (25 * envs.control_dt)))  # 25 frames per second of simulated time
            fell, t = False, 0
            while t < limit:
                if t == change_step:
                    envs.change_dynamics(0, args.change)
                with torch.no_grad():
                    window = torch.from_numpy(hist.buf.copy()) if hist is not None else None
                    a = policy.mean(window, torch.from_numpy(envs.priv.copy())).numpy()
                _, term, trunc, ended = envs.step(a)
                t += 1
                if ended:
                    fell = ended[0][4]
                    break
                if t % every == 0:
                    renderer.update_scene(envs.datas[0], cam)
                    writer.write(overlay(renderer.render(), envs.last_command[0], envs.last_velocity[0],
                                         t * envs.control_dt, f"{caption} seed {seed}"))
                if hist is not None:
                    hist.push(envs.obs, term | trunc)
            renderer.update_scene(envs.datas[0], cam)
            last = overlay(renderer.render(), envs.last_command[0], envs.last_velocity[0], t * envs.control_dt,
                           f"{caption} seed {seed}", "fell" if fell else "stood")
            for _ in range(int(HOLD_SECONDS * 25)):
                writer.write(last)
            print(f"episode {k + 1}/{args.episodes} seed {seed}: {'fell after' if fell else 'stood for'} "
                  f"{t * envs.control_dt:.1f} s")
    if renderer is not None:
        renderer.close()
    print(f"wrote {args.out} ({writer.count} frames, {args.width}x{args.height}, 25 fps)")
    return 0


main = command(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
