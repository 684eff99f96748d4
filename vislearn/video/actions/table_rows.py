"""The rows of the paper's table on the synthetic benchmark: which runs train, from which configs
and earlier runs, and which of them fuse by scores. Read by the table (`table.py`) and by the report's
page of a table folder (`report_pages.py`), so it imports nothing of either."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class Stream:
    """One trained row: its config and the checkpoints it starts from (runs of the same seed)."""

    key: str
    title: str
    config: str
    starts_from: Callable[[dict[str, Path]], list[str]]


STREAMS = [
    Stream("stin", "STIN+OIE+NL (boxes)", "stin_oie_nl.yaml", lambda runs: []),
    Stream("scene", "Scene stream (pixels)", "scene.yaml", lambda runs: []),
    Stream("fusion", "STIN+OIE+NL + scene (feature fusion)", "fusion.yaml",
           lambda runs: [f"model_args.scene_checkpoint={runs['scene'] / 'best.pt'}",
                         f"model_args.stin_checkpoint={runs['stin'] / 'best.pt'}"]),
]
STRG_STREAMS = [
    Stream("strg", "STRG (regions of the scene trunk)", "strg.yaml",
           lambda runs: [f"model_args.scene_checkpoint={runs['scene'] / 'best.pt'}"]),
    Stream("fusion_strg", "STIN+OIE+NL + STRG (feature fusion)", "fusion_strg.yaml",
           lambda runs: [f"model_args.scene_checkpoint={runs['strg'] / 'best.pt'}",
                         f"model_args.stin_checkpoint={runs['stin'] / 'best.pt'}"]),
]
ENSEMBLES = {"ensemble": ("Scene, STIN+OIE+NL (score fusion)", ("scene", "stin")),
             "ensemble_strg": ("STRG, STIN+OIE+NL (score fusion)", ("strg", "stin"))}
# --full: the paper's detected-box setting (actions.detected_boxes), on the compositional split only: the
# detector trains on its training videos, which the shuffled split's validation side contains
TRACKED = Stream("stin_tracked", "STIN+OIE+NL (tracked boxes)", "stin_oie_nl.yaml", lambda runs: [])
TRACKED_SPLITS = ("compositional",)
ROW_ORDER = ["stin", "scene", "fusion", "ensemble", "strg", "fusion_strg", "ensemble_strg", "stin_tracked"]
