"""Where the project's own files are: the YAML run configs live in `configs/<family>/` at the top of the
checkout (beside `vislearn/`), and the package is installed from the checkout in editable mode
(`make venv`), so they are found from here. A copy installed without its checkout has no configs; the
commands that need one say so in one line."""
from __future__ import annotations

from pathlib import Path

from .errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "configs"


def config_dir(family: str) -> Path:
    """`configs/<family>`; a UserError when the checkout's configs are not beside the package."""
    folder = CONFIG_DIR / family
    if not folder.is_dir():
        raise UserError(f"{folder}: the run configs of family {family!r} are not here "
                        f"(install vislearn from its checkout with `make venv`)")
    return folder
