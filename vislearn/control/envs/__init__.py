"""The simulator layer of `vislearn.control`: MuJoCo tasks as gymnasium environments (pixels and proprioception
apart, seeded), their scripted experts, vector environments over processes, and the OpenGL backend choice.

`gl.choose_gl()` runs first, here: MuJoCo reads `MUJOCO_GL` once, when it is imported."""
from __future__ import annotations

from .gl import choose_gl

choose_gl()

from .experts import ScriptedExpert  # noqa: E402
from .sawyer import ACTION_DIM, CAMERAS, PROPRIO_DIM, STATE_DIM, RenderSettings, SawyerTaskEnv  # noqa: E402
from .tasks import TASKS, Task, get_task  # noqa: E402
from .vector import Episode, make_vector_env, run_episodes  # noqa: E402

__all__ = ["ACTION_DIM", "CAMERAS", "PROPRIO_DIM", "STATE_DIM", "TASKS", "Episode", "RenderSettings",
           "SawyerTaskEnv", "ScriptedExpert", "Task", "choose_gl", "get_task", "make_vector_env", "run_episodes"]
