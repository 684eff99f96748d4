"""The manipulation tasks (PixMC's family at our scale) on Meta-World's Sawyer arm, which ships its MuJoCo models
and a scripted expert for each task (`metaworld` 3.1.1; `mujoco-menagerie` ships no models and PixMC needs Isaac Gym).

Each task is a Meta-World v3 environment with its positions drawn anew at every reset from the task's own range
(Meta-World's benchmark otherwise fixes 50 of them), an episode limit, and Meta-World's success test (a distance
under a threshold: the hand to the goal for reach, the object to the goal for push and pick-place, the drawer
opened far enough)."""
from __future__ import annotations

from dataclasses import dataclass

from vislearn.common.errors import UserError


@dataclass(frozen=True)
class Task:
    name: str
    metaworld: str  # the Meta-World v3 environment
    horizon: int  # steps per episode (the experts need at most ~100: docs/control.md)
    what: str


TASKS = {t.name: t for t in (
    Task("reach", "reach-v3", 100, "move the gripper to the goal (a red ball)"),
    Task("push", "push-v3", 150, "push the puck to the goal (a green ball on the table)"),
    Task("pick-place", "pick-place-v3", 150, "pick the puck up and hold it at the goal (a blue ball in the air)"),
    Task("drawer-open", "drawer-open-v3", 150, "pull the drawer open"),
)}


def get_task(name: str, where: str = "task") -> Task:
    if name not in TASKS:
        raise UserError(f"{where}: unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name]
