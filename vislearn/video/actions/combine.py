"""Combining trained streams with weights learned on out-of-fold data (`crossfit`), never on validation.

- **Score ensemble with learned weights** (`fit_pool_weights`, `pool`): fused log-scores
  sum_s w_s log p_s (a product of experts; w_s >= 0 is each stream's inverse temperature), the weights
  fitted by minimising the cross-entropy of the out-of-fold scores. The problem is convex in w, so the fit
  has one answer and needs no learning rate; a stream that carries nothing gets a weight near zero, and a
  stream overconfident on new videos a weight below one. The equal-weight mean of softmax scores
  (`models.fuse_scores`) stays as the paper's row.
- **Cross-fitted feature fusion** (`fit_crossfit_head`, `predict_crossfit`): a linear head on the
  concatenated penultimate features of the streams' *fold* models. Training video v of fold k gets the
  features of the fold-k models (which never saw v); at test time each video goes through all K pairs of
  fold models and the head's K softmax outputs are averaged. Every feature the head sees, in training and
  at test, comes from a model that did not train on that video, which is what the frozen-stream fusion
  trained on the streams' own training videos gets wrong. (Features of different fold models are not
  interchangeable the way class scores are, so the head is not applied to the full-data models.)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize

from vislearn.common.errors import UserError

from .crossfit import Scores

_TINY = 1e-12


def log_scores(parts: list[Scores]) -> np.ndarray:
    """[S, N, K] log softmax scores (clipped away from log 0) of parts over the same videos."""
    if any(p.ids != parts[0].ids for p in parts[1:]):
        raise ValueError("log_scores: the parts must score the same videos in the same order")
    return np.log(np.clip(np.stack([p.scores for p in parts]).astype(np.float64), _TINY, None))


def pool(logp: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Softmax of sum_s w_s log p_s: [S,N,K] x [S] -> [N,K] probabilities."""
    z = np.tensordot(np.asarray(weights, np.float64), logp, axes=1)
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def fit_pool_weights(logp: np.ndarray, labels: np.ndarray, l2: float = 1e-4) -> tuple[np.ndarray, dict]:
    """The weights w >= 0 minimising the mean cross-entropy of `pool(logp, w)` on `labels` (+ l2/2 |w|^2,
    which only keeps w finite when one stream separates the data perfectly). L-BFGS-B from w = 1."""
    S, N, _ = logp.shape
    if N == 0:
        raise UserError("score ensemble: no out-of-fold videos to fit its weights on")
    lp = torch.from_numpy(logp)
    y = torch.from_numpy(np.asarray(labels, np.int64))

    def loss_and_grad(w: np.ndarray):
        wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
        z = torch.tensordot(wt, lp, dims=1)
        loss = torch.nn.functional.cross_entropy(z, y) + 0.5 * l2 * (wt ** 2).sum()
        loss.backward()
        return float(loss.detach()), wt.grad.numpy().copy()

    res = minimize(loss_and_grad, np.ones(S), jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * S)
    w = np.asarray(res.x, np.float64)
    fit = {"loss": float(res.fun), "equal_weight_loss": float(loss_and_grad(np.ones(S))[0]),
           "iterations": int(res.nit), "converged": bool(res.success), "videos": int(N)}
    return w, fit


# --------------------------------------------------------------------------- cross-fitted feature fusion
@dataclass
class CrossfitHead:
    """A linear head on standardised concatenated stream features (mean/std from the out-of-fold rows), each
    feature then multiplied by its stream's weight (`feature_weight`: 1 for the first stream, the chosen scale for
    the others). `held_out_probs` [N,K]: each training row's softmax from the head of the chosen setting fitted
    without that row's fold, the head's own out-of-fold scores (what a combination on top of it may fit on)."""

    mean: np.ndarray
    std: np.ndarray
    layer: torch.nn.Linear
    weight_decay: float
    feature_weight: np.ndarray | None = None
    held_out_probs: np.ndarray | None = None

    def inputs(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mean) / self.std
        return z * self.feature_weight if self.feature_weight is not None else z

    def probs(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            z = self.layer(torch.from_numpy(self.inputs(x).astype(np.float32)))
            return z.softmax(1).numpy()


# the other streams' features are multiplied by one of these after standardising: with weight decay, a scale s on a
# block is a decay of wd / s^2 on its weights (0 leaves the stream out), so the head can trust the box stream more
# than the scene stream, whose features mislead on new combinations (docs/video.md)
STREAM_SCALES = (0.0, 0.25, 0.5, 1.0)


def fold_out_logits(x: np.ndarray, y: np.ndarray, groups: np.ndarray, num_classes: int, weight_decay: float,
                    seed: int) -> np.ndarray:
    """[N,K] logits of every row from the output layer fitted on the rows of the other groups only."""
    from .fewshot import fit_output_layer  # the convex last-layer fit, L-BFGS to convergence

    logits = np.zeros((len(y), num_classes))
    for g in np.unique(groups):
        tr, te = groups != g, groups == g
        layer, _ = fit_output_layer(x[tr], y[tr], num_classes, weight_decay=weight_decay, seed=seed, max_iter=300)
        with torch.no_grad():
            logits[te] = layer(torch.from_numpy(x[te].astype(np.float32))).numpy()
    return logits


def fit_crossfit_head(x: np.ndarray, y: np.ndarray, groups: np.ndarray, num_classes: int, seed: int,
                      decays: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0), first_dims: int | None = None,
                      scales: tuple[float, ...] = STREAM_SCALES) -> tuple[CrossfitHead, dict]:
    """The head on out-of-fold features `x` [N,D] (row i from the fold models of fold groups[i]).

    Its weight decay, and with `first_dims` (the first stream's feature count) the scale of the features after
    them, are chosen by leaving each fold out in turn (mean held-out cross-entropy) among `decays` x `scales`;
    then the head is refitted on every row: validation is never looked at."""
    from .fewshot import fit_output_layer

    mean, std = x.mean(0), x.std(0) + 1e-6
    xs = (x - mean) / std
    grid = [(wd, sc) for sc in (scales if first_dims is not None else (1.0,)) for wd in decays]
    cv, held = {}, {}
    for wd, sc in grid:
        logits = fold_out_logits(xs * _stream_weights(x.shape[1], first_dims, sc), y, groups, num_classes, wd, seed)
        lt = torch.from_numpy(logits)
        cv[(wd, sc)] = float(torch.nn.functional.cross_entropy(lt, torch.from_numpy(np.asarray(y, np.int64))))
        held[(wd, sc)] = lt.softmax(1).numpy()
    best_wd, best_sc = min(cv, key=cv.get)
    w = _stream_weights(x.shape[1], first_dims, best_sc)
    layer, fit = fit_output_layer(xs * w, y, num_classes, weight_decay=best_wd, seed=seed, max_iter=500)
    info = {"weight_decay": best_wd, "cv_loss": {f"{wd} x{sc}" if first_dims is not None else str(wd): v
                                                 for (wd, sc), v in cv.items()}, **fit}
    if first_dims is not None:
        info["other_streams_scale"] = best_sc
    return (CrossfitHead(mean, std, layer, best_wd, w if first_dims is not None else None, held[(best_wd, best_sc)]),
            info)


def _stream_weights(dims: int, first_dims: int | None, scale: float) -> np.ndarray:
    w = np.ones(dims)
    if first_dims is not None:
        w[first_dims:] = scale
    return w


def predict_crossfit(head: CrossfitHead, per_fold: list[np.ndarray]) -> np.ndarray:
    """The mean over folds of the head's softmax on each fold's features of the same videos."""
    return np.mean([head.probs(x) for x in per_fold], axis=0)
