"""Domain randomisation as the paper's Table I, every item MuJoCo can express, drawn per episode from a config,
and the held-out dynamics the evaluation uses (outside every training range).

Each item and what it changes (checked by reading the compiled model in tests/control/test_hum_randomization.py):
  noise         sensor noise: Gaussian on each observed channel, std = scale x (joint angle 0.01 rad, joint velocity
                0.15 rad/s, base angular velocity 0.2 rad/s, gravity direction 0.05); drawn each step
  latency       the table's observation/action delay (seconds, one per episode), applied to the observations: the
                policy sees the robot as it was that many control steps before (rounded to the 50 Hz step); the
                actions act at once (a loop latency either way)
  motor_offset  joint-encoder offset (radians, sign random per joint): observed angle = true + offset; with PD
                control the targets are in the encoder's frame, so the motor tracks them off by the same amount
  strength      motor strength: each actuator's gear times a factor
  damping       joint damping: each joint's stock damping times a factor drawn log-uniformly (a zero stock damping
                becomes 0.1 N m s/rad first, so the item is never a no-op)
  mass          link mass: each body's mass and inertia times a factor
  pd_gains      PD control only: each joint's stiffness and damping gain times a factor
  friction      sliding friction of every geom (the ground's and the feet's: MuJoCo takes the larger of a pair)
  restitution   contact bounce: each geom's contact damping ratio set so that a mass on the contact spring comes
                back with this coefficient of restitution (damping ratio = -ln e / sqrt(pi^2 + ln^2 e); e = 0: 1)
  terrain       flat / rough / slope, drawn with the given weights; rough = a height field of `rough_height` m
                bumps; slope = the ground tilted by a grade drawn from `slope` (gravity rotated: exact for a plane)
  payload       extra mass on the base (kg): 0 in training; the held-out `heavy` condition adds one
A range [a, a] fixes the item; `enabled: false` turns them all off (nominal dynamics: the bench's baseline)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vislearn.common.errors import UserError

RANGE_KEYS = ("latency", "motor_offset", "strength", "damping", "mass", "pd_gains", "friction", "restitution",
              "slope", "payload")
TERRAINS = ("flat", "rough", "slope")
NOISE_STD = {"joint_pos": 0.01, "joint_vel": 0.15, "ang_vel": 0.2, "gravity": 0.05}
ZERO_DAMPING = 0.1


@dataclass
class Randomization:
    """Ranges [min, max] of the paper's Table I (latency in seconds, motor offset in radians, payload in kg)."""

    enabled: bool = True
    noise: float = 1.0
    latency: list = field(default_factory=lambda: [0.0, 0.2])
    motor_offset: list = field(default_factory=lambda: [0.0, 0.035])
    strength: list = field(default_factory=lambda: [0.85, 1.15])
    damping: list = field(default_factory=lambda: [0.3, 4.0])
    mass: list = field(default_factory=lambda: [0.5, 1.5])
    pd_gains: list = field(default_factory=lambda: [0.9, 1.1])
    friction: list = field(default_factory=lambda: [0.3, 2.0])
    restitution: list = field(default_factory=lambda: [0.0, 0.4])
    terrain: dict = field(default_factory=lambda: {"flat": 1.0, "rough": 1.0, "slope": 1.0})
    rough_height: float = 0.05
    slope: list = field(default_factory=lambda: [-0.1, 0.1])
    payload: list = field(default_factory=lambda: [0.0, 0.0])

    @property
    def rough(self) -> bool:
        """Whether any episode can be rough (the robot is then compiled with a height-field floor)."""
        return self.enabled and self.terrain.get("rough", 0) > 0


def parse_randomization(values: dict[str, Any] | None, source: str) -> Randomization:
    """A `Randomization` from a config mapping; an unknown key, a range that is not [min, max] with min <= max, or a
    negative value is one line naming `source` and the key."""
    r = Randomization()
    if values is None:
        return r
    if not isinstance(values, dict):
        raise UserError(f"{source}: randomization: expected a mapping of item: [min, max], got {values!r}")
    names = {f.name for f in dataclasses.fields(Randomization)}
    for key, v in values.items():
        if key not in names:
            raise UserError(f"{source}: randomization.{key}: no such item (items: {', '.join(sorted(names))})")
        if key in RANGE_KEYS:
            if (not isinstance(v, (list, tuple)) or len(v) != 2
                    or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)):
                raise UserError(f"{source}: randomization.{key}: expected [min, max], got {v!r}")
            lo, hi = float(v[0]), float(v[1])
            if lo > hi:
                raise UserError(f"{source}: randomization.{key}: min {lo:g} is above max {hi:g}")
            if key not in ("slope",) and lo < 0:
                raise UserError(f"{source}: randomization.{key}: {lo:g} is below 0")
            if key == "damping" and lo <= 0:
                raise UserError(f"{source}: randomization.damping: factors are drawn log-uniformly: min must be > 0")
            v = [lo, hi]
        elif key == "terrain":
            if not isinstance(v, dict) or not v or any(t not in TERRAINS for t in v) \
                    or any(not isinstance(w, (int, float)) or w < 0 for w in v.values()) or sum(v.values()) <= 0:
                raise UserError(f"{source}: randomization.terrain: expected weights of {', '.join(TERRAINS)} "
                                f"(>= 0, not all 0), got {v!r}")
        elif key == "enabled":
            if not isinstance(v, bool):
                raise UserError(f"{source}: randomization.enabled: expected true or false, got {v!r}")
        else:
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                raise UserError(f"{source}: randomization.{key}: expected a number >= 0, got {v!r}")
            v = float(v)
        setattr(r, key, v)
    return r


@dataclass
class Dynamics:
    """One episode's draw: what `apply_dynamics` writes into the model and the observation pipeline reads."""

    latency_steps: int = 0
    motor_offset: np.ndarray | None = None  # per actuated joint
    strength: np.ndarray | None = None  # per actuator
    damping: np.ndarray | None = None  # per joint dof (factor)
    mass: np.ndarray | None = None  # per body
    kp: np.ndarray | None = None  # per actuator (factor)
    kd: np.ndarray | None = None
    friction: float | None = None
    restitution: float | None = None
    terrain: str = "flat"
    slope: float = 0.0  # grade (rise over run)
    payload: float = 0.0  # kg on the base
    noise: float = 0.0

    def privileged(self) -> np.ndarray:
        """What the teacher and the critic are told of the dynamics (the means of vectors), 12 numbers."""
        def mean(a, default=1.0):
            return float(np.mean(a)) if a is not None else default
        return np.array([self.latency_steps / 10.0, mean(self.motor_offset, 0.0) * 10, mean(self.strength),
                         math.log(mean(self.damping)), mean(self.mass), mean(self.kp), mean(self.kd),
                         self.friction if self.friction is not None else 1.0,
                         self.restitution if self.restitution is not None else 0.0,
                         float(self.terrain == "rough"), self.slope * 10, self.payload / 10.0], dtype=np.float32)


PRIVILEGED_DYN = 12


def _u(rng: np.random.Generator, r, size=None):
    return rng.uniform(r[0], r[1], size=size)


def sample_dynamics(r: Randomization, rng: np.random.Generator, n_joints: int, n_act: int, n_dof: int, n_body: int,
                    control_dt: float) -> Dynamics:
    """One episode's dynamics (nominal when randomisation is off)."""
    if not r.enabled:
        return Dynamics()
    terrains = list(r.terrain)
    weights = np.array([r.terrain[t] for t in terrains], dtype=float)
    terrain = terrains[int(rng.choice(len(terrains), p=weights / weights.sum()))]
    offset = _u(rng, r.motor_offset, n_joints) * rng.choice([-1.0, 1.0], size=n_joints)
    return Dynamics(
        latency_steps=int(round(_u(rng, r.latency) / control_dt)),
        motor_offset=offset,
        strength=_u(rng, r.strength, n_act),
        damping=np.exp(rng.uniform(math.log(r.damping[0]), math.log(r.damping[1]), size=n_dof)),
        mass=_u(rng, r.mass, n_body),
        kp=_u(rng, r.pd_gains, n_act), kd=_u(rng, r.pd_gains, n_act),
        friction=float(_u(rng, r.friction)), restitution=float(_u(rng, r.restitution)),
        terrain=terrain, slope=float(_u(rng, r.slope)) if terrain == "slope" else 0.0,
        payload=float(_u(rng, r.payload)), noise=r.noise)


def damping_ratio(restitution: float) -> float:
    """The damping ratio of a mass-spring contact that rebounds with coefficient `restitution`."""
    if restitution <= 0:
        return 1.0
    ln = math.log(min(restitution, 0.999))
    return -ln / math.sqrt(math.pi ** 2 + ln ** 2)


@dataclass
class Stock:
    """The compiled model's own values, kept so each episode's factors apply to them and not to the last draw."""

    gear: np.ndarray
    damping: np.ndarray  # the model's own
    damping_base: np.ndarray  # what the factors multiply: a joint with none counts as ZERO_DAMPING
    mass: np.ndarray
    inertia: np.ndarray
    friction: np.ndarray
    solref: np.ndarray
    gravity: np.ndarray
    base_body: int

    @classmethod
    def of(cls, model, planar: bool) -> "Stock":
        damping = model.dof_damping.copy()
        base = damping.copy()
        base[base == 0] = ZERO_DAMPING
        return cls(model.actuator_gear[:, 0].copy(), damping, base, model.body_mass.copy(), model.body_inertia.copy(),
                   model.geom_friction.copy(), model.geom_solref.copy(), model.opt.gravity.copy(),
                   int(model.jnt_bodyid[0]))  # the floating (or planar) base: the body of the first joint


def apply_dynamics(model, stock: Stock, dyn: Dynamics, planar: bool) -> None:
    """Write one episode's dynamics into `model` (in place; runtime-changeable fields only)."""
    base_dofs = 3 if planar else 6
    model.actuator_gear[:, 0] = stock.gear * (dyn.strength if dyn.strength is not None else 1.0)
    damping = stock.damping.copy()
    if dyn.damping is not None:  # the base's dofs are not joints of the robot: never damped
        damping[base_dofs:] = stock.damping_base[base_dofs:] * dyn.damping[base_dofs:]
    model.dof_damping[:] = damping
    scale = dyn.mass if dyn.mass is not None else np.ones(len(stock.mass))
    scale = np.asarray(scale, dtype=float).copy()
    scale[0] = 1.0  # the world body
    model.body_mass[:] = stock.mass * scale
    model.body_inertia[:] = stock.inertia * scale[:, None]
    if dyn.payload:
        b = stock.base_body
        model.body_mass[b] += dyn.payload
        model.body_inertia[b] *= model.body_mass[b] / (stock.mass[b] * scale[b])
    model.geom_friction[:] = stock.friction
    if dyn.friction is not None:
        model.geom_friction[:, 0] = dyn.friction
    model.geom_solref[:] = stock.solref
    if dyn.restitution is not None:
        model.geom_solref[:, 1] = damping_ratio(dyn.restitution)
    g = float(np.linalg.norm(stock.gravity))
    theta = math.atan(dyn.slope)
    # walking up a grade: gravity leans back against the direction of travel (+x)
    model.opt.gravity[:] = [-g * math.sin(theta), 0.0, -g * math.cos(theta)]


# ------------------------------------------------------------------------------------------ held-out dynamics
HELD_OUT = {
    # outside every training range: a payload of 60% of the body's mass (training: none, links 0.5-1.5x), friction
    # 0.15 (training 0.3-2.0), motors at 70% (training 85-115%)
    "heavy": {"payload_fraction": 0.6},
    "slippery": {"friction": 0.15},
    "weak": {"strength": 0.7},
}
CONDITIONS = ("train", *HELD_OUT)


def held_out(dyn: Dynamics, condition: str, total_mass: float) -> Dynamics:
    """`dyn` (an in-distribution draw) with the held-out change of `condition` on top."""
    if condition == "train":
        return dyn
    if condition not in HELD_OUT:
        raise UserError(f"condition: {condition!r}: not one of {', '.join(CONDITIONS)}")
    change = HELD_OUT[condition]
    d = dataclasses.replace(dyn)
    if "payload_fraction" in change:
        d.payload = dyn.payload + change["payload_fraction"] * total_mass
    if "friction" in change:
        d.friction = change["friction"]
    if "strength" in change:
        d.strength = np.full(len(dyn.strength) if dyn.strength is not None else 1, change["strength"])
    return d
