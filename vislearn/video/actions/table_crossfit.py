"""The table's learned combinations: score ensembles with weights fitted out of fold, and the cross-fitted
feature fusion head (`combine`), from the fold runs and held-out slices of `crossfit`.

Where the out-of-fold scores come from, per ensemble: the K fold runs when every stream of it was
cross-fitted (`--folds`), else the held-out slice each run kept to choose its checkpoint. The few-shot
ensemble takes its weights from the base models on the base classes by the same rule and applies them to
the novel-class scores: nothing about the novel classes' validation videos is looked at.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vislearn.common.errors import UserError
from vislearn.common.jsonio import read_json, write_json
from vislearn.video.data.split_layout import VALIDATION, split_files
from vislearn.video.data.ssv2 import class_names, load_labels, load_records

from .checkpoints import load_model_checkpoint, model_from_checkpoint
from .combine import fit_crossfit_head, fit_pool_weights, log_scores, pool, predict_crossfit
from .crossfit import Scores, common_ids, held_out_scores, out_of_fold, read_scores
from .distributed import pick_device
from .evaluate import save_scores
from .metrics import summarize, topk_accuracy
from .models import fuse_scores
from .table_rows import run_config


def fold_folders(folds: Path) -> list[Path]:
    """folds/fold<i>/split in fold order (empty when the streams were not cross-fitted)."""
    return sorted(folds.glob("fold*/split"), key=lambda p: int(p.parent.name[4:]))


def finished_folds(root: Path, keys, where: str) -> list[Path]:
    """The fold split folders of root/<where> when every stream in `keys` has a finished run on each, else []."""
    folds = root / where
    folders = fold_folders(folds)
    done = all((folds / k / f.parent.name / "scores.npz").is_file() for k in keys for f in folders)
    return folders if folders and done else []


def oof_parts(root: Path, keys: tuple[str, ...], where: str) -> tuple[list[Scores], str]:
    """Out-of-fold scores of each stream over the same training videos, and which rule gave them: the fold
    runs in root/<where> when every stream has them, else the runs' held-out slice."""
    folds = root / where
    folders = finished_folds(root, keys, where)
    if folders:
        parts = [out_of_fold([folds / k / f.parent.name for f in folders], folders) for k in keys]
        rule = f"{len(folders)}-fold cross-fitting ({where})"
    else:
        parts, rule = [held_out_scores(root / k) for k in keys], "the runs' held-out slice of training"
    ids = common_ids(parts)
    return [p.take(ids) for p in parts], rule


def fit_weights(root: Path, keys: tuple[str, ...], where: str) -> dict:
    """Per-stream weights of the log-linear pool fitted on the streams' out-of-fold scores."""
    parts, rule = oof_parts(root, keys, where)
    w, fit = fit_pool_weights(log_scores(parts), parts[0].labels)
    return {"weights": {k: float(v) for k, v in zip(keys, w)}, "rule": rule, **fit}


def aligned(files: list[Path]) -> list[Scores]:
    """Several scores.npz over the videos they have in common, in one order (their labels must agree)."""
    parts = [read_scores(f) for f in files]
    ids = common_ids(parts)
    return [p.take(ids) for p in parts]


def top1_top5(probs: np.ndarray, labels: np.ndarray) -> dict:
    return {"top1": topk_accuracy(probs, labels, 1), "top5": topk_accuracy(probs, labels, 5), "videos": len(labels)}


def fused(files: list[Path]) -> dict:
    """Top-1/top-5 of the equal-weight mean of several runs' softmax scores (the paper's score-fusion rows)."""
    parts = aligned(files)
    return top1_top5(fuse_scores([p.scores for p in parts], probabilities=True).numpy(), parts[0].labels)


def pooled(files: list[Path], weights: list[float]) -> dict:
    """Top-1/top-5 of the weighted log-linear pool of several scores.npz (videos in common)."""
    parts = aligned(files)
    return top1_top5(pool(log_scores(parts), np.asarray(weights)), parts[0].labels)


def fitted_ensemble(root: Path, keys: tuple[str, ...], where: str) -> dict:
    """The validation top-1/top-5 of the pool with weights fitted out of fold, and the fit."""
    fit = fit_weights(root, keys, where)
    return {**pooled([root / k / "scores.npz" for k in keys], list(fit["weights"].values())), "fit": fit}


def fitted_fewshot(root: Path, keys: tuple[str, ...], shots: list[int], where: str) -> dict:
    """Few-shot: weights fitted on the base models' out-of-fold scores (base classes), applied to the
    fine-tuned novel-class scores of every draw. {"base": top-1, "shots": {k: [top-1 per draw]}, "fit": ...}."""
    fit = fit_weights(root, keys, where)
    w = list(fit["weights"].values())
    out = {"base": pooled([root / k / "scores.npz" for k in keys], w)["top1"], "shots": {}, "fit": fit}
    a, *rest = keys
    for k in shots:
        stages = sorted((root / a / "finetune" / f"{k}shot").glob("draw_*"))
        out["shots"][k] = [pooled([st / "scores.npz", *(root / b / "finetune" / f"{k}shot" / st.name / "scores.npz"
                                                        for b in rest)], w)["top1"] for st in stages]
    return out


def stream_selection(select: tuple[str, list[str], str]) -> dict:
    """Which streams after the first may enter the fusion head: those whose weight in the log-linear pool,
    fitted on the out-of-fold scores of the fold runs root/<where>/<key> (`select` = (root, keys, where)), is
    above 0. Scores, unlike features, mean the same from any fold model, so folds too small for the head
    (the 2 compositional ones: half the videos each) can still say whether a stream adds anything."""
    root, keys, where = Path(select[0]), tuple(select[1]), select[2]
    if not finished_folds(root, keys, where):
        raise UserError(f"{root / where}: the fold runs that choose the fusion head's streams are missing")
    fit = fit_weights(root, keys, where)
    others = list(fit["weights"].values())[1:]
    return {"weights": fit["weights"], "rule": fit["rule"], "others_kept": bool(any(w > 0 for w in others))}


# beside the cross-fitted head's scores.npz: the same head on the first stream's fold models alone, on the validation
# videos, and its leave-one-fold-out scores on the training videos (what an ensemble on top of it fits its weights on)
FIRST_STREAM_SCORES = "first_stream_scores.npz"
FIRST_STREAM_OOF_SCORES = "first_stream_oof_scores.npz"


def crossfit_fusion_job(streams: list[tuple[str, list[list[str]]]], folds: list[str], split: str, out: str,
                        seed: int, select: tuple[str, list[str], str] | None = None) -> dict:
    """The cross-fitted feature fusion of one (split, seed) (a worker process's job): features of every fold
    model on its own fold and on the validation videos, the head fitted on the out-of-fold rows, validation
    scored by the mean over folds. `streams`: (config, [overrides of fold i]) per stream. With `select`, the
    streams after the first enter the head only where `stream_selection` keeps them; when it keeps none, their
    features are not computed and the head is the first stream's alone (scale 0). The same head on the first
    stream alone is fitted too ("first_stream_alone", FIRST_STREAM_SCORES and FIRST_STREAM_OOF_SCORES). Writes
    out/{scores.npz, results.json}; a finished one with the same selection is read back."""
    out_dir = Path(out)
    selection = stream_selection(select) if select and len(streams) > 1 else None
    files_done = all((out_dir / n).is_file() for n in ("results.json", "scores.npz", FIRST_STREAM_SCORES,
                                                        FIRST_STREAM_OOF_SCORES))
    if files_done:
        done = read_json(out_dir / "results.json")
        # else a head from before the scales, or fitted without (or with another) stream selection
        if len(streams) < 2 or ("other_streams_scale" in done.get("head", {}) and done.get("selection") == selection
                                and "first_stream_alone" in done):
            return done
    from .fewshot import penultimate_features

    files = split_files(split)
    labels = load_labels(files.labels)
    names = class_names(labels)
    evaluated = load_records(files.sets["validation"], labels)
    used = streams[:1] if selection is not None and not selection["others_kept"] else streams
    x_oof, y_oof, groups, x_eval, oof_ids = [], [], [], [], []
    for i, fold in enumerate(folds):
        held = load_records(Path(fold) / VALIDATION, labels)
        oof_feats, eval_feats = [], []
        for config, per_fold in used:
            cfg = run_config(config, per_fold[i])
            device = pick_device(cfg.device)
            model = model_from_checkpoint(load_model_checkpoint(Path(cfg.out) / "best.pt"), device)
            feats = penultimate_features(model, cfg, held + evaluated, labels, device)
            oof_feats.append(np.stack([feats[r.id] for r in held]))
            eval_feats.append(np.stack([feats[r.id] for r in evaluated]))
        x_oof.append(np.concatenate(oof_feats, 1))
        x_eval.append(np.concatenate(eval_feats, 1))
        y_oof += [labels[r.class_name] for r in held]
        oof_ids += [r.id for r in held]
        groups += [i] * len(held)
    x, y, g, d = np.concatenate(x_oof), np.array(y_oof), np.array(groups), oof_feats[0].shape[1]
    head, fit = fit_crossfit_head(x, y, g, len(names), seed, first_dims=d if len(used) > 1 else None)
    if len(used) < len(streams):
        fit["other_streams_scale"] = 0.0  # the gate's choice
    probs = predict_crossfit(head, x_eval)
    y_eval = np.array([labels[r.class_name] for r in evaluated])
    summary = summarize(probs, y_eval, names)
    # the same head on the first stream's fold models alone: what fusing the others adds
    head1, fit1 = (fit_crossfit_head(x[:, :d], y, g, len(names), seed) if len(used) > 1 else (head, fit))
    probs1 = predict_crossfit(head1, [e[:, :d] for e in x_eval]) if len(used) > 1 else probs
    alone = {"first_stream_alone": {"head": {k: v for k, v in fit1.items() if k != "cv_loss"},
                                    "evaluation": {"set": "validation", **top1_top5(probs1, y_eval)}}}
    out_dir.mkdir(parents=True, exist_ok=True)
    save_scores(out_dir / FIRST_STREAM_SCORES, [r.id for r in evaluated], probs1, y_eval, names)
    save_scores(out_dir / FIRST_STREAM_OOF_SCORES, oof_ids, head1.held_out_probs, y, names)
    save_scores(out_dir / "scores.npz", [r.id for r in evaluated], probs, y_eval, names)
    results = {"model": "cross-fitted fusion head", "folds": len(folds), "head": fit, "selection": selection,
               "evaluation": {"set": "validation", **summary}, **alone}
    write_json(out_dir / "results.json", results, indent=1)
    return results


def stream_out_of_fold(root: Path, key: str, where: str) -> tuple[Scores, str]:
    """One stream's out-of-fold scores: its fold runs in root/<where> when it has them all, else its run's
    held-out slice of training (and which rule gave them)."""
    folds = root / where
    folders = finished_folds(root, (key,), where)
    if folders:
        rule = f"{len(folders)}-fold cross-fitting ({where})"
        return out_of_fold([folds / key / f.parent.name for f in folders], folders), rule
    return held_out_scores(root / key), "its run's held-out slice of training"


def fold_average_ensemble(root: Path, head_dir: Path, other: str, where: str) -> dict:
    """The score ensemble of the first stream's fold models (the cross-fitted head of `head_dir` on them alone)
    with the full-data run root/<other>, as `fitted_ensemble`'s pool. Its weights are fitted on the training
    videos where both have out-of-fold scores: the head's (each video scored by the head fitted without its
    fold, on the features of the fold model that did not train on it) and `other`'s (`stream_out_of_fold`)."""
    other_oof, rule = stream_out_of_fold(root, other, where)
    parts = [read_scores(head_dir / FIRST_STREAM_OOF_SCORES), other_oof]
    ids = common_ids(parts)
    parts = [p.take(ids) for p in parts]
    w, fit = fit_pool_weights(log_scores(parts), parts[0].labels)
    fit = {"weights": {"fold_models": float(w[0]), other: float(w[1])},
           "rule": f"the fold models' head left out fold by fold; {other}: {rule}", **fit}
    return {**pooled([head_dir / FIRST_STREAM_SCORES, root / other / "scores.npz"], list(w)), "fit": fit}
