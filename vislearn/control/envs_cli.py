"""`vislearn control envs`: what the tasks are, which OpenGL MuJoCo renders with here (and how fast), and with
--still one image of every task side by side (after a reset and a few of its expert's steps), to see what a policy
sees before training one.

The backend is checked by rendering, not by its name: a `MUJOCO_GL` that does not work here (OSMesa without
libosmesa6, no EGL, a name MuJoCo does not know) is the one-line error of `envs/gl.py`, exit code 2."""
from __future__ import annotations

import argparse
import time

import numpy as np

from vislearn.common.cli import Parser, command, positive_int
from vislearn.common.files import save_png

STILL_STEPS = 15  # expert steps before the still: the arm has moved towards the object, nothing is solved yet
SPEED_FRAMES = 10


def build_parser() -> argparse.ArgumentParser:
    from vislearn.control.envs.sawyer import CAMERAS

    p = Parser(prog="vislearn control envs", description=__doc__.split("\n\n")[0],
               formatter_class=argparse.RawDescriptionHelpFormatter,
               epilog="example: vislearn control envs --still tasks.png --size 128")
    p.add_argument("--still", metavar="FILE.png", help="write one labelled frame of each task, side by side")
    p.add_argument("--size", type=positive_int, default=96, help="frame side in pixels (default 96, as the policies)")
    p.add_argument("--camera", default="front", choices=sorted(CAMERAS), help="camera (default front)")
    p.add_argument("--overwrite", action="store_true", help="replace a --still file vislearn did not write")
    return p


def render_speed(size: int, camera: str) -> tuple[float, float]:
    """(env steps/s with frames, frames/s of the renderer alone) on `reach` at `size`: the cost of pixels here."""
    from vislearn.control.envs import RenderSettings, SawyerTaskEnv

    env = SawyerTaskEnv("reach", pixels=True, render=RenderSettings(size=size, camera=camera))
    try:
        env.reset(seed=0)
        zero = np.zeros(4, np.float32)
        t0 = time.perf_counter()
        for _ in range(SPEED_FRAMES):
            env.step(zero)
        steps = SPEED_FRAMES / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(SPEED_FRAMES):
            env.render()
        frames = SPEED_FRAMES / (time.perf_counter() - t0)
    finally:
        env.close()
    return steps, frames


def task_frame(task: str, size: int, camera: str, steps: int = STILL_STEPS, seed: int = 0) -> np.ndarray:
    """A frame of `task` after a seeded reset and `steps` of its scripted expert."""
    from vislearn.control.envs import RenderSettings, SawyerTaskEnv, ScriptedExpert

    env = SawyerTaskEnv(task, pixels=True, render=RenderSettings(size=size, camera=camera))
    try:
        obs, _ = env.reset(seed=seed)
        expert = ScriptedExpert(task)
        for _ in range(steps):
            obs, _, terminated, truncated, _ = env.step(expert(obs["state"])[0])
            if terminated or truncated:
                break
        return obs["pixels"]
    finally:
        env.close()


def labelled_row(frames: list[np.ndarray], labels: list[str], gap: int = 4) -> np.ndarray:
    """Frames side by side on white, each with its label in a strip above it."""
    from PIL import Image, ImageDraw

    h, w = frames[0].shape[:2]
    strip = 14
    canvas = Image.new("RGB", (len(frames) * w + (len(frames) + 1) * gap, h + strip + 2 * gap), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (frame, label) in enumerate(zip(frames, labels)):
        x = gap + i * (w + gap)
        draw.text((x, gap), label, fill="black")
        canvas.paste(Image.fromarray(frame), (x, gap + strip))
    return np.asarray(canvas)


def run(args: argparse.Namespace) -> int:
    from vislearn.control.envs import TASKS, RenderSettings, gl

    RenderSettings(size=args.size, camera=args.camera).check()
    if args.still:
        from vislearn.common.files import new_output_file

        new_output_file(args.still, [], args.overwrite, flag="--still")
    backend = gl.choose_gl()
    steps, frames = render_speed(args.size, args.camera)  # renders: a backend that does not work stops here
    width = max(len(t) for t in TASKS) + 2
    print(f"{'task':<{width}}{'Meta-World':<17}{'horizon':<9}what to do")
    for t in TASKS.values():
        print(f"{t.name:<{width}}{t.metaworld:<17}{t.horizon:<9}{t.what}")
    print(f"OpenGL: MUJOCO_GL={backend} (renders: {frames:.0f} frames/s at {args.size} px, env steps with frames "
          f"{steps:.0f}/s, camera {args.camera})")
    if args.still:
        names = list(TASKS)
        image = labelled_row([task_frame(t, args.size, args.camera) for t in names], names)
        save_png(args.still, image)
        print(f"wrote {args.still} ({image.shape[1]}x{image.shape[0]}: {', '.join(names)}, seed 0, "
              f"{STILL_STEPS} expert steps)")
    return 0


main = command(build_parser, run)

if __name__ == "__main__":
    import sys

    sys.exit(main())
