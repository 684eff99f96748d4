"""`vislearn segment engine`: the paper's data engine (Sec. 4), with a simulated annotator who knows the renderer's
ground truth.

**Stage 1, assisted-manual.** For every ground-truth object the annotator clicks until the model's mask has IoU >=
`iou_target` (0.9) with the truth or `click_budget` (20) clicks are spent: the first click at the object's interior
centre (`masks.interior_point`, a positive click, three masks, the one with the highest predicted IoU kept), then
each click at the centre of the largest error region (the point of the error farthest from its boundary: positive
in a missed region, negative in a spilled one), with the previous low-resolution logits as the mask prompt and one
mask out (the official interactive use). Masks that reach the target are accepted as annotations (the model's mask,
not the truth: that is the data the engine makes); objects that run out of clicks are skipped, as the paper's
annotators could. After each round the model is fine-tuned (`train.py`'s python API) from the current checkpoint on
every image annotated so far, and the next round annotates new images with the new model.
**Stage 2, semi-automatic.** The automatic generator's confident masks are shown first; those with IoU >= the
target to a ground-truth object (one to one) are accepted, the other objects are annotated with clicks as above.
**Stage 3, fully automatic.** Grid prompting with the generator's filters on new images; quality against the truth
(precision and recall at IoU 0.5, mean IoU of the matched masks).

**Time model** (stated, simulated): seconds per mask = clicks x `click_seconds` (2 s: place a click and look at the
new mask) + the model's own seconds, measured for real on this machine: the image's embedding shared by its objects
plus each decoder call shared by the objects it served (all objects of an image are decoded in one batch per click).

**Improvement per retraining**: each checkpoint (the initial one and one per round) is also measured on a fixed set
of held-out images (the val split): clicks per mask to reach the target, the fraction that reaches it, the 1-click
mIoU and the final mIoU, so that rounds are compared on the same images.

Run folder: `engine.json` (settings, each finished step's summary), `engine.md` (tables), `stage1_round<k>/`
(SA-1B annotations, `sa_<id>.jpg` + `sa_<id>.json`; `train/`: the fine-tuning run and its checkpoint),
`stage2/`, `stage3/`. A step's outputs are written before it is recorded as done: a killed run resumes at the step
it stopped in (finished rounds are kept; a fine-tuning run resumes from its own last checkpoint).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vislearn.common.cli import Parser, command, positive_int
from vislearn.common.errors import UserError
from vislearn.common.files import write_text
from vislearn.common.jsonio import read_json, write_json
from vislearn.common.outputs import claim_folder
from vislearn.common.tables import format_table

from .evaluate import matched_ious, rles_iou
from .masks import interior_point, masks_iou, rle_encode

KIND = "segment engine"
STATE = "engine.json"
CLICK_SECONDS = 2.0
IOU_TARGET = 0.9
CLICK_BUDGET = 20


# ----------------------------------------------------------------------------- the simulated annotator
def _farthest_from_boundary(region: np.ndarray) -> tuple[tuple[int, int], float]:
    """((x, y), distance) of the region's pixel farthest from its boundary (the image border counts)."""
    from scipy.ndimage import distance_transform_edt

    rows, cols = np.flatnonzero(region.any(1)), np.flatnonzero(region.any(0))
    if rows.size == 0:
        return (0, 0), 0.0
    # on the region's box padded by one pixel: the same distances, a fraction of the cost (masks.interior_point)
    crop = region[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    dist = distance_transform_edt(np.pad(crop, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return (int(x + cols[0]), int(y + rows[0])), float(dist[y, x])


def next_click(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int, int]:
    """(x, y, label) of the annotator's next click: the centre of the largest error region, i.e. the error pixel
    farthest from the error's boundary (RITM's and the paper's protocol), over the missed pixels (label 1) and the
    spilled ones (label 0)."""
    (pf, df), (pb, db) = _farthest_from_boundary(gt & ~pred), _farthest_from_boundary(pred & ~gt)
    return (pf[0], pf[1], 1) if df >= db else (pb[0], pb[1], 0)


@dataclass
class ObjectResult:
    clicks: int
    iou: float  # final IoU with the truth
    first_iou: float  # IoU after the first click
    reached: bool
    model_seconds: float
    mask: np.ndarray  # the final mask (bool [H, W])

    def seconds(self, click_seconds: float) -> float:
        return self.clicks * click_seconds + self.model_seconds


@torch.no_grad()
def annotate_objects(predictor, image: np.ndarray, gt: np.ndarray, budget: int = CLICK_BUDGET,
                     target: float = IOU_TARGET) -> list[ObjectResult]:
    """Click on each object of `gt` [K, H, W] until its IoU reaches `target` or `budget` clicks are spent (see the
    module). All objects still being annotated are decoded in one batch per click."""
    k = len(gt)
    if k == 0:
        return []
    t0 = time.perf_counter()
    predictor.set_image(image)
    model_s = np.full(k, (time.perf_counter() - t0) / k)
    size = predictor.original_size
    device = predictor.device
    gt_t = torch.as_tensor(gt, device=device)
    clicks = [[(*interior_point(g), 1)] for g in gt]
    preds = np.zeros_like(gt)
    low = None
    ious, first = np.zeros(k), np.zeros(k)
    n_clicks = np.zeros(k, int)
    active = np.arange(k)
    for step in range(budget):
        pts = np.array([[c[:2] for c in clicks[i]] for i in active], dtype=np.float64)
        labels = torch.as_tensor([[c[2] for c in clicks[i]] for i in active], dtype=torch.int, device=device)
        coords = torch.as_tensor(predictor.transform.apply_coords(pts, size), dtype=torch.float, device=device)
        t0 = time.perf_counter()
        if step == 0:
            masks, iou_pred, lo = predictor.predict_torch(coords, labels, multimask_output=True)
            pick = iou_pred.argmax(1)
            rows = torch.arange(len(pick), device=device)
            masks, lo = masks[rows, pick], lo[rows, pick][:, None]
            low = torch.zeros((k, *lo.shape[1:]), dtype=lo.dtype, device=device)
        else:
            masks, _, lo = predictor.predict_torch(coords, labels, mask_input=low[active], multimask_output=False)
            masks = masks[:, 0]
        model_s[active] += (time.perf_counter() - t0) / len(active)
        low[active] = lo
        iou = masks_iou(masks, gt_t[active]).cpu().numpy()
        m = masks.cpu().numpy()
        preds[active], ious[active] = m, iou
        n_clicks[active] += 1
        if step == 0:
            first[active] = iou
        left = iou < target
        for j in np.flatnonzero(left):
            i = active[j]
            clicks[i].append(next_click(m[j], gt[i]))
        active = active[left]
        if len(active) == 0:
            break
    predictor.reset_image()
    return [ObjectResult(int(n_clicks[i]), float(ious[i]), float(first[i]), bool(ious[i] >= target),
                         float(model_s[i]), preds[i]) for i in range(k)]


def clicks_summary(results: list[ObjectResult], click_seconds: float) -> dict:
    """Clicks per mask, the fraction that reached the target, IoUs and (simulated) seconds per mask."""
    if not results:
        return {"masks": 0}
    c = np.array([r.clicks for r in results])
    return {"masks": len(results), "clicks_per_mask": float(c.mean()), "clicks_median": float(np.median(c)),
            "reached": float(np.mean([r.reached for r in results])),
            "miou_1click": float(np.mean([r.first_iou for r in results])),
            "miou_final": float(np.mean([r.iou for r in results])),
            "seconds_per_mask": float(np.mean([r.seconds(click_seconds) for r in results])),
            "model_seconds_per_mask": float(np.mean([r.model_seconds for r in results]))}


# ----------------------------------------------------------------------------- the stages
def _gt(record) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    image = record.load_image()
    masks = np.asarray(record.masks(), bool).reshape(-1, *image.shape[:2])
    keep = [i for i in range(len(masks)) if masks[i].any()]
    return image, masks[keep], [record.annotations[i] for i in keep]


def _ann(mask: np.ndarray, ann_id: int, gt_ann: dict | None, **extra) -> dict:
    from .data.sa1b import annotation_record

    keep = {k: gt_ann[k] for k in ("level", "category") if gt_ann and k in gt_ann}
    return annotation_record(mask, ann_id, **keep, **extra)


def assisted_manual(predictor, records, folder: Path | None, settings: "EngineSettings") -> dict:
    """Stage 1 on `records`: every object clicked (see the module); the accepted masks written to `folder` in
    SA-1B format. Returns the round's summary."""
    from .data.sa1b import write_image

    all_results, accepted = [], 0
    for rec in records:
        image, gt, anns = _gt(rec)
        res = annotate_objects(predictor, image, gt, settings.click_budget, settings.iou_target)
        all_results += res
        out = [_ann(r.mask, i, anns[i], clicks=r.clicks, iou_gt=r.iou)
               for i, r in enumerate(res) if r.reached and r.mask.any()]
        accepted += len(out)
        if folder is not None:
            write_image(folder, rec.image_id, image, out)
    s = clicks_summary(all_results, settings.click_seconds)
    return {"images": len(records), "accepted": accepted, **s}


def semi_automatic(predictor, generator, records, folder: Path | None, settings: "EngineSettings") -> dict:
    """Stage 2: the generator's masks pre-filled; those matching an object at IoU >= target accepted; the rest of
    the objects clicked as in stage 1."""
    from .data.sa1b import write_image

    prefilled = accepted = added = 0
    clicked: list[ObjectResult] = []
    gen_s = 0.0
    for rec in records:
        image, gt, anns = _gt(rec)
        t0 = time.perf_counter()
        props = generator.generate(image)
        gen_s += time.perf_counter() - t0
        iou = rles_iou([rle_encode(m) for m in gt], [p["segmentation"] for p in props])
        pairs = matched_ious(iou, settings.iou_target)
        found = {g for g, _, _ in pairs}
        out = [_ann(_decode(props[p]["segmentation"]), n, anns[g], source="auto", iou_gt=v)
               for n, (g, p, v) in enumerate(pairs)]
        missing = [i for i in range(len(gt)) if i not in found]
        res = annotate_objects(predictor, image, gt[missing], settings.click_budget, settings.iou_target)
        clicked += res
        out += [_ann(r.mask, len(pairs) + j, anns[i], source="clicks", clicks=r.clicks, iou_gt=r.iou)
                for j, (i, r) in enumerate(zip(missing, res)) if r.reached and r.mask.any()]
        prefilled += len(props)
        accepted += len(pairs)
        added += sum(r.reached for r in res)
        if folder is not None:
            write_image(folder, rec.image_id, image, out)
    n = max(len(records), 1)
    gt_total = accepted + len(clicked)
    return {"images": len(records), "gt_masks": gt_total, "prefilled_per_image": prefilled / n,
            "accepted_per_image": accepted / n, "added_per_image": added / n,
            "masks_per_image": (accepted + added) / n,
            "clicks_per_image": sum(r.clicks for r in clicked) / n,
            "clicked": clicks_summary(clicked, settings.click_seconds), "generator_seconds_per_image": gen_s / n}


def _decode(rle: dict) -> np.ndarray:
    from .masks import rle_decode

    return rle_decode(rle)


def fully_automatic(generator, records, folder: Path | None) -> dict:
    """Stage 3: the generator alone; its masks against the truth (one to one at IoU 0.5)."""
    from .data.sa1b import write_image

    n_props = n_gt = n_match = 0
    matched = []
    t_all = 0.0
    for rec in records:
        image, gt, anns = _gt(rec)
        t0 = time.perf_counter()
        props = generator.generate(image)
        t_all += time.perf_counter() - t0
        iou = rles_iou([rle_encode(m) for m in gt], [p["segmentation"] for p in props])
        pairs = matched_ious(iou, 0.5)
        n_props, n_gt, n_match = n_props + len(props), n_gt + len(gt), n_match + len(pairs)
        matched += [v for _, _, v in pairs]
        if folder is not None:
            out = [dict(p, id=i, source="auto") for i, p in enumerate(props)]
            write_image(folder, rec.image_id, image, out)
    n = max(len(records), 1)
    return {"images": len(records), "masks_per_image": n_props / n, "gt_per_image": n_gt / n,
            "precision@0.5": n_match / n_props if n_props else 0.0, "recall@0.5": n_match / n_gt if n_gt else 0.0,
            "miou_matched": float(np.mean(matched)) if matched else None, "seconds_per_image": t_all / n}


# ----------------------------------------------------------------------------- the run
@dataclass(frozen=True)
class EngineSettings:
    data: str
    checkpoint: str
    rounds: int = 2
    images_per_round: int = 20
    auto_images: int = 20
    eval_images: int = 20
    click_budget: int = CLICK_BUDGET
    iou_target: float = IOU_TARGET
    click_seconds: float = CLICK_SECONDS
    points_per_side: int = 16
    pred_iou_thresh: float = 0.88
    stability_thresh: float = 0.95
    train_steps: int = 200
    train_batch: int = 4
    lr: float = 1e-4
    seed: int = 0
    device: str = "cpu"

    def recipe(self) -> dict:
        """What fixes the results (a resumed run must have the same); the device does not."""
        d = dataclasses.asdict(self)
        d.pop("device")
        return d


def retrain(init_checkpoint: str, records: list, folder: Path, settings: EngineSettings) -> str:
    """Fine-tune from `init_checkpoint` on `records` with the training command's python API (`train.train`: the
    paper's simulated interactive training) in `folder`; returns the new checkpoint's path. A killed fine-tuning
    resumes from its own last checkpoint (`resume=True`)."""
    from .train import DEFAULT_CONFIG, load_config, train

    # the training command's default recipe (configs/segment/train.yaml), fine-tuning from the current model
    cfg = dataclasses.replace(load_config(DEFAULT_CONFIG), init=init_checkpoint, steps=settings.train_steps,
                              batch_images=settings.train_batch, lr=settings.lr,
                              warmup_steps=min(10, settings.train_steps // 10), seed=settings.seed, val_images=0,
                              ckpt_every=max(1, min(25, settings.train_steps)))
    results = train(cfg, records, folder, val=[], resume=True, log=lambda *_: None, progress=False)
    return str(results["sam"])


class Engine:
    """The steps of a run, each done once (see the module)."""

    def __init__(self, out: Path, settings: EngineSettings, overwrite: bool = False, progress: bool = True):
        self.out, self.s, self.progress = Path(out), settings, progress
        self.state = self._load_state(overwrite)

    def _load_state(self, overwrite: bool) -> dict:
        path = self.out / STATE
        if path.is_file():
            state = read_json(path)
            if not isinstance(state, dict) or "settings" not in state:
                raise UserError(f"{path}: not an engine state file")
            if state["settings"] != self.s.recipe():
                if not overwrite:
                    diff = [k for k, v in self.s.recipe().items() if state["settings"].get(k) != v]
                    raise UserError(f"{self.out}: an engine run with other settings ({', '.join(diff)}); choose "
                                    "another --out, or pass --overwrite to start it again")
                return self._fresh()
            return state
        return self._fresh()

    def _fresh(self) -> dict:
        return {"settings": self.s.recipe(), "steps": {}, "checkpoints": [self.s.checkpoint]}

    def _save(self) -> None:
        write_json(self.out / STATE, self.state, indent=1)
        write_text(self.out / "engine.md", engine_table(self.state))

    def _say(self, text: str) -> None:
        if self.progress:
            print(text, file=sys.stderr, flush=True)

    def step(self, name: str, fn) -> dict:
        """Run `fn()` unless `name` is done; record its summary."""
        if name in self.state["steps"]:
            self._say(f"{name}: done before (resumed)")
            return self.state["steps"][name]
        t0 = time.perf_counter()
        self._say(f"{name} ...")
        summary = fn()
        summary["wall_seconds"] = time.perf_counter() - t0
        self.state["steps"][name] = summary
        self._save()
        self._say(f"{name}: {_brief(summary)}")
        return summary

    def model(self, k: int):
        from .evaluate import load_model

        torch.manual_seed(self.s.seed)
        return load_model(self.state["checkpoints"][k], self.s.device)[0]

    def generator(self, model):
        from .automatic import AutomaticMaskGenerator

        return AutomaticMaskGenerator(model, points_per_side=self.s.points_per_side,
                                      pred_iou_thresh=self.s.pred_iou_thresh,
                                      stability_score_thresh=self.s.stability_thresh)

    def run(self, train_records: list, val_records: list) -> dict:
        from .predictor import SamPredictor

        s, n = self.s, self.s.images_per_round
        need = n * (s.rounds + 1) + s.auto_images
        if len(train_records) < need:
            raise UserError(f"{s.data}: {len(train_records)} training images, the engine needs {need} "
                            f"({s.rounds} rounds + stage 2 of {n} each, stage 3 {s.auto_images})")
        held = val_records[:s.eval_images]
        for r in range(s.rounds + 1):
            if held:
                self.step(f"heldout_model{r}", lambda: {"checkpoint": self.state["checkpoints"][r], **assisted_manual(
                    SamPredictor(self.model(r)), held, None, s)})
            if r == s.rounds:
                break
            folder = self.out / f"stage1_round{r}"
            self.step(f"stage1_round{r}", lambda: {"checkpoint": self.state["checkpoints"][r], **assisted_manual(
                SamPredictor(self.model(r)), train_records[r * n:(r + 1) * n], folder, s)})

            def train_step(r=r):
                from .data.sa1b import load_dataset

                data = [rec for k in range(r + 1) for rec in load_dataset(self.out / f"stage1_round{k}")
                        if rec.annotations]
                if not data:  # nothing reached the target: nothing to learn from, the model stays
                    self.state["checkpoints"] = self.state["checkpoints"][:r + 1] + [self.state["checkpoints"][r]]
                    return {"checkpoint": self.state["checkpoints"][r], "images": 0, "masks": 0,
                            "skipped": "no accepted masks"}
                ckpt = retrain(self.state["checkpoints"][r], data, self.out / f"stage1_round{r}" / "train", s)
                self.state["checkpoints"] = self.state["checkpoints"][:r + 1] + [ckpt]
                return {"checkpoint": ckpt, "images": len(data), "masks": sum(len(d.annotations) for d in data)}

            self.step(f"retrain{r}", train_step)
        final = s.rounds
        self.step("stage2", lambda: {"checkpoint": self.state["checkpoints"][final], **semi_automatic(
            SamPredictor(m := self.model(final)), self.generator(m), train_records[(final) * n:(final + 1) * n],
            self.out / "stage2", s)})
        start = (final + 1) * n
        self.step("stage3", lambda: {"checkpoint": self.state["checkpoints"][final], **fully_automatic(
            self.generator(self.model(final)), train_records[start:start + s.auto_images], self.out / "stage3")})
        self._save()
        return self.state


def _brief(summary: dict) -> str:
    keys = ("clicks_per_mask", "reached", "miou_1click", "masks_per_image", "precision@0.5", "recall@0.5", "images")
    return ", ".join(f"{k} {summary[k]:.3g}" for k in keys if isinstance(summary.get(k), (int, float)))


def engine_table(state: dict) -> str:
    """engine.md: stage 1 per round, held-out per checkpoint, stage 2, stage 3."""
    steps = state["steps"]
    reached = f"reached {state['settings']['iou_target']:g}"
    f = lambda v, p=3: "-" if v is None else f"{v:.{p}f}"  # noqa: E731
    lines = ["# Data engine (simulated annotator)", "",
             f"Settings: {', '.join(f'{k}={v}' for k, v in state['settings'].items())}", ""]
    s1 = [(k, v) for k, v in steps.items() if k.startswith("stage1_round")]
    if s1:
        lines += ["## Stage 1: assisted-manual (each round with the model retrained after the round before)", "",
                  format_table([[k.replace("stage1_", ""), v["images"], v["masks"], v["accepted"],
                                 f(v.get("clicks_per_mask"), 2), f(v.get("reached")), f(v.get("miou_1click")),
                                 f(v.get("seconds_per_mask"), 1), f(v.get("model_seconds_per_mask"), 3)]
                                for k, v in s1],
                               ["round", "images", "objects", "accepted", "clicks/mask", reached, "1-click mIoU",
                                "s/mask (sim.)", "model s/mask"]), ""]
    rt = [(k, v) for k, v in steps.items() if k.startswith("retrain")]
    if rt:
        lines += ["## Retraining after each round (fine-tuning from the current checkpoint on all accepted masks)", "",
                  format_table([[k.replace("retrain", "round"), v["images"], v["masks"],
                                 v.get("skipped") or v["checkpoint"]] for k, v in rt],
                               ["after", "images", "masks", "checkpoint"]), ""]
    held = [(k, v) for k, v in steps.items() if k.startswith("heldout_model")]
    if held:
        lines += ["## Each checkpoint on the same held-out images (val split)", "",
                  format_table([[k.replace("heldout_", ""), v["masks"], f(v.get("clicks_per_mask"), 2),
                                 f(v.get("reached")), f(v.get("miou_1click")), f(v.get("miou_final"))]
                                for k, v in held],
                               ["checkpoint", "objects", "clicks/mask", reached, "1-click mIoU", "final mIoU"]), ""]
    if "stage2" in steps:
        v = steps["stage2"]
        lines += ["## Stage 2: semi-automatic", "",
                  format_table([[v["images"], f(v["prefilled_per_image"], 1), f(v["accepted_per_image"], 2),
                                 f(v["added_per_image"], 2), f(v["masks_per_image"], 2), f(v["clicks_per_image"], 1),
                                 f(v["clicked"].get("clicks_per_mask"), 2)]],
                               ["images", "pre-filled/img", "accepted/img", "added/img", "masks/img", "clicks/img",
                                "clicks/added mask"]), ""]
    if "stage3" in steps:
        v = steps["stage3"]
        lines += ["## Stage 3: fully automatic", "",
                  format_table([[v["images"], f(v["masks_per_image"], 1), f(v["gt_per_image"], 1),
                                 f(v["precision@0.5"]), f(v["recall@0.5"]), f(v["miou_matched"])]],
                               ["images", "masks/img", "objects/img", "precision@0.5", "recall@0.5",
                                "mIoU of matched"]), ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the command
def build_parser() -> argparse.ArgumentParser:
    d = EngineSettings("", "")
    p = Parser(prog="vislearn segment engine",
               description="The data engine with a simulated annotator: assisted-manual rounds with retraining, "
               "semi-automatic, fully automatic. Writes OUT/engine.json, engine.md and the annotations (SA-1B); a "
               "killed run resumes.")
    p.add_argument("--data", required=True, help="data folder with train/ (annotated) and val/ (held-out measure)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--checkpoint", required=True, help="initial SAM checkpoint")
    p.add_argument("--rounds", type=positive_int, default=d.rounds, help=f"stage-1 rounds, each followed by "
                   f"retraining (default {d.rounds})")
    p.add_argument("--images-per-round", type=positive_int, default=d.images_per_round,
                   help=f"new images per stage-1 round and for stage 2 (default {d.images_per_round})")
    p.add_argument("--auto-images", type=positive_int, default=d.auto_images, help="stage-3 images")
    p.add_argument("--eval-images", type=int, default=d.eval_images, help="held-out val images measured per "
                   f"checkpoint (0: none; default {d.eval_images})")
    p.add_argument("--click-budget", type=positive_int, default=d.click_budget, help="clicks per object at most")
    p.add_argument("--iou-target", type=float, default=d.iou_target, help="IoU at which a mask is accepted")
    p.add_argument("--click-seconds", type=float, default=d.click_seconds, help="simulated seconds per click")
    p.add_argument("--points-per-side", type=positive_int, default=d.points_per_side,
                   help=f"generator grid, stages 2-3 (default {d.points_per_side})")
    p.add_argument("--pred-iou-thresh", type=float, default=d.pred_iou_thresh, help="generator filter (official "
                   "0.88)")
    p.add_argument("--stability-thresh", type=float, default=d.stability_thresh, help="generator filter (official "
                   "0.95)")
    p.add_argument("--train-steps", type=positive_int, default=d.train_steps, help="fine-tuning steps per round")
    p.add_argument("--train-batch", type=positive_int, default=d.train_batch, help="images per fine-tuning step")
    p.add_argument("--lr", type=float, default=d.lr, help="fine-tuning learning rate")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device, help="cpu or cuda")
    p.add_argument("--overwrite", action="store_true", help="start again over a run with other settings, or "
                   "write over files vislearn did not write")
    p.add_argument("--quiet", action="store_true")
    return p


def work(args: argparse.Namespace) -> int:
    for name in ("iou_target", "pred_iou_thresh", "stability_thresh"):
        v = getattr(args, name)
        if not 0.0 <= v <= 1.0:
            raise UserError(f"--{name.replace('_', '-')}: expected a number in [0, 1], got {v}")
    if args.click_seconds < 0 or args.lr <= 0 or args.eval_images < 0:
        raise UserError("--click-seconds and --eval-images must be >= 0, --lr > 0")
    if not Path(args.checkpoint).is_file():
        raise UserError(f"{args.checkpoint}: SAM checkpoint not found" if not Path(args.checkpoint).exists()
                        else f"{args.checkpoint}: is a folder, expected a SAM checkpoint file")
    claim_folder(args.out, (STATE, "engine.md"), kind=KIND, overwrite=args.overwrite,
                 inputs=[args.checkpoint, args.data], lock=True)
    from .data.sa1b import load_dataset

    settings = EngineSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(EngineSettings)})
    settings = dataclasses.replace(settings, checkpoint=os.path.abspath(args.checkpoint),
                                   data=os.path.abspath(args.data))
    from .evaluate import load_model

    load_model(settings.checkpoint)  # a bad checkpoint is one line now, not after the first round
    train = load_dataset(args.data, split="train")
    val = load_dataset(args.data, split="val") if args.eval_images and (Path(args.data) / "val").is_dir() else []
    engine = Engine(Path(args.out), settings, overwrite=args.overwrite, progress=not args.quiet)
    engine.run(train, val)
    print(engine_table(engine.state))
    return 0


main = command(build_parser, work)
