"""matplotlib without a display, and figures written atomically (a killed run leaves the old PNG or the new one)."""
from __future__ import annotations

import os
from pathlib import Path

from .files import atomic_path


def pyplot():
    """`matplotlib.pyplot` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out: str | os.PathLike, dpi: int = 110) -> Path:
    """Write `fig` as a PNG at `out` atomically, and close it."""
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    pyplot().close(fig)
    return Path(out)
