"""The rows of the paper's table on the synthetic benchmark: which runs train, from which configs and
earlier runs, and which of them fuse by scores. Read by the table (`table.py`) and by the report's page
of a table folder (`report_pages.py`), so it imports nothing of either."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# the model_args key through which a stream starts from an earlier run's best.pt
_CHECKPOINT_ARG = {"scene": "scene_checkpoint", "strg": "scene_checkpoint", "stin": "stin_checkpoint"}


@dataclass(frozen=True)
class Stream:
    """One trained row: its config and the runs of the same seed it starts from (`needs`, trained first)."""

    key: str
    title: str
    config: str
    needs: tuple[str, ...] = ()

    def starts_from(self, runs: dict[str, Path]) -> list[str]:
        """The overrides that point this run at the checkpoints of the runs it needs."""
        return [f"model_args.{_CHECKPOINT_ARG[k]}={runs[k] / 'best.pt'}" for k in self.needs]


STREAMS = [
    Stream("stin", "STIN+OIE+NL (boxes)", "stin_oie_nl.yaml"),
    Stream("scene", "Scene stream (pixels)", "scene.yaml"),
    Stream("fusion", "STIN+OIE+NL + scene (feature fusion)", "fusion.yaml", needs=("scene", "stin")),
]
STRG_STREAMS = [
    Stream("strg", "STRG (regions of the scene trunk)", "strg.yaml", needs=("scene",)),
    Stream("fusion_strg", "STIN+OIE+NL + STRG (feature fusion)", "fusion_strg.yaml", needs=("strg", "stin")),
]
ENSEMBLES = {"ensemble": ("Scene, STIN+OIE+NL (score fusion)", ("scene", "stin")),
             "ensemble_strg": ("STRG, STIN+OIE+NL (score fusion)", ("strg", "stin"))}
# --full: the paper's detected-box setting (video.actions.detected_boxes), on the compositional split only: the
# detector trains on its training videos, which the shuffled split's validation side contains
TRACKED = Stream("stin_tracked", "STIN+OIE+NL (tracked boxes)", "stin_oie_nl.yaml")
TRACKED_SPLITS = ("compositional",)
ROW_ORDER = ["stin", "scene", "fusion", "ensemble", "strg", "fusion_strg", "ensemble_strg", "stin_tracked"]
