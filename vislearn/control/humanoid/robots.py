"""The bodies the locomotion layer drives: gymnasium's Walker2d-v5 and Humanoid-v5 models (their MJCF files, read
from the installed gymnasium), or a user's MJCF file with a free-floating base (a Unitree H1 file, say).

A robot is compiled once per environment with MuJoCo's model editor (`MjSpec`): when rough terrain is asked for,
the floor plane becomes a height field whose heights each episode redraws (flat = all zero), so one compiled model
serves every terrain. Why not gymnasium's env classes: the randomisation edits the compiled model per episode and
the policy runs at 50 Hz with its own observation pipeline (noise, latency, encoder offsets), which their fixed
`step` does not allow; the models and their stock parameters are theirs."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vislearn.common.errors import UserError

HFIELD_ROWS, HFIELD_CELL = 40, 0.1  # height field: rows across (y), cell size in metres


def gymnasium_asset(name: str) -> Path:
    import gymnasium

    return Path(gymnasium.__file__).resolve().parent / "envs" / "mujoco" / "assets" / name


@dataclass(frozen=True)
class Robot:
    """What the layer needs to know of a body beyond its MJCF: the control period and when it has fallen."""

    name: str
    xml: str  # path of the MJCF file
    frame_skip: int  # physics steps per control step (50 Hz or near it, as the paper's policy)
    min_height: float  # base height below which the robot has fallen (metres)
    max_tilt: float  # base tilt from upright beyond which it has fallen (radians)
    command: tuple[float, float]  # forward velocity commands drawn per episode (m/s)
    ctrl_cost: float = 1e-3  # action penalty per step, times the sum of squared actions in [-1, 1]
    lateral_cost: float = 0.0  # free-floating bodies: penalty on sideways velocity squared and yaw rate squared
    terrain_length: float = 60.0  # metres of height field ahead of the start
    integrator: str | None = None  # MuJoCo integrator and physics step replacing the MJCF's (None: keep them)
    timestep: float | None = None
    planar: bool = False  # Walker2d's base is three joints (slide x, slide z, hinge pitch); others a free joint


BUILTIN = {
    # the stock models step RK4 at 2 ms (Walker2d) / 3 ms (Humanoid): implicitfast at 4 ms gives the same 50 Hz
    # control for a fifth of the work (bench/control/bench_humanoid.py), which decides what 2 cores can train
    "walker2d": Robot("walker2d", str(gymnasium_asset("walker2d_v5.xml")), frame_skip=5, min_height=0.8,
                      max_tilt=1.0, command=(0.5, 1.5), integrator="implicitfast", timestep=0.004, planar=True),
    "humanoid": Robot("humanoid", str(gymnasium_asset("humanoid.xml")), frame_skip=5, min_height=1.0,
                      max_tilt=0.8, command=(0.3, 1.2), ctrl_cost=0.05, lateral_cost=0.5, integrator="implicitfast",
                      timestep=0.004),
}


def get_robot(name_or_path: str, min_height: float | None = None) -> Robot:
    """A built-in robot by name, or a user's MJCF file (free-floating base; fallen below `min_height`, default half
    the base's starting height)."""
    if name_or_path in BUILTIN:
        robot = BUILTIN[name_or_path]
        return dataclasses.replace(robot, min_height=min_height) if min_height is not None else robot
    path = Path(name_or_path)
    if path.suffix.lower() != ".xml" or not path.is_file():
        raise UserError(f"{name_or_path}: not a robot: use one of {', '.join(BUILTIN)} or an MJCF .xml file")
    model = compile_robot(Robot(path.stem, str(path), 4, 0.0, 1.0, (0.3, 1.0)), rough=False)
    free = model.njnt > 0 and model.jnt_type[0] == 0  # mjJNT_FREE
    if not free or model.nu == 0:
        raise UserError(f"{path}: the first joint must be a free joint (a floating base) and the model needs actuators"
                        f" (has {model.nu})")
    frame_skip = max(1, round(0.02 / model.opt.timestep))
    z0 = float(model.qpos0[2])
    return Robot(path.stem, str(path), frame_skip, min_height if min_height is not None else 0.5 * z0, 0.8, (0.3, 1.0),
                 ctrl_cost=0.05, lateral_cost=0.5)


def _floor(spec):
    """The world's ground: the geom called floor, else the first plane of the world body."""
    import mujoco

    try:
        g = spec.geom("floor")
    except Exception:  # noqa: BLE001 - older bindings raise, newer return None
        g = None
    if g is None:
        planes = [g for g in spec.worldbody.geoms if g.type == mujoco.mjtGeom.mjGEOM_PLANE]
        g = planes[0] if planes else None
    return g


def compile_robot(robot: Robot, rough: bool):
    """The compiled MjModel; with `rough`, the floor is a height field (`terrain`), all zero until an episode
    draws it. An MJCF that does not compile is one line naming the file."""
    import mujoco

    try:
        spec = mujoco.MjSpec.from_file(robot.xml)
        if rough:
            floor = _floor(spec)
            if floor is None:
                raise UserError(f"{robot.xml}: has no floor plane to turn into rough terrain")
            ncol = int(robot.terrain_length / HFIELD_CELL)
            h = spec.add_hfield()
            h.name, h.nrow, h.ncol = "terrain", HFIELD_ROWS, ncol
            h.size = [robot.terrain_length / 2, HFIELD_ROWS * HFIELD_CELL / 2, 1.0, 0.1]
            h.userdata = [0.0] * (HFIELD_ROWS * ncol)
            floor.type, floor.hfieldname = mujoco.mjtGeom.mjGEOM_HFIELD, "terrain"
            floor.pos = [robot.terrain_length / 2 - 5.0, 0.0, 0.0]
        model = spec.compile()
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - MuJoCo's parse and compile errors are plain ValueError/Exception
        msg = " ".join(str(e).split())
        raise UserError(f"{robot.xml}: the MJCF does not compile: {msg}") from None
    if robot.integrator:
        model.opt.integrator = getattr(mujoco.mjtIntegrator, f"mjINT_{robot.integrator.upper()}")
    if robot.timestep:
        model.opt.timestep = robot.timestep
    return model


def joint_slices(model, planar: bool) -> tuple[slice, slice]:
    """qpos and qvel index ranges of the actuated body's joints (everything after the base)."""
    return (slice(3, model.nq), slice(3, model.nv)) if planar else (slice(7, model.nq), slice(6, model.nv))


def rough_heights(rng: np.random.Generator, nrow: int, ncol: int, height: float) -> np.ndarray:
    """Rough ground: uniform bumps on a 0.1 m grid smoothed over 3 cells, in [0, 1] (MuJoCo scales by the field's
    elevation size; `height` sets it), flat from its start (5 m behind the robot) to 1 m ahead of the robot."""
    z = rng.uniform(0.0, 1.0, size=(nrow + 2, ncol + 2))
    z = (z[:, :-2] + z[:, 1:-1] + z[:, 2:]) / 3.0
    z = (z[:-2] + z[1:-1] + z[2:]) / 3.0
    z = (z - z.min()) / max(float(np.ptp(z)), 1e-9)
    z[:, : int(6.0 / HFIELD_CELL)] = 0.0
    return (z * (height > 0)).astype(np.float32)
