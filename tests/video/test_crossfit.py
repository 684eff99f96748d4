"""Out-of-fold data for the learned combinations (video.actions.crossfit / combine): fold lists by id, the
refusal of scores a run trained on, ensemble weights on a noise stream, the cross-fitted head's choice."""
import json

import numpy as np
import pytest

from vislearn.common.errors import UserError
from vislearn.video.actions.combine import fit_crossfit_head, fit_pool_weights, log_scores, pool, predict_crossfit
from vislearn.video.actions.crossfit import Scores, assign_folds, fold_ids, fold_splits, out_of_fold
from vislearn.video.actions.evaluate import save_scores
from vislearn.video.actions.table_crossfit import stream_selection

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


def compositional_training_list(seed=0):
    """A training list as a compositional split leaves it: templates 0-2 only with nouns 0-5, templates 3-5
    only with nouns 6-11, every such pair present."""
    rng = np.random.default_rng(seed)
    items = []
    for c in range(6):
        nouns = range(6) if c < 3 else range(6, 12)
        for n in nouns:
            items += [{"id": f"{c}{n:02d}{j}", "template": CLASSES[c], "placeholders": [f"noun{n}"]}
                      for j in range(int(rng.integers(2, 5)))]
    return items


def test_compositional_folds_flip_which_nouns_go_with_which_templates():
    """Each of the 2 folds is the other's compositional split: a fold scores pairs it never trained on, with
    templates and nouns it did, and no trained pair links them (a template trained with the scored noun never
    met a noun trained with the scored template), as between a compositional split's training and validation.
    Combination folds do not: there a noun's other templates still go with the same nouns."""
    items = compositional_training_list()
    labels = {name: i for i, name in enumerate(CLASSES)}

    def linked(folds):
        bad = 0
        for i in (0, 1):
            trained = [(it["template"], it["placeholders"][0]) for it in items if folds.get(it["id"], i) != i]
            held = [(it["template"], it["placeholders"][0]) for it in items if folds.get(it["id"]) == i]
            pairs = set(trained)
            for t, n in held:
                assert (t, n) not in pairs  # both rules: a fold scores only pairs it never trained on
                nouns_of_t = {b for a, b in pairs if a == t}
                templates_of_n = {a for a, b in pairs if b == n}
                bad += any((a, b) in pairs for a in templates_of_n for b in nouns_of_t)
        return bad

    folds = assign_folds(items, 2, seed=0, by="compositional", labels=labels)
    assert set(folds.values()) == {0, 1} and len(folds) >= 0.8 * len(items)
    for c in CLASSES:  # every class on both sides
        assert {folds[it["id"]] for it in items if it["template"] == c and it["id"] in folds} == {0, 1}
    assert linked(folds) == 0
    for i in (0, 1):  # and it trained on every template and noun it scores
        trained = [it for it in items if folds.get(it["id"], i) != i]
        for it in items:
            if folds.get(it["id"]) == i:
                assert any(o["template"] == it["template"] for o in trained)
                assert any(o["placeholders"] == it["placeholders"] for o in trained)
    assert linked(assign_folds(items, 2, seed=0, by="combination")) > 0
    with pytest.raises(UserError, match="2 folds"):
        assign_folds(items, 5, seed=0, by="compositional", labels=labels)


def test_fold_splits_leave_videos_without_a_fold_out_of_both_sides(tmp_path):
    (tmp_path / "split").mkdir()
    items = compositional_training_list()
    items.append({"id": "both", "template": CLASSES[0], "placeholders": ["noun0", "noun7"]})  # nouns of both sets
    (tmp_path / "split" / "labels.json").write_text(json.dumps({name: str(i) for i, name in enumerate(CLASSES)}))
    (tmp_path / "split" / "train.json").write_text(json.dumps(items))
    (tmp_path / "split" / "validation.json").write_text(json.dumps(items[:3]))
    folders = fold_splits(tmp_path / "split", tmp_path / "folds", 2, seed=0, by="compositional")
    (t0, h0), (t1, h1) = fold_ids(folders[0]), fold_ids(folders[1])
    assert t0 == h1 and t1 == h0 and not h0 & h1  # each fold trains on exactly the other's videos
    assert "both" not in t0 | h0


def test_a_stream_the_out_of_fold_pool_switches_off_stays_out_of_the_fusion_head(tmp_path):
    """`stream_selection`: the fusion head's other streams enter only with a pool weight above 0 on the
    (compositional) fold runs' out-of-fold scores; a confidently misleading stream gets 0, a useful one not."""
    write_split(tmp_path / "split")
    where = tmp_path / "seed0" / "folds_compositional"
    folders = fold_splits(tmp_path / "split", where, 2, seed=0, by="video")
    rng = np.random.default_rng(0)

    def run(key, folder, i, kind):
        ids = sorted(fold_ids(folder)[1])
        y = np.array([int(v[0]) for v in ids])
        logits = rng.normal(size=(len(ids), 6))
        logits[np.arange(len(ids)), y if kind == "right" else (y + 1) % 6] += 2.0 if kind == "right" else 4.0
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        (where / key / f"fold{i}").mkdir(parents=True, exist_ok=True)
        save_scores(where / key / f"fold{i}" / "scores.npz", ids, probs, y, CLASSES)

    for i, folder in enumerate(folders):
        run("stin", folder, i, "right")
        run("scene", folder, i, "misleading")
        run("other", folder, i, "right")
    off = stream_selection((str(tmp_path / "seed0"), ["stin", "scene"], "folds_compositional"))
    assert off["weights"]["scene"] == 0.0 and not off["others_kept"] and off["rule"].startswith("2-fold")
    on = stream_selection((str(tmp_path / "seed0"), ["stin", "other"], "folds_compositional"))
    assert on["weights"]["other"] > 0.3 and on["others_kept"]
    with pytest.raises(UserError, match="missing"):
        stream_selection((str(tmp_path / "seed0"), ["stin", "strg"], "folds_compositional"))


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


def test_head_held_out_scores_come_from_the_head_fitted_without_the_rows_fold():
    """The head's own out-of-fold scores (what the STRG + fold-models ensemble fits its weights on): relabelling
    the rows of one fold moves the head fitted on every row, but not those rows' held-out scores."""
    rng = np.random.default_rng(2)
    n, d, k = 240, 12, 4
    y = rng.integers(0, k, n)
    x = rng.normal(size=(n, d))
    x[np.arange(n), y] += 1.5
    groups = np.arange(n) % 4
    head, _ = fit_crossfit_head(x, y, groups, k, seed=0, decays=(1e-2,))
    assert head.held_out_probs.shape == (n, k) and np.allclose(head.held_out_probs.sum(1), 1, atol=1e-6)
    assert (head.held_out_probs.argmax(1) == y).mean() > 0.6
    relabelled = y.copy()
    relabelled[groups == 0] = (y[groups == 0] + 1) % k
    other, _ = fit_crossfit_head(x, relabelled, groups, k, seed=0, decays=(1e-2,))
    rows = groups == 0
    assert np.allclose(other.held_out_probs[rows], head.held_out_probs[rows], atol=1e-6)
    assert not np.allclose(other.held_out_probs[~rows], head.held_out_probs[~rows], atol=1e-3)
    assert not np.allclose(other.probs(x[rows]), head.probs(x[rows]), atol=1e-3)  # the full head saw them


def test_strg_with_the_fold_models_fits_its_weights_on_videos_both_held_out(tmp_path):
    """fold_average_ensemble: the head's leave-one-fold-out scores meet the other stream's held-out slice on the
    videos both have; a noise stream gets weight 0 and the ensemble is the fold models' head."""
    from vislearn.video.actions.table_crossfit import (FIRST_STREAM_OOF_SCORES, FIRST_STREAM_SCORES,
                                                       fold_average_ensemble)

    rng = np.random.default_rng(3)
    k, names = 5, [f"c{i}" for i in range(5)]

    def scores(n, signal):
        y = rng.integers(0, k, n)
        logits = rng.normal(size=(n, k))
        logits[np.arange(n), y] += signal
        return y, np.exp(logits) / np.exp(logits).sum(1, keepdims=True)

    head, strg = tmp_path / "folds_combination" / "fusion", tmp_path / "strg"
    head.mkdir(parents=True)
    strg.mkdir()
    y, p = scores(200, 2.5)  # the head out of fold on every training video
    save_scores(head / FIRST_STREAM_OOF_SCORES, [f"t{i}" for i in range(200)], p, y, names)
    noise = rng.dirichlet(np.ones(k), 30)  # STRG's held-out slice: 30 of those videos, and one it alone has
    save_scores(strg / "holdout_scores.npz", [f"t{i}" for i in range(30)] + ["x"], np.vstack([noise, noise[:1]]),
                np.append(y[:30], 0), names)
    yv, pv = scores(100, 2.5)
    save_scores(head / FIRST_STREAM_SCORES, [f"v{i}" for i in range(100)], pv, yv, names)
    save_scores(strg / "scores.npz", [f"v{i}" for i in range(100)], rng.dirichlet(np.ones(k), 100), yv, names)
    ens = fold_average_ensemble(tmp_path, head, "strg", "folds_compositional")
    assert ens["fit"]["videos"] == 30 and "held-out slice" in ens["fit"]["rule"]
    assert ens["fit"]["weights"]["strg"] < 0.1 * ens["fit"]["weights"]["fold_models"]
    assert abs(ens["top1"] - (pv.argmax(1) == yv).mean()) <= 0.02


def test_strg_runs_on_the_compositional_folds_from_the_scene_runs_of_the_same_fold(tmp_path):
    """--full: STRG is cross-fitted on the 2 compositional folds only, each fold run starting from the scene
    stream's run of that fold (the full scene run trained on the fold's videos), and the fusion head does not
    wait for it."""
    from vislearn.video.actions.table import fold_jobs
    from vislearn.video.actions.table_rows import STREAMS, STRG_STREAMS

    split = tmp_path / "split"
    split.mkdir()
    (split / "labels.json").write_text(json.dumps({name: str(i) for i, name in enumerate(CLASSES)}))
    (split / "train.json").write_text(json.dumps(compositional_training_list()))
    (split / "validation.json").write_text(json.dumps(compositional_training_list(1)[:5]))
    root = tmp_path / "seed0"
    jobs = {j.name: j for j in fold_jobs(STREAMS + STRG_STREAMS, ["batch_size=4"], root, "c/seed0", split, 3, 0,
                                         "combination", compositional=True)}
    assert not [n for n in jobs if "/strg/" in n and "folds_compositional" not in n]  # no 3-fold STRG runs
    for i in (0, 1):
        job = jobs[f"c/seed0/folds_compositional/strg/fold{i}"]
        scene = root / "folds_compositional" / "scene" / f"fold{i}"
        assert job.after == (f"c/seed0/folds_compositional/scene/fold{i}",)
        assert f"model_args.scene_checkpoint={scene / 'best.pt'}" in job.args[1]
        assert f"split={root / 'folds_compositional' / f'fold{i}' / 'split'}" in job.args[1]
    head = jobs["c/seed0/fusion_crossfit"]
    assert "c/seed0/folds_compositional/scene/fold1" in head.after
    assert not [n for n in head.after if "/strg/" in n]


def test_fold_runs_too_small_for_one_batch_are_found_before_training(tmp_path):
    """The table leaves the compositional folds out on a tiny data set instead of failing a run: a fold whose
    training list, less its held-out part, cannot fill one batch is named."""
    from vislearn.video.actions.table import too_small_to_train

    write_split(tmp_path / "split")
    folders = fold_splits(tmp_path / "split", tmp_path / "folds", 2, seed=0, by="video")
    per_fold = lambda batch: [[f"split={f}", f"batch_size={batch}", "holdout_fraction=0.1"] for f in folders]  # noqa: E731
    # 51 videos in 6 classes: a fold trains on about 25, of which 6 are held out (one of each class at least)
    assert too_small_to_train([("stin_oie_nl.yaml", per_fold(8))]) == ""
    why = too_small_to_train([("stin_oie_nl.yaml", per_fold(8)), ("scene.yaml", per_fold(24))])
    assert "fewer than batch_size 24" in why and "train.json" in why


def test_out_of_fold_detections_come_from_the_detector_that_did_not_train_on_the_video(tmp_path):
    """The tracked-box front end's detections: validation videos from the detector of every training video,
    each training video from its fold's detector (which trained on the other folds); a video two sources claim
    is a fold mix-up and stops the merge."""
    from vislearn.video.actions.detected_boxes import out_of_fold_detections

    items = write_split(tmp_path / "split")
    (tmp_path / "split" / "validation.json").write_text(json.dumps([{"id": "v1"}, {"id": "v2"}]))
    folders = fold_splits(tmp_path / "split", tmp_path / "folds", 2, seed=0, by="video")
    frames = lambda source: [{"name": "0001.jpg", "labels": [{"category": source}]}]  # noqa: E731
    everything = tmp_path / "all.json"  # the full detector saw every video, training ones included
    everything.write_text(json.dumps({v: frames("all") for v in ["v1", "v2"] + [it["id"] for it in items]}))
    parts = []
    for k, folder in enumerate(folders):
        trained, held = fold_ids(folder)
        parts.append(tmp_path / f"part{k}.json")
        parts[-1].write_text(json.dumps({v: frames(f"fold{k}") for v in held}))
    merged = out_of_fold_detections(everything, parts, ["v1", "v2"])
    assert set(merged) == {"v1", "v2"} | {it["id"] for it in items}
    assert merged["v1"] == merged["v2"] == frames("all")
    for k, folder in enumerate(folders):
        trained, held = fold_ids(folder)
        assert all(merged[v] == frames(f"fold{k}") for v in held)
        assert not any(merged[v] == frames(f"fold{k}") for v in trained)
    parts[1].write_text(json.dumps({"v1": frames("fold1")}))
    with pytest.raises(ValueError, match="v1"):
        out_of_fold_detections(everything, parts, ["v1", "v2"])
