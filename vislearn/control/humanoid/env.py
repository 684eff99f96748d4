"""Many robots stepped in one process (`LocoEnvs`): per-episode randomised dynamics, velocity commands, the
observation pipeline a real robot has (noise, latency, encoder offsets), PD or torque control, and the privileged
state the teacher and the critic see.

Per step each environment returns
  obs   the policy's token: base angular velocity and gravity direction (an IMU), joint angles and velocities (as
        the encoders read them: offset, noisy, `latency` old), the velocity command, and the previous action;
  priv  the teacher's and critic's input: the same, clean and current, plus base linear velocity and height, foot
        contacts and the episode's dynamics (12 numbers).
Episodes end on a fall (terminated) or after `episode_seconds` (truncated); a finished environment is reset at once
with its next seed, and the step returns the new episode's first observation (the last one's privileged state is
kept in `final_priv` for bootstrapping). Everything an episode draws comes from its seed, so the same seed gives
the same rollout, and `state()` / `restore()` put every environment back exactly (a resumed run continues as if
never stopped)."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np

from vislearn.common.errors import UserError

from .randomization import (PRIVILEGED_DYN, NOISE_STD, Dynamics, Randomization, Stock, apply_dynamics, held_out,
                            sample_dynamics)
from .robots import Robot, compile_robot, get_robot, joint_slices, rough_heights

TRACK_SIGMA2 = 0.25  # tracking reward exp(-(v - command)^2 / sigma^2): the default (legged_gym's); `track_sigma2`


@dataclass
class EnvSettings:
    robot: str = "walker2d"
    control: str = "torque"  # torque | pd
    pd_kp: float = 5.0  # PD: control units per radian of error (times each motor's gear: N m/rad = kp x gear)
    pd_kd: float = 0.1
    action_scale: float = 0.5  # PD: target = standing pose + action_scale x action (radians)
    episode_seconds: float = 20.0
    command: list | None = None  # forward velocity range (m/s); None: the robot's
    track_weight: float = 2.0
    track_sigma2: float = TRACK_SIGMA2
    alive_weight: float = 0.5


class LocoEnvs:
    """`n` environments of one robot in this process."""

    def __init__(self, settings: EnvSettings, n: int, rand: Randomization,
                 seed_of: Callable[[int, int], int], robot: Robot | None = None):
        import mujoco

        if settings.control not in ("torque", "pd"):
            raise UserError(f"control: {settings.control!r}: expected torque or pd")
        self.mj = mujoco
        self.settings, self.n, self.rand, self.seed_of = settings, n, rand, seed_of
        self.robot = robot or get_robot(settings.robot)
        base = compile_robot(self.robot, rand.rough)
        self.planar = self.robot.planar
        self.models = [copy.copy(base) for _ in range(n)]
        self.datas = [mujoco.MjData(m) for m in self.models]
        self.stock = Stock.of(base, self.planar)
        self.qs, self.vs = joint_slices(base, self.planar)
        self.n_joints = base.nq - self.qs.start
        self.n_act = base.nu
        self.control_dt = base.opt.timestep * self.robot.frame_skip
        self.max_steps = int(round(settings.episode_seconds / self.control_dt))
        self.command_range = tuple(settings.command or self.robot.command)
        self.total_mass = float(base.body_mass.sum())
        # actuators: the joint each drives (its qpos / qvel address) and the control range
        jnt = base.actuator_trnid[:, 0]
        self.act_q = base.jnt_qposadr[jnt] - self.qs.start
        self.act_v = base.jnt_dofadr[jnt] - self.vs.start
        self.ctrl_lo, self.ctrl_hi = base.actuator_ctrlrange[:, 0].copy(), base.actuator_ctrlrange[:, 1].copy()
        self.stand = base.qpos0[self.qs].copy()
        self.feet = [b for b in range(base.nbody) if any(k in (base.body(b).name or "").lower()
                                                        for k in ("foot", "ankle"))][:4]
        self.imu_dim = 3 if self.planar else 6  # planar: pitch rate, sin/cos pitch; free: angular velocity, gravity
        self.sensor_dim = self.imu_dim + 2 * self.n_joints
        imu_std = [NOISE_STD["ang_vel"]] + [NOISE_STD["gravity"]] * 2 if self.planar else \
            [NOISE_STD["ang_vel"]] * 3 + [NOISE_STD["gravity"]] * 3
        self.noise_std = np.array(imu_std + [NOISE_STD["joint_pos"]] * self.n_joints
                                  + [NOISE_STD["joint_vel"]] * self.n_joints)  # per sensor channel, times `noise`
        self.obs_dim = self.sensor_dim + 1 + self.n_act
        self.priv_dim = self.obs_dim + (2 if self.planar else 3) + 1 + len(self.feet) + PRIVILEGED_DYN
        self.max_latency = int(round(max(rand.latency) / self.control_dt)) if rand.enabled else 0
        # per-environment episode state
        self.rngs = [np.random.default_rng(0) for _ in range(n)]
        self.dyn = [Dynamics() for _ in range(n)]
        self.episode = np.zeros(n, dtype=np.int64)  # episodes started by each environment
        self.seeds = np.zeros(n, dtype=np.int64)
        self.t = np.zeros(n, dtype=np.int64)
        self.ret = np.zeros(n)
        self.err = np.zeros(n)  # summed |velocity - command|
        self.command = np.zeros(n)
        self.prev_action = np.zeros((n, self.n_act))
        self.ring = np.zeros((n, self.max_latency + 1, self.sensor_dim))  # clean sensor readings, newest last
        self.obs = np.zeros((n, self.obs_dim), dtype=np.float32)
        self.priv = np.zeros((n, self.priv_dim), dtype=np.float32)
        self.condition = ["train"] * n
        self.dyn_priv = np.zeros((n, PRIVILEGED_DYN), dtype=np.float32)
        self.last_velocity = np.zeros(n)  # of the last step (before any reset): evaluation traces, record's overlay
        self.last_command = np.zeros(n)

    # ----------------------------------------------------------------------------------------------- episodes
    def start(self) -> None:
        for i in range(self.n):
            self.reset(i)

    def reset(self, i: int, seed: int | None = None) -> None:
        """Start environment i's next episode (or the one of `seed`): draw dynamics, terrain, command, pose."""
        if seed is None:
            seed = self.seed_of(i, int(self.episode[i]))
            self.episode[i] += 1
        self.seeds[i] = seed
        rng = self.rngs[i] = np.random.default_rng(int(seed))
        m, d = self.models[i], self.datas[i]
        dyn = sample_dynamics(self.rand, rng, self.n_joints, self.n_act, m.nv, m.nbody, self.control_dt)
        dyn = held_out(dyn, self.condition[i], self.total_mass)
        self._set_dynamics(i, dyn)
        if self.rand.rough:  # the model has a height field: bumps this episode, or flat
            if dyn.terrain == "rough":
                m.hfield_data[:] = rough_heights(np.random.default_rng([int(seed), 1]), int(m.hfield_nrow[0]),
                                                 int(m.hfield_ncol[0]), self.rand.rough_height).reshape(-1)
            else:
                m.hfield_data[:] = 0.0
            m.hfield_size[0, 2] = max(self.rand.rough_height, 1e-3)
        self.mj.mj_resetData(m, d)
        d.qpos[:] = m.qpos0 + rng.uniform(-0.005, 0.005, size=m.nq)
        d.qvel[:] = rng.uniform(-0.005, 0.005, size=m.nv)
        if not self.planar:
            d.qpos[3:7] = m.qpos0[3:7]
        self.mj.mj_forward(m, d)
        self.command[i] = rng.uniform(*self.command_range)
        self.t[i], self.ret[i], self.err[i] = 0, 0.0, 0.0
        self.prev_action[i] = 0.0
        self.ring[i] = self._sensors(i)[None]
        self._observe(i)

    def _set_dynamics(self, i: int, dyn: Dynamics) -> None:
        self.dyn[i] = dyn
        self.dyn_priv[i] = dyn.privileged()
        apply_dynamics(self.models[i], self.stock, dyn, self.planar)

    def change_dynamics(self, i: int, condition: str) -> None:
        """Mid-episode: environment i's dynamics become `condition`'s (the adaptation test), state untouched."""
        self._set_dynamics(i, held_out(self.dyn[i], condition, self.total_mass))

    # ----------------------------------------------------------------------------------------------- sensing
    def _sensors(self, i: int) -> np.ndarray:
        """Clean IMU and joint readings (encoder offsets included: they are what the encoder reads)."""
        d = self.datas[i]
        if self.planar:
            pitch = d.qpos[2]
            imu = [d.qvel[2], np.sin(pitch), np.cos(pitch)]
        else:
            q = d.qpos[3:7]
            grav = np.zeros(3)
            self.mj.mju_rotVecQuat(grav, np.array([0.0, 0.0, -1.0]), _conj(q))
            imu = [*d.qvel[3:6], *grav]
        jp = d.qpos[self.qs] - self.stand
        off = self.dyn[i].motor_offset
        if off is not None:
            jp = jp + off
        return np.concatenate([imu, jp, d.qvel[self.vs]])

    def _observe(self, i: int) -> None:
        dyn, d = self.dyn[i], self.datas[i]
        clean = self.ring[i, -1]
        seen = self.ring[i, -1 - min(dyn.latency_steps, self.max_latency)]
        if dyn.noise:
            seen = seen + self.rngs[i].normal(0.0, 1.0, size=seen.shape) * self.noise_std * dyn.noise
        cmd = [self.command[i]]
        self.obs[i] = np.concatenate([seen, cmd, self.prev_action[i]])
        vel = d.qvel[:2] if self.planar else d.qvel[:3]
        height = d.qpos[1] if self.planar else d.qpos[2]
        self.priv[i] = np.concatenate([clean, cmd, self.prev_action[i], vel, [height], self._contacts(i),
                                       self.dyn_priv[i]])

    def _contacts(self, i: int) -> np.ndarray:
        d, m = self.datas[i], self.models[i]
        flags = np.zeros(len(self.feet))
        if self.feet and d.ncon:
            bodies = m.geom_bodyid[np.concatenate([d.contact.geom1[:d.ncon], d.contact.geom2[:d.ncon]])]
            for k, b in enumerate(self.feet):
                flags[k] = float(b in bodies)
        return flags

    # ----------------------------------------------------------------------------------------------- acting
    def _ctrl(self, i: int, a: np.ndarray) -> np.ndarray:
        if self.settings.control == "torque":
            return self.ctrl_lo + (a + 1.0) * 0.5 * (self.ctrl_hi - self.ctrl_lo)
        d, dyn = self.datas[i], self.dyn[i]
        q = d.qpos[self.qs][self.act_q] - self.stand[self.act_q]
        if dyn.motor_offset is not None:
            q = q + dyn.motor_offset[self.act_q]
        qd = d.qvel[self.vs][self.act_v]
        kp = self.settings.pd_kp * (dyn.kp if dyn.kp is not None else 1.0)
        kd = self.settings.pd_kd * (dyn.kd if dyn.kd is not None else 1.0)
        return np.clip(kp * (self.settings.action_scale * a - q) - kd * qd, self.ctrl_lo, self.ctrl_hi)

    def fallen(self, i: int) -> bool:
        d = self.datas[i]
        if self.planar:
            return bool(d.qpos[1] < self.robot.min_height or abs(d.qpos[2]) > self.robot.max_tilt)
        q = d.qpos[3:7]
        up_z = 1.0 - 2.0 * (q[1] ** 2 + q[2] ** 2)  # the body's z axis, in world z
        return bool(d.qpos[2] < self.robot.min_height or up_z < np.cos(self.robot.max_tilt))

    def forward_velocity(self, i: int) -> float:
        return float(self.datas[i].qvel[0])

    def step(self, actions: np.ndarray):
        """Apply actions [n, n_act] in [-1, 1]; returns (reward [n], terminated [n], truncated [n], finished
        episodes [(env, seed, return, length, fell, mean |v - command|)]). A finished environment starts its next
        episode; `final_priv` holds the privileged state it ended in."""
        actions = np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0)
        reward = np.zeros(self.n)
        term = np.zeros(self.n, dtype=bool)
        trunc = np.zeros(self.n, dtype=bool)
        self.final_priv = self.priv.copy()
        finished = []
        for i in range(self.n):
            m, d, a = self.models[i], self.datas[i], actions[i]
            pd = self.settings.control == "pd"
            d.ctrl[:] = self._ctrl(i, a)
            for k in range(self.robot.frame_skip):
                if pd and k:  # PD torques follow the joints every physics step; torques are held
                    d.ctrl[:] = self._ctrl(i, a)
                self.mj.mj_step(m, d)
            self.prev_action[i] = a
            self.t[i] += 1
            v = self.forward_velocity(i)
            err = abs(v - self.command[i])
            self.last_velocity[i], self.last_command[i] = v, self.command[i]
            r = self.settings.track_weight * np.exp(-err ** 2 / self.settings.track_sigma2) + self.settings.alive_weight \
                - self.robot.ctrl_cost * float(np.sum(a ** 2))
            if not self.planar and self.robot.lateral_cost:
                r -= self.robot.lateral_cost * float(d.qvel[1] ** 2 + d.qvel[5] ** 2)
            fell = self.fallen(i)
            term[i] = fell
            trunc[i] = not fell and self.t[i] >= self.max_steps
            reward[i] = r
            self.ret[i] += r
            self.err[i] += err
            self.ring[i, :-1] = self.ring[i, 1:].copy()
            self.ring[i, -1] = self._sensors(i)
            self._observe(i)
            if term[i] or trunc[i]:
                self.final_priv[i] = self.priv[i]
                finished.append((i, int(self.seeds[i]), float(self.ret[i]), int(self.t[i]), bool(fell),
                                 float(self.err[i] / self.t[i])))
                self.reset(i)
        return reward, term, trunc, finished

    # ----------------------------------------------------------------------------------------------- resume
    def state(self) -> dict:
        """Everything needed to put the environments back exactly (physics, each episode's RNG, sensor ring)."""
        full = self.mj.mjtState.mjSTATE_INTEGRATION
        phys = []
        for m, d in zip(self.models, self.datas):
            s = np.zeros(self.mj.mj_stateSize(m, full))
            self.mj.mj_getState(m, d, s, full)
            phys.append(s)
        return {"physics": np.stack(phys), "rng": [r.bit_generator.state for r in self.rngs],
                "episode": self.episode.copy(), "seeds": self.seeds.copy(), "t": self.t.copy(), "ret": self.ret.copy(),
                "err": self.err.copy(), "command": self.command.copy(), "prev_action": self.prev_action.copy(),
                "ring": self.ring.copy(), "condition": list(self.condition), "obs": self.obs.copy(),
                "priv": self.priv.copy()}

    def restore(self, st: dict) -> None:
        full = self.mj.mjtState.mjSTATE_INTEGRATION
        self.condition = list(st["condition"])
        for i in range(self.n):
            self.reset(i, seed=int(st["seeds"][i]))  # the episode's dynamics and terrain, drawn again from its seed
            # the saved integration state, solver warm start included (no mj_forward after it: that would rewrite the
            # warm start, and the resumed physics would drift from the saved run's at the last bits); the
            # observations are restored below as they were returned, and the next mj_step recomputes the rest
            self.mj.mj_setState(self.models[i], self.datas[i], np.asarray(st["physics"][i]), full)
            self.rngs[i].bit_generator.state = st["rng"][i]
        for k in ("episode", "seeds", "t", "ret", "err", "command", "prev_action", "ring", "obs", "priv"):
            getattr(self, k)[...] = st[k]  # obs as last returned (its noise was drawn then)

    def close(self) -> None:
        pass


def _conj(q: np.ndarray) -> np.ndarray:
    return np.array([q[0], -q[1], -q[2], -q[3]])
