"""The manipulation tasks (PixMC's family at our scale) on Meta-World's Sawyer arm, which ships its MuJoCo models
and a scripted expert for each task (`metaworld` 3.1.1; `mujoco-menagerie` ships no models and PixMC needs Isaac Gym).

Each task is a Meta-World v3 environment with its positions drawn anew at every reset from the task's own range
(Meta-World's benchmark otherwise fixes 50 of them), an episode limit, and Meta-World's success test (a distance
under a threshold: the hand to the goal for reach, the object to the goal for push and pick-place, the drawer
opened far enough)."""
from __future__ import annotations

from dataclasses import dataclass

from vislearn.common.errors import UserError

# Seeds, in one place so that demonstrations never share an episode with an evaluation: evaluation episode i runs
# seed EVAL_SEEDS + i; demonstrations of `demos --seed k` draw seeds DEMO_SEEDS + k * DEMO_SEED_STRIDE + j, j = 0, 1,
# ... (failed expert episodes skipped). 100,000 seeds per demo seed and 1,000,000 evaluation seeds before them.
EVAL_SEEDS = 0
DEMO_SEEDS = 1_000_000
DEMO_SEED_STRIDE = 100_000


def demo_seed_base(seed: int = 0) -> int:
    """The first environment seed of the demonstrations drawn with `--seed seed`."""
    return DEMO_SEEDS + int(seed) * DEMO_SEED_STRIDE


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
