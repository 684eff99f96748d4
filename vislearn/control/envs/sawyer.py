"""A Meta-World task as a gymnasium environment with pixels and proprioception apart, as MVP's policies see it.

Observation (a dict):
- `pixels`: uint8 [H, W, 3] from a camera in front of the robot (`CAMERAS`), rendered with settings tuned for
  speed (`RenderSettings`: a 512 shadow map and no multisampling by default, 2-3x the default's frames/s);
- `proprio`: float32 [8]: the gripper's position and opening, now and one step before (the robot's own state;
  where the object and the goal are must come from the pixels);
- `state`: float64 [39]: Meta-World's full state with the goal (the state-based oracle and the scripted expert).

Rendering is skipped with `pixels=False` (state-only work: the oracle, the experts' checks, state PPO).
`reset(seed=s)` seeds the task's positions: one seed, one episode, on any machine of this kind."""
from __future__ import annotations

from dataclasses import dataclass, replace

import gymnasium as gym
import numpy as np

from . import gl
from .tasks import Task, get_task

PROPRIO_DIM = 8
STATE_DIM = 39
ACTION_DIM = 4
GOAL_RADIUS = 0.03  # Meta-World draws its goal as a 2 cm ball: at 64-128 px that is a pixel or two


@dataclass(frozen=True)
class Camera:
    """A free camera looking at `lookat` (MuJoCo's azimuth / elevation in degrees, distance in metres)."""

    lookat: tuple[float, float, float]
    distance: float
    azimuth: float
    elevation: float


CAMERAS = {
    # facing the robot over the table: gripper, object and goal in view on every task
    "front": Camera((0.0, 0.65, 0.1), 1.1, -90.0, -35.0),
    # from above and in front: the table's plane, the drawer's pull
    "top": Camera((0.0, 0.7, 0.0), 1.3, -90.0, -70.0),
}


@dataclass(frozen=True)
class RenderSettings:
    size: int = 96
    camera: str = "front"
    shadows: str = "fast"  # "fast": 512 shadow map, no multisampling; "default": MuJoCo's (4096, 4x); "off"

    def check(self) -> "RenderSettings":
        from vislearn.common.errors import UserError

        if self.camera not in CAMERAS:
            raise UserError(f"camera: unknown camera {self.camera!r}; choose one of {', '.join(CAMERAS)}")
        if self.shadows not in ("fast", "default", "off"):
            raise UserError(f"shadows: expected fast, default or off, got {self.shadows!r}")
        if not 16 <= self.size <= 1024:
            raise UserError(f"size: expected 16 to 1024 pixels, got {self.size}")
        return self


class Renderer:
    """Frames of one camera of one MuJoCo model; made on the first frame (a vector env's workers each own one)."""

    def __init__(self, model, settings: RenderSettings):
        import mujoco

        self.settings = settings.check()
        if settings.shadows == "fast":
            model.vis.quality.shadowsize = 512
            model.vis.quality.offsamples = 0
        self._model = model
        self._renderer = None
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        cam = CAMERAS[settings.camera]
        self._camera.lookat[:] = cam.lookat
        self._camera.distance, self._camera.azimuth, self._camera.elevation = cam.distance, cam.azimuth, cam.elevation

    def __call__(self, data) -> np.ndarray:
        import mujoco

        if self._renderer is None:
            self._renderer = gl.renderer(self._model, self.settings.size, self.settings.size)
            if self.settings.shadows == "off":
                self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        self._renderer.update_scene(data, camera=self._camera)
        return self._renderer.render().copy()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def _metaworld_env(task: Task):
    mujoco = gl.import_mujoco()
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    env = ALL_V3_ENVIRONMENTS[task.metaworld]()
    env._freeze_rand_vec = False  # positions drawn at each reset from the task's range, by env.np_random
    env.seeded_rand_vec = True
    env._set_task_called = True  # no benchmark task: the positions above stand for it
    env._partially_observable = False  # the goal in the state (the oracle's and the expert's input)
    if "sawyer_observation_space" in vars(env):
        del env.sawyer_observation_space  # cached with the goal's bounds at zero (as Meta-World's set_task does)
    env.max_path_length = task.horizon + 1  # our limit ends episodes; Meta-World's must not raise first
    goal = mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_SITE, "goal")
    if goal >= 0:
        env.model.site_size[goal][0] = GOAL_RADIUS
    return env


class SawyerTaskEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, task: str, pixels: bool = True, render: RenderSettings = RenderSettings(),
                 render_mode: str | None = None):
        self.task = get_task(task)
        self.render_mode = render_mode
        self._env = _metaworld_env(self.task)
        self.settings = render.check()
        self._pixels = pixels
        self._renderer = Renderer(self._env.model, self.settings) if pixels or render_mode else None
        spaces = {"proprio": gym.spaces.Box(-np.inf, np.inf, (PROPRIO_DIM,), np.float32),
                  "state": gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float64)}
        if pixels:
            s = self.settings.size
            spaces["pixels"] = gym.spaces.Box(0, 255, (s, s, 3), np.uint8)
        self._extra: dict[int, Renderer] = {}  # `frame(size)`'s renderers, by size
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self._t = 0

    def _obs(self, state: np.ndarray) -> dict:
        obs = {"proprio": np.concatenate([state[0:4], state[18:22]]).astype(np.float32),
               "state": np.asarray(state, dtype=np.float64)}
        if self._pixels:
            obs["pixels"] = self._renderer(self._env.data)
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        # the task's positions come from Meta-World's generator: seeded by `seed`, else by this env's own
        self._env.seed(int(seed) if seed is not None else int(self.np_random.integers(2**31)))
        state, _ = self._env.reset()
        self._t = 0
        return self._obs(state), {"success": False}

    def step(self, action):
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        state, reward, _, _, info = self._env.step(a)
        self._t += 1
        success = bool(info.get("success", 0.0))
        obs = self._obs(state)
        return obs, float(reward), success, self._t >= self.task.horizon and not success, {"success": success}

    def render(self):
        return self._renderer(self._env.data) if self._renderer is not None else None

    def frame(self, size: int) -> np.ndarray:
        """The scene now at `size` pixels, same camera and settings, apart from the observations' frames: a video
        at another size than the policy's input (`vislearn control record`), which still sees its own."""
        if size not in self._extra:
            self._extra[size] = Renderer(self._env.model, replace(self.settings, size=size))
        return self._extra[size](self._env.data)

    def close(self):
        for r in [self._renderer, *self._extra.values()]:
            if r is not None:
                r.close()
        self._env.close()
