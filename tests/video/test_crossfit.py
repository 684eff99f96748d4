"""Out-of-fold data for the learned combinations (video.actions.crossfit / combine): fold lists by id, the
refusal of scores a run trained on, ensemble weights on a noise stream, the cross-fitted head's choice."""
import json

import numpy as np
import pytest

from vislearn.common.errors import UserError
from vislearn.video.actions.combine import fit_crossfit_head, fit_pool_weights, log_scores, pool, predict_crossfit
from vislearn.video.actions.crossfit import Scores, assign_folds, fold_ids, fold_splits, out_of_fold
from vislearn.video.actions.evaluate import save_scores

CLASSES = [f"Doing thing {i}" for i in range(6)]


def write_split(folder, per_class=(10, 9, 7, 12, 5, 8)):
    folder.mkdir(parents=True)
    items = [{"id": f"{c}{j:03d}", "template": CLASSES[c], "label": CLASSES[c], "placeholders": []}
             for c, n in enumerate(per_class) for j in range(n)]
    (folder / "labels.json").write_text(json.dumps({name: str(i) for i, name in enumerate(CLASSES)}))
    (folder / "train.json").write_text(json.dumps(items))
    (folder / "validation.json").write_text(json.dumps(items[:3]))
    return items


def test_folds_partition_training_by_id_and_are_stratified(tmp_path):
    items = write_split(tmp_path / "split")
    folders = fold_splits(tmp_path / "split", tmp_path / "folds", 3, seed=0, by="video")
    every = {it["id"] for it in items}
    held_all = []
    for folder in folders:
        trained, held = fold_ids(folder)
        assert not trained & held and trained | held == every  # a fold never trains on the videos it scores
        held_all += sorted(held)
        for c in range(6):  # each fold holds a third of each class, give or take one
            n = sum(1 for v in held if v.startswith(str(c)))
            assert abs(n - sum(1 for v in every if v.startswith(str(c))) / 3) <= 1
    assert sorted(held_all) == sorted(every)  # each video out of fold exactly once
    assert fold_splits(tmp_path / "split", tmp_path / "folds", 3, seed=0, by="video") == folders  # written once
    with pytest.raises(UserError, match="other fold lists"):
        fold_splits(tmp_path / "split", tmp_path / "folds", 3, seed=1, by="video")


def test_combination_folds_keep_each_action_object_combination_together():
    rng = np.random.default_rng(0)
    items = [{"id": str(i), "template": CLASSES[i % 6], "placeholders": [f"noun {rng.integers(0, 8)}"]}
             for i in range(300)]
    folds = assign_folds(items, 5, seed=0, by="combination")
    where: dict = {}
    for it in items:
        where.setdefault((it["template"], it["placeholders"][0]), set()).add(folds[it["id"]])
    assert all(len(f) == 1 for f in where.values())  # a fold model never saw the combinations it scores
    sizes = np.bincount(list(folds.values()), minlength=5)
    assert sizes.min() >= 0.6 * sizes.mean()  # and the folds stay about level
    for c in CLASSES:  # every class in at least 4 of the 5 folds
        assert len({folds[it["id"]] for it in items if it["template"] == c}) >= 4


def fake_run(run, ids, rng):
    run.mkdir(parents=True)
    scores = rng.dirichlet(np.ones(6), size=len(ids))
    save_scores(run / "scores.npz", ids, scores, np.array([int(v[0]) for v in ids]), CLASSES)


def test_out_of_fold_scores_checked_by_id(tmp_path):
    write_split(tmp_path / "split")
    folders = fold_splits(tmp_path / "split", tmp_path / "folds", 2, seed=0, by="video")
    rng = np.random.default_rng(0)
    runs = [tmp_path / "runs" / f"fold{i}" for i in range(2)]
    for run, folder in zip(runs, folders):
        fake_run(run, sorted(fold_ids(folder)[1]), rng)
    oof = out_of_fold(runs, folders)
    assert sorted(oof.ids) == sorted(fold_ids(folders[0])[0] | fold_ids(folders[0])[1]) and len(set(oof.ids)) == len(oof.ids)
    # a run that scored one of the videos it trained on is refused, by id
    leaky = tmp_path / "runs" / "leaky"
    fake_run(leaky, sorted(fold_ids(folders[0])[1]) + [sorted(fold_ids(folders[0])[0])[0]], rng)
    with pytest.raises(UserError, match="trained on"):
        out_of_fold([leaky, runs[1]], folders)
    # two folds scoring the same videos are refused
    with pytest.raises(UserError):
        out_of_fold([runs[0], runs[0]], folders)


def informative_and_noise(n=400, k=6, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 1.5  # right about 60% of the time
    good = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    noise = rng.dirichlet(np.full(k, 0.3), size=n)  # confident and meaningless
    ids = [str(i) for i in range(n)]
    return Scores(ids, good, y), Scores(ids, noise, y)


def test_weights_fitted_out_of_fold_are_near_one_hot_with_a_noise_stream():
    good, noise = informative_and_noise()
    w, fit = fit_pool_weights(log_scores([good, noise]), good.labels)
    assert w[1] < 0.05 * w[0], w  # the noise stream is switched off
    assert fit["loss"] < fit["equal_weight_loss"]
    # equal weights are hurt by the noise stream; the fitted pool is not, on fresh videos of the same kind
    good2, noise2 = informative_and_noise(seed=1)
    test = log_scores([good2, noise2])
    acc = lambda p: float((p.argmax(1) == good2.labels).mean())  # noqa: E731
    assert acc(pool(test, w)) >= acc(good2.scores) - 0.01
    assert acc(pool(test, np.ones(2))) < acc(pool(test, w)) - 0.05


def test_two_useful_streams_both_keep_weight():
    rng = np.random.default_rng(3)
    n, k = 400, 6
    y = rng.integers(0, k, n)
    parts = []
    for _ in range(2):  # independent errors: each adds to the other
        logits = rng.normal(size=(n, k))
        logits[np.arange(n), y] += 1.0
        parts.append(Scores([str(i) for i in range(n)], np.exp(logits) / np.exp(logits).sum(1, keepdims=True), y))
    w, _ = fit_pool_weights(log_scores(parts), y)
    assert min(w) > 0.4 * max(w), w


def test_crossfit_head_picks_decay_out_of_fold_and_averages_folds():
    rng = np.random.default_rng(0)
    n, d, k = 300, 20, 4
    y = rng.integers(0, k, n)
    x = rng.normal(size=(n, d))
    x[np.arange(n), y] += 2.0  # the class is in the first k features
    groups = np.arange(n) % 3
    head, fit = fit_crossfit_head(x, y, groups, k, seed=0, decays=(1e-1, 1e3))
    assert fit["weight_decay"] == 1e-1  # a huge decay fits nothing, and the held-out folds say so
    xt = rng.normal(size=(50, d))
    yt = rng.integers(0, k, 50)
    xt[np.arange(50), yt] += 2.0
    probs = predict_crossfit(head, [xt, xt + 0.01])
    assert probs.shape == (50, k) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == yt).mean() > 0.7


def test_crossfit_head_scales_the_other_streams_out_of_fold():
    """With `first_dims`, the features after the first stream's are scaled by a factor chosen out of fold: small when
    that stream is noise, large when it carries the classes."""
    rng = np.random.default_rng(1)
    n, d1, d2, k = 300, 8, 40, 4
    y = rng.integers(0, k, n)
    groups = np.arange(n) % 3
    first = rng.normal(size=(n, d1))
    first[np.arange(n), y] += 1.5
    noise = rng.normal(size=(n, d2))
    head, fit = fit_crossfit_head(np.concatenate([first, noise], 1), y, groups, k, seed=0, first_dims=d1)
    assert fit["other_streams_scale"] <= 0.25 and np.all(head.feature_weight[:d1] == 1)
    assert np.all(head.feature_weight[d1:] == fit["other_streams_scale"]) and len(fit["cv_loss"]) == 16
    signal = rng.normal(size=(n, d2))
    signal[np.arange(n), y] += 3.0
    weak = rng.normal(size=(n, d1))
    _, fit = fit_crossfit_head(np.concatenate([weak, signal], 1), y, groups, k, seed=0, first_dims=d1)
    assert fit["other_streams_scale"] >= 0.5
