"""The MAE row of `make demo` (under 2 minutes on 2 cores): a short MAE pre-training of ViT_P-tiny on hand-object
frames (the synthetic Something-Else videos), then a linear probe on the rendered object image set against the
same architecture untrained (seeded). Resumable: a second `make demo` reuses the finished pre-training."""
from __future__ import annotations

from pathlib import Path

import torch

from vislearn.common.demo import DemoOutcome, Measure
from vislearn.common.errors import UserError
from vislearn.common.jsonio import write_json

from .probe import load_encoder, load_splits, probe
from .train_mae import MAEConfig, pretrain

# 300 videos x 8 frames (decoding all 1,000 videos for 4 frames each costs more than the training), 400 steps
DEMO_CONFIG = dict(backbone="vit_p_tiny", img_size=64, epochs=5, steps_per_epoch=80, batch_size=64, blr=4e-3,
                   warmup_epochs=1.0, frames_per_video=8, max_frames=2400)


def quick_demo(data: Path, out: Path, jobs: int = 2) -> DemoOutcome:
    videos = Path(data) / "videos"
    if not videos.is_dir():
        raise UserError(f"{videos}: no hand-object videos to pre-train on (the video demo makes them)")
    torch.set_num_threads(max(1, jobs))
    cfg = MAEConfig(data=str(videos), out=str(Path(out) / "mae"), **DEMO_CONFIG)
    mae = pretrain(cfg, resume=True, log=lambda *a: None, progress=False)
    splits = load_splits("objects", 64)
    ours = probe(load_encoder(str(Path(cfg.out) / "encoder.pth")), splits)
    rand = probe(load_encoder("random:vit_p_tiny", 64, seed=0), splits)
    chance = 1 - 1 / len(splits["train"].classes)
    write_json(Path(out) / "probe.json", {"mae": ours, "random": rand, "mae_run": mae}, indent=1)
    return DemoOutcome(
        measures=[
            Measure("MAE ViT_P-tiny, linear probe test error (24 objects)", f"{100 * ours['test_error']:.1f}%",
                    f"random encoder {100 * rand['test_error']:.1f}%, chance {100 * chance:.1f}%"),
            Measure("MAE reconstruction loss (fixed masks), first -> last epoch",
                    f"{mae['first_loss']:.3f} -> {mae['final_loss']:.3f}", "falls"),
        ],
        report=Path(cfg.out) / "index.html",
        notes=[f"{mae['epochs']} epochs on {mae['frames']} frames of {videos}, {mae['train_seconds']:.0f} s; probe: "
               "logistic regression on standardised class-token features, C chosen on val, test error reported"],
    )
