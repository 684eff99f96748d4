"""The Segment Anything row of `make demo` (about 2 minutes on 2 cores): renders with part/whole masks, a short
fine-tune of the prompt decoder (image encoder frozen) from the shipped CPU-trained `vit_tiny_c256`
(`weights/`, sha256-checked), then single-point and box mIoU on held-out renders against the untrained model of the
same size and the shipped model before the fine-tune; an overlay of the fine-tuned model's masks on the report page.
Resumable: a second `make demo` reuses the data and the finished fine-tune."""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import torch

from vislearn.common.demo import DemoOutcome, Measure
from vislearn.common.errors import UserError
from vislearn.common.files import write_text
from vislearn.common.jsonio import write_json
from vislearn.common.weights import file_sha256

from .model.build import build_sam, load_sam

WEIGHTS = Path(__file__).resolve().parent / "weights" / "sam_vit_tiny_c256.pth"
WEIGHTS_SHA256 = "8557f59dd23ed00d1c6c99fd4c50eb9af807ec6b477bfcc16b9e62c142e11949"  # weights/README.md
DATA = dict(train=48, val=0, test=12, size=256, seed=101)  # a seed the shipped model never saw
FINETUNE = ["steps=30", "batch_images=2", "masks_per_image=8", "rounds=3", "lr=2e-4", "warmup_steps=3",
            "ckpt_every=10", "freeze_encoder=true", "focal_weight=1"]


def shipped_checkpoint() -> Path:
    if not WEIGHTS.is_file():
        raise UserError(f"{WEIGHTS}: the shipped SAM checkpoint is missing (see {WEIGHTS.parent / 'README.md'})")
    digest = file_sha256(WEIGHTS)
    if WEIGHTS_SHA256 and digest != WEIGHTS_SHA256:
        raise UserError(f"{WEIGHTS}: sha256 {digest[:12]}... is not the shipped file's {WEIGHTS_SHA256[:12]}...")
    return WEIGHTS


def make_data(folder: Path) -> None:
    from .data.generate import main as generate

    args = ["--out", str(folder), "--quiet"] + [f"--{k}={v}" for k, v in DATA.items()]
    if generate(args) != 0:
        raise UserError(f"{folder}: could not render the demo's images")


def overlay_page(model, records, out: Path) -> Path:
    """Single-point masks (model's pick of 3) of the first test images, tiled into one PNG."""
    from .evaluate import interior_points
    from .overlay import draw_overlay, save_png
    from .predictor import SamPredictor

    predictor, tiles = SamPredictor(model), []
    for rec in records[:4]:
        image, gt = rec.load_image(), rec.masks()
        points = interior_points(gt)[:6]
        predictor.set_image(image)
        masks = []
        for p in points:
            m, iou, _ = predictor.predict(point_coords=np.array([p], dtype=np.float32), point_labels=np.array([1]),
                                          multimask_output=True)
            masks.append(m[int(iou.argmax())])
        tiles.append(draw_overlay(image, np.stack(masks), points=np.array(points), labels=np.ones(len(points))))
    path = out / "overlay.png"
    save_png(path, np.concatenate(tiles, axis=1))
    return path


def quick_demo(data: Path, out: Path, jobs: int = 2) -> DemoOutcome:
    from .evaluate import evaluate, load_records
    from .train import load_config, train

    torch.set_num_threads(max(1, jobs))
    out.mkdir(parents=True, exist_ok=True)
    make_data(data)
    weights = shipped_checkpoint()
    cfg = load_config(None, [*FINETUNE, f"init={weights}", f"threads={max(1, jobs)}"])
    run = out / "finetune"
    tuned = train(cfg, data, run, val=[], resume=(run / "last.pt").exists(), log=lambda *a: None, progress=False)
    test = load_records(data, "test")
    shipped, arch = load_sam(weights)
    torch.manual_seed(0)
    untrained = build_sam(arch).eval()
    finetuned, _ = load_sam(run / "sam.pth")
    scores = {name: evaluate(model, test)["miou"] for name, model in
              (("untrained", untrained), ("shipped", shipped), ("finetuned", finetuned))}
    write_json(out / "results.json", {"data": DATA, "finetune": FINETUNE, "train": tuned, "miou": scores}, indent=1)
    picture = overlay_page(finetuned, test, out)
    pct = lambda v: f"{100 * v:.1f}"  # noqa: E731
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{pct(v['point_model'])}</td><td>{pct(v['point_oracle'])}</td>"
                   f"<td>{pct(v['box'])}</td></tr>" for k, v in scores.items())
    report = out / "index.html"
    write_text(report, "<!doctype html><meta charset='utf-8'><title>SAM demo</title><h1>Segment Anything: quick demo"
               f"</h1><p>{arch.name} at {arch.img_size} px, {len(test)} held-out renders; mIoU (%)</p><table border=1>"
               "<tr><th>model</th><th>1 point (model's pick)</th><th>1 point (oracle of 3)</th><th>box</th></tr>"
               f"{rows}</table><p>Fine-tuned model, one click per object (dots), its pick of 3 masks:</p>"
               f"<img src='{picture.name}' style='max-width:100%'>")
    s, u, f = scores["shipped"], scores["untrained"], scores["finetuned"]
    return DemoOutcome(
        measures=[
            Measure(f"SAM {arch.name}: 1-point mIoU, {len(test)} held-out renders", f"{pct(f['point_model'])}%",
                    f"untrained {pct(u['point_model'])}%, shipped before fine-tune {pct(s['point_model'])}%"),
            Measure("SAM box-prompt mIoU", f"{pct(f['box'])}%", f"untrained {pct(u['box'])}%"),
        ],
        report=report,
        notes=[f"decoder fine-tuned {tuned['steps']} steps ({tuned['train_seconds']:.0f} s) from the shipped "
               f"checkpoint on {DATA['train']} renders; point = the mask's interior centre (the paper's protocol)"],
    )
