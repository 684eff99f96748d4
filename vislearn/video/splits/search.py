"""The grouping search of a compositional split: templates into groups 1/2, nouns into sets A/B.

Model. Video v has a class c(v) and a non-empty set of canonical nouns N(v). Variables:
g[c] in {0 = group 1, 1 = group 2} and s[n] in {0 = set A, 1 = set B}. Video v is *kept* when all
its nouns lie in one set S(v) (the multi-noun rule decides which nouns count; see
`splits.compositional`); it goes to training when g[c] == S(v) -- (1, A) or (2, B) -- and to
validation otherwise. A validation video *counts* only when each of its nouns is in at least one
kept training video (every validation noun must be seen in training). Class c is *satisfied* when
it has >= m training videos and >= m counted validation videos.

Objective (maximised):

    J = P * (#satisfied classes) + (#videos of satisfied classes that are kept and count)
        - lambda * sum over satisfied classes c of |#train(c) - #validation(c)|
        - mu * |#nouns in A - #nouns in B|,                                  P = V + 1

so that first as many classes as possible have both sides, then as many videos as possible are
kept, with a penalty on each class's imbalance between its sides (the released split is about
50/50). The per-class term matters: with only "keep videos" (or only a global train/validation
balance), the optimum puts nearly all noun mass in one set, so half of the classes would train on
a handful of videos. lambda < 1 keeps "one more video" worth more than "one video less of
imbalance". The noun-count term (mu, 0 by default) can mimic the release's 186/185 nouns.

Search. Local search by single flips (one noun's set or one template's group), each flip's change
of J computed exactly from the videos it touches (numpy on that noun's or class's videos), the
first improving flip taken, sweeps in a seeded random order until no flip improves (a move is
re-evaluated only when a flip touched its videos, nouns or classes); several seeded
random starts; the start whose *final* split (after the clean-up below) scores best is kept.
Nouns whose videos are all single-noun videos of one class ("attached" nouns, typically rare
nouns) always go to training: a validation video with such a noun could never count. They follow
their class's group instead of being searched.

Clean-up (`finalize`): drop validation videos with a noun unseen in training, then classes without
m videos on each side, repeated until nothing changes (dropping a class can unsee a noun).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DROP_NONE, DROP_MIXED, DROP_UNSEEN, DROP_CLASS = 0, 1, 2, 3
DROP_NAMES = {DROP_MIXED: "nouns_in_both_sets", DROP_UNSEEN: "noun_unseen_in_training",
              DROP_CLASS: "class_without_both_sides"}


def _csr(keys: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(ptr, order): the positions of `keys` grouped by key value 0..n-1."""
    order = np.argsort(keys, kind="stable")
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys, minlength=n), out=ptr[1:])
    return ptr, order


@dataclass
class Problem:
    """Videos as arrays: class per video, nouns per video in CSR form (vn_ptr, vn_idx)."""

    cls: np.ndarray  # int64 [V], 0..C-1
    vn_ptr: np.ndarray  # int64 [V+1]
    vn_idx: np.ndarray  # int64 [I], 0..N-1, no repeats within a video
    n_classes: int
    n_nouns: int
    cnt: np.ndarray = field(init=False)
    inc_video: np.ndarray = field(init=False)

    def __post_init__(self):
        self.cls = np.asarray(self.cls, dtype=np.int64)
        self.vn_ptr = np.asarray(self.vn_ptr, dtype=np.int64)
        self.vn_idx = np.asarray(self.vn_idx, dtype=np.int64)
        self.cnt = np.diff(self.vn_ptr)
        if len(self.cls) and self.cnt.min() < 1:
            raise ValueError("every video needs at least one noun")
        self.inc_video = np.repeat(np.arange(len(self.cls), dtype=np.int64), self.cnt)
        self.single = bool((self.cnt == 1).all())
        ptr, order = _csr(self.vn_idx, self.n_nouns)
        self.nv_ptr, self.nv_idx = ptr, self.inc_video[order]
        # attached nouns: all their videos single-noun and of one class
        multi_inc = (self.cnt[self.inc_video] > 1).astype(np.int64)
        noun_multi = np.bincount(self.vn_idx, weights=multi_inc, minlength=self.n_nouns) > 0
        cls_inc = self.cls[self.inc_video]
        cmin = np.full(self.n_nouns, np.iinfo(np.int64).max)
        cmax = np.full(self.n_nouns, -1)
        np.minimum.at(cmin, self.vn_idx, cls_inc)
        np.maximum.at(cmax, self.vn_idx, cls_inc)
        self.attached = ~noun_multi & (cmin == cmax)
        self.attached_class = np.where(self.attached, cmax, -1)
        self.video_attached = self.attached[self.vn_idx[self.vn_ptr[:-1]]] & (self.cnt == 1) if len(self.cls) \
            else np.zeros(0, dtype=bool)
        free_videos = np.flatnonzero(~self.video_attached)
        cptr, corder = _csr(self.cls[free_videos], self.n_classes)
        self.cv_ptr, self.cv_idx = cptr, free_videos[corder]
        aptr, aorder = _csr(np.where(self.attached, self.attached_class, self.n_classes)[self.attached],
                            self.n_classes)
        self.ca_ptr, self.ca_idx = aptr, np.flatnonzero(self.attached)[aorder]

    @property
    def n_videos(self) -> int:
        return len(self.cls)

    def expand(self, vids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(nouns, position in vids) for every noun of the given videos."""
        if self.single:
            return self.vn_idx[self.vn_ptr[vids]], np.arange(len(vids))
        lens = self.cnt[vids]
        pos = np.repeat(np.arange(len(vids)), lens)
        starts = np.repeat(self.vn_ptr[vids] - np.cumsum(lens) + lens, lens)
        return self.vn_idx[starts + np.arange(len(pos))], pos

    def status(self, s: np.ndarray, g: np.ndarray) -> np.ndarray:
        """0 dropped (nouns in both sets), 1 training, 2 validation, per video."""
        sum_b = np.bincount(self.inc_video, weights=s[self.vn_idx], minlength=self.n_videos)
        kept = (sum_b == 0) | (sum_b == self.cnt)
        side = g[self.cls] ^ (sum_b == self.cnt)
        return np.where(kept, 1 + side, 0).astype(np.int8)


@dataclass
class Outcome:
    s: np.ndarray
    g: np.ndarray
    reason: np.ndarray  # int8 per video: DROP_* (0 = kept)
    status: np.ndarray  # int8 per video: 1 train, 2 validation (before drops)
    classes_ok: np.ndarray  # bool [C]
    objective: float
    search_objective: float
    sweeps: int
    flips: int

    @property
    def kept(self) -> np.ndarray:
        return self.reason == DROP_NONE

    @property
    def n_train(self) -> int:
        return int((self.kept & (self.status == 1)).sum())

    @property
    def n_val(self) -> int:
        return int((self.kept & (self.status == 2)).sum())


class _LocalSearch:
    def __init__(self, prob: Problem, min_per_side: int, balance: float, noun_balance: float):
        self.p = prob
        self.m = min_per_side
        self.lam = balance
        self.mu = noun_balance
        self.P = float(prob.n_videos + 1)

    # ---- full state -------------------------------------------------------------------------
    def reset(self, s: np.ndarray, g: np.ndarray) -> None:
        p = self.p
        self.s, self.g = s.astype(np.int8), g.astype(np.int8)
        self.sum_b = np.bincount(p.inc_video, weights=self.s[p.vn_idx], minlength=p.n_videos).astype(np.int64)
        self.st = p.status(self.s, self.g)
        train = self.st == 1
        self.trn = np.bincount(p.vn_idx, weights=train[p.inc_video], minlength=p.n_nouns).astype(np.int64)
        self.eff = (self.st == 2) & self._all_seen_full()
        self.tr = np.bincount(p.cls, weights=train, minlength=p.n_classes)
        self.va = np.bincount(p.cls, weights=self.eff, minlength=p.n_classes)
        self.noun_diff = int(p.n_nouns - 2 * int(self.s.sum()))  # #A - #B
        self.score = self._class_score(self.tr, self.va)
        self.dirty_noun = np.ones(p.n_nouns, dtype=bool)
        self.dirty_class = np.ones(p.n_classes, dtype=bool)

    def _all_seen_full(self) -> np.ndarray:
        p = self.p
        unseen = np.bincount(p.inc_video, weights=self.trn[p.vn_idx] == 0, minlength=p.n_videos)
        return unseen == 0

    def _class_score(self, tr: np.ndarray, va: np.ndarray) -> float:
        ok = (tr >= self.m) & (va >= self.m)
        return float(self.P * ok.sum() + ((tr + va) * ok).sum() - self.lam * (np.abs(tr - va) * ok).sum())

    # ---- one move ---------------------------------------------------------------------------
    def _delta(self, vids: np.ndarray, st1: np.ndarray, noun_diff1: int):
        """Exact change of the objective if videos `vids` took statuses `st1` and #A - #B became
        `noun_diff1`. Returns (delta, plan)."""
        p = self.p
        st0 = self.st[vids]
        ch = st0 != st1
        dnoun = -self.mu * (abs(noun_diff1) - abs(self.noun_diff))
        if not ch.any():
            return dnoun, None
        cv, s0c, s1c = vids[ch], st0[ch], st1[ch]
        wt = (s1c == 1).astype(np.int64) - (s0c == 1)
        ccls = p.cls[cv]
        dtr = np.bincount(ccls, weights=wt, minlength=p.n_classes)
        nouns, pos = p.expand(cv)
        wn = wt[pos]
        nz = wn != 0
        if nz.any():
            nn, ww = nouns[nz], wn[nz]
            if len(nn) == 1:
                un, dtrn = nn, ww
            elif p.n_nouns <= 65536:  # dense accumulation beats sorting for a few thousand nouns
                acc = np.bincount(nn, weights=ww, minlength=p.n_nouns)
                un = np.flatnonzero(acc)
                dtrn = acc[un].astype(np.int64)
            else:
                un, inv = np.unique(nn, return_inverse=True)
                dtrn = np.bincount(inv, weights=ww).astype(np.int64)
            t0 = self.trn[un]
            flipped = un[(t0 == 0) != ((t0 + dtrn) == 0)]
        else:
            un = dtrn = flipped = None
        if flipped is not None and len(flipped):
            parts = [cv] + [p.nv_idx[p.nv_ptr[n]:p.nv_ptr[n + 1]] for n in flipped.tolist()]
            cand = np.unique(np.concatenate(parts))
        else:
            cand = cv
        # evaluate "counts" on the candidates under the new state (applied temporarily)
        self.st[cv] = s1c
        if un is not None:
            self.trn[un] += dtrn
        cn, cpos = p.expand(cand)
        unseen = np.bincount(cpos, weights=self.trn[cn] == 0, minlength=len(cand))
        eff1 = (self.st[cand] == 2) & (unseen == 0)
        self.st[cv] = s0c
        if un is not None:
            self.trn[un] -= dtrn
        deff = eff1.astype(np.int64) - self.eff[cand]
        dva = np.bincount(p.cls[cand], weights=deff, minlength=p.n_classes)
        new_score = self._class_score(self.tr + dtr, self.va + dva)
        return new_score - self.score + dnoun, (cv, s1c, un, dtrn, cand, eff1, dtr, dva, new_score)

    def _apply(self, plan) -> None:
        if plan is None:
            return
        cv, s1c, un, dtrn, cand, eff1, dtr, dva, new_score = plan
        self.st[cv] = s1c
        if un is not None:
            self.trn[un] += dtrn
        self.eff[cand] = eff1
        self.tr = self.tr + dtr
        self.va = self.va + dva
        self.score = new_score
        # moves whose outcome may have changed
        nouns, _ = self.p.expand(cand)
        self.dirty_noun[nouns] = True
        self.dirty_class[self.p.cls[cand]] = True

    def try_noun(self, n: int) -> bool:
        p = self.p
        vids = p.nv_idx[p.nv_ptr[n]:p.nv_ptr[n + 1]]
        d = 1 if self.s[n] == 0 else -1
        sb1 = self.sum_b[vids] + d
        c = p.cnt[vids]
        kept = (sb1 == 0) | (sb1 == c)
        side = self.g[p.cls[vids]] ^ (sb1 == c)
        st1 = np.where(kept, 1 + side, 0).astype(np.int8)
        noun_diff1 = self.noun_diff - 2 * d
        delta, plan = self._delta(vids, st1, noun_diff1)
        self.dirty_noun[n] = False
        if delta > 1e-9:
            self._apply(plan)
            self.sum_b[vids] = sb1
            self.s[n] ^= 1
            self.noun_diff = noun_diff1
            if p.cnt[vids].max() > 1:  # co-nouns see a different sum_b now
                self.dirty_noun[p.expand(vids[p.cnt[vids] > 1])[0]] = True
            self.dirty_noun[n] = False
            return True
        return False

    def try_class(self, c: int) -> bool:
        p = self.p
        vids = p.cv_idx[p.cv_ptr[c]:p.cv_ptr[c + 1]]
        st0 = self.st[vids]
        st1 = np.where(st0 == 0, 0, 3 - st0).astype(np.int8)
        att = p.ca_idx[p.ca_ptr[c]:p.ca_ptr[c + 1]]
        noun_diff1 = self.noun_diff + 2 * int((2 * self.s[att].astype(np.int64) - 1).sum())
        delta, plan = self._delta(vids, st1, noun_diff1)
        self.dirty_class[c] = False
        if delta > 1e-9:
            self._apply(plan)
            self.g[c] ^= 1
            self.noun_diff = noun_diff1
            self.dirty_noun[p.expand(vids)[0]] = True  # their sides changed
            self.dirty_class[c] = False
            if len(att):
                self.s[att] ^= 1
                avids = p.nv_idx[np.concatenate([np.arange(p.nv_ptr[a], p.nv_ptr[a + 1]) for a in att.tolist()])]
                self.sum_b[avids] = self.s[p.vn_idx[p.vn_ptr[avids]]]
            return True
        return False

    def run(self, rng: np.random.Generator, max_sweeps: int) -> tuple[int, int]:
        p = self.p
        free = np.flatnonzero(~p.attached)
        classes = np.flatnonzero(np.diff(p.cv_ptr) > 0)
        n_moves = len(free) + len(classes)
        sweeps = flips = 0
        for sweeps in range(1, max_sweeps + 1):
            changed = 0
            for i in rng.permutation(n_moves).tolist():
                if i < len(free):
                    n = int(free[i])
                    if self.dirty_noun[n]:
                        changed += self.try_noun(n)
                else:
                    c = int(classes[i - len(free)])
                    if self.dirty_class[c]:
                        changed += self.try_class(c)
            flips += changed
            if changed == 0:
                break
        return sweeps, flips


def finalize(prob: Problem, s: np.ndarray, g: np.ndarray, min_per_side: int, balance: float,
             noun_balance: float = 0.0, search_objective: float = float("nan"), sweeps: int = 0, flips: int = 0) -> Outcome:
    """Apply an assignment exactly: drop mixed videos, unseen-noun validation videos, one-sided classes."""
    st = prob.status(s.astype(np.int8), g.astype(np.int8))
    reason = np.where(st == 0, DROP_MIXED, DROP_NONE).astype(np.int8)
    active = st > 0
    C = prob.n_classes
    while True:
        train = active & (st == 1)
        trn = np.bincount(prob.vn_idx, weights=train[prob.inc_video], minlength=prob.n_nouns)
        unseen = np.bincount(prob.inc_video, weights=trn[prob.vn_idx] == 0, minlength=prob.n_videos) > 0
        lost = active & (st == 2) & unseen
        reason[lost] = DROP_UNSEEN
        active &= ~lost
        tr = np.bincount(prob.cls, weights=active & (st == 1), minlength=C)
        va = np.bincount(prob.cls, weights=active & (st == 2), minlength=C)
        ok = (tr >= min_per_side) & (va >= min_per_side)
        bad = active & ~ok[prob.cls]
        reason[bad] = DROP_CLASS
        active &= ~bad
        if not lost.any() and not bad.any():
            break
    n_tr, n_va = int((active & (st == 1)).sum()), int((active & (st == 2)).sum())
    class_gap = float(np.abs(tr - va).sum())  # classes not ok have no active videos left
    used = np.bincount(prob.vn_idx, weights=active[prob.inc_video], minlength=prob.n_nouns) > 0
    n_a, n_b = int((used & (s == 0)).sum()), int((used & (s == 1)).sum())
    objective = ((prob.n_videos + 1) * int(ok.sum()) + n_tr + n_va - balance * class_gap
                 - noun_balance * abs(n_a - n_b))
    return Outcome(s=s.astype(np.int8), g=g.astype(np.int8), reason=reason, status=st, classes_ok=ok,
                   objective=float(objective), search_objective=search_objective, sweeps=sweeps, flips=flips)


def search(prob: Problem, min_per_side: int = 1, balance: float = 0.25, noun_balance: float = 1.0,
           restarts: int = 4, max_sweeps: int = 50, seed: int = 0, progress=None) -> tuple[Outcome, list[Outcome]]:
    """Local search from `restarts` seeded random starts; returns (best, all outcomes).

    Deterministic for a given problem and seed. `progress`: optional callable(restart index).
    """
    ls = _LocalSearch(prob, min_per_side, balance, noun_balance)
    outcomes: list[Outcome] = []
    for r in range(max(1, restarts)):
        rng = np.random.default_rng([seed, r])
        g = np.zeros(prob.n_classes, dtype=np.int8)
        g[rng.permutation(prob.n_classes)[: prob.n_classes // 2]] = 1
        s = (rng.random(prob.n_nouns) < 0.5).astype(np.int8)
        att = prob.attached
        s[att] = g[prob.attached_class[att]]  # attached nouns: their videos go to training
        ls.reset(s, g)
        sweeps, flips = ls.run(rng, max_sweeps)
        search_value = ls.score - noun_balance * abs(ls.noun_diff)
        outcomes.append(finalize(prob, ls.s.copy(), ls.g.copy(), min_per_side, balance, noun_balance,
                                 search_value, sweeps, flips))
        if progress is not None:
            progress(r)
    best = max(range(len(outcomes)), key=lambda i: (outcomes[i].objective, -i))
    return outcomes[best], outcomes
