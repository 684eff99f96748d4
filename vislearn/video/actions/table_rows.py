"""The rows of the paper's table on the synthetic benchmark: which runs train, from which configs and
earlier runs, and which of them fuse by scores. Read by the table (`table.py`) and by the report's page
of a table folder (`report_pages.py`), so it imports nothing of either."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vislearn.common.paths import config_dir

from .config import TrainConfig, load_config

# the model_args key through which a stream starts from an earlier run's best.pt
_CHECKPOINT_ARG = {"scene": "scene_checkpoint", "strg": "scene_checkpoint", "stin": "stin_checkpoint"}


def run_config(config: str, overrides: list[str]) -> TrainConfig:
    """A row's run configuration: its file in configs/video/synthetic with the table's overrides."""
    return load_config(config_dir("video") / "synthetic" / config, overrides)


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
# --full: the paper's way of training fusion, both streams fine-tuned with the head
JOINT_STREAMS = [
    Stream("fusion_joint", "STIN+OIE+NL + scene (feature fusion, joint fine-tuning)", "fusion_joint.yaml",
           needs=("scene", "stin")),
]
# streams cross-fitted in K folds (--folds): out-of-fold scores and features for the learned combinations
CROSSFIT_KEYS = ("stin", "scene")
# --full: streams run on the 2 compositional folds only (from the scene stream's fold runs), for the score
# ensembles' weights: STRG's 5 folds would cost 5 x 15 minutes per seed
COMPOSITIONAL_ONLY_KEYS = ("strg",)
STRG_STREAMS = [
    Stream("strg", "STRG (regions of the scene trunk)", "strg.yaml", needs=("scene",)),
    Stream("fusion_strg", "STIN+OIE+NL + STRG (feature fusion)", "fusion_strg.yaml", needs=("strg", "stin")),
]
ENSEMBLES = {"ensemble": ("Scene, STIN+OIE+NL (score fusion)", ("scene", "stin")),
             "ensemble_strg": ("STRG, STIN+OIE+NL (score fusion)", ("strg", "stin")),
             "ensemble_tracked": ("Scene, STIN+OIE+NL tracked (score fusion)", ("scene", "stin_tracked"))}
# score ensembles whose per-stream weights are fitted on out-of-fold scores (video.actions.combine)
FITTED = {"ensemble_fit": ("Scene, STIN+OIE+NL (score fusion, weights fitted out of fold)", ("scene", "stin")),
          "ensemble_strg_fit": ("STRG, STIN+OIE+NL (score fusion, weights fitted out of fold)", ("strg", "stin")),
          "ensemble_tracked_fit": ("Scene, STIN+OIE+NL tracked (score fusion, weights fitted out of fold)",
                                   ("scene", "stin_tracked")),
          "ensemble_strg_tracked_fit": ("STRG, STIN+OIE+NL tracked (score fusion, weights fitted out of fold)",
                                        ("strg", "stin_tracked"))}
CROSSFIT_FUSION = ("fusion_crossfit", "STIN+OIE+NL + scene (feature fusion, cross-fitted head)")
# the same head on STIN's fold models alone (its job fits both): what the fold average gives without the scene stream
CROSSFIT_ALONE = ("stin_crossfit", "STIN+OIE+NL, fold models alone (the cross-fitted head, no fusion)")
# --full: STRG with those fold models (table_crossfit.fold_average_ensemble), the weights fitted on STRG's held-out
# slice: STRG is not cross-fitted (5 x 19 minutes per seed), so this is the STRG + STIN counterpart of that row
STRG_FOLD_AVERAGE = ("ensemble_strg_crossfit", "STRG, STIN+OIE+NL fold models (score fusion, weights fitted out of fold)")
# --full: the paper's detected-box setting (video.actions.detected_boxes), on the compositional split only: the
# detector trains on its training videos, which the shuffled split's validation side contains
# trained on each training video's tracks and its ground-truth boxes (`train_boxes_also`; `--tracked-training tracks`:
# on the tracks only, the paper's protocol), evaluated on the validation videos' tracks
TRACKED = Stream("stin_tracked", "STIN+OIE+NL (tracked boxes)", "stin_oie_nl.yaml")
TRACKED_SPLITS = ("compositional",)
# the paper's combination rows are measured with detected boxes: the same ensembles with the tracked-box STIN
# (its weights from the runs' held-out slices: the tracked stream is not cross-fitted)
TRACKED_ENSEMBLES, TRACKED_FITTED = ["ensemble_tracked"], ["ensemble_tracked_fit", "ensemble_strg_tracked_fit"]
ROW_ORDER = ["stin", "scene", "fusion", "fusion_joint", "stin_crossfit", "fusion_crossfit", "ensemble", "ensemble_fit",
             "strg", "fusion_strg", "ensemble_strg", "ensemble_strg_fit", "ensemble_strg_crossfit", "stin_tracked",
             "ensemble_tracked", "ensemble_tracked_fit", "ensemble_strg_tracked_fit"]
PIXEL_KEYS = ("scene", "fusion", "fusion_joint", "strg", "fusion_strg")  # runs that read the frame-feature cache
