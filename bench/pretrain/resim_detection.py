"""ReSim against MoCo-v2 where ReSim claims to help: localisation. Pre-train MobileNetV2 + the detector's pyramid on
the renders' training frames with each method, fine-tune the hand/object detector (`vislearn video tracking
train-detector`, FCOS) from each encoder and from random weights, and report held-out AP, AP50 and AP75 over seeds.

    python bench/pretrain/resim_detection.py --data data/video/synthetic --out runs/resim_detection [--seeds 0,1,2]

Every run is a CLI call (the commands a user would type, printed), two at a time on one thread each; finished runs
are kept and a rerun continues (`--resume`). Writes OUT/table.json and OUT/table.md. Nothing is chosen on the
held-out videos: every setting is fixed before the runs and the AP is read once, after the last epoch. Rows: random
init, MoCo-v2, ReSim (body and the pyramid its region losses trained), ReSim's body only (pyramid at random, as
MoCo-v2's).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

PRETRAIN = ["--backbone", "mobilenet_v2_ms", "--fpn-channels", "128", "--img-size", "64", "--batch-size", "64",
            "--threads", "1"]
DETECTOR = ["--frames-per-video", "2", "--batch-size", "8", "--eval-every", "0", "--lr", "0.02",
            "--trainable-layers", "6", "--warmup-iters", "200", "--threads", "1", "--workers", "1", "--quiet"]


def run(cmd: list[str], log: Path) -> None:
    print("$", " ".join(cmd), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with open(log, "a") as f:
        subprocess.run(["nice", "-n", "5", *cmd], check=True, stdout=f, stderr=subprocess.STDOUT, env=env)


def training_videos(data: Path, split: Path, out: Path) -> Path:
    """A folder of links to the split's training videos only: the held-out videos are never pre-trained on."""
    folder = out / "train_videos"
    folder.mkdir(parents=True, exist_ok=True)
    ids = {str(r["id"]) for r in json.loads((split / "train.json").read_text())}
    for video in (data / "videos").iterdir():
        if video.stem in ids and not (folder / video.name).exists():
            (folder / video.name).symlink_to(video.resolve())
    return folder


def pretrain(method: str, seed: int, videos: Path, out: Path, epochs: int) -> Path:
    run_dir = out / f"pre_{method}_s{seed}"
    if not (run_dir / "results.json").exists():
        resume = ["--resume"] if (run_dir / "last.pt").exists() else []
        run([sys.executable, "-m", "vislearn", "pretrain", method, "--data", str(videos), "--out", str(run_dir),
             "--epochs", str(epochs), "--seed", str(seed), *PRETRAIN, *resume], out / f"pre_{method}_s{seed}.log")
    return run_dir / "encoder.pth"


def detector(name: str, weights: str, seed: int, data: Path, split: Path, out: Path, epochs: int) -> dict:
    run_dir = out / f"det_{name}_s{seed}"
    if not (run_dir / "results.json").exists():
        resume = ["--resume"] if (run_dir / "last.pt").exists() else []
        run([sys.executable, "-m", "vislearn", "video", "tracking", "train-detector", "--boxes",
             str(data / "annotations.json"), "--videos", str(data / "videos"), "--split", str(split), "--out",
             str(run_dir), "--backbone-weights", weights, "--epochs", str(epochs), "--seed", str(seed), *DETECTOR,
             *resume], out / f"det_{name}_s{seed}.log")
    final = json.loads((run_dir / "results.json").read_text())["final"]
    return {"init": name, "seed": seed, "ap": final["map"], "ap50": final["map50"], "ap75": final["map75"],
            **{k: v for k, v in final.items() if k.startswith(("ap50_", "ap75_"))}}


def body_only(encoder: Path) -> Path:
    """The encoder file without its pyramid (the detector's pyramid then starts at random, as from MoCo-v2's, whose
    pyramid no loss trains)."""
    import torch  # noqa: PLC0415

    out = encoder.with_name("encoder_body.pth")
    if not out.exists():
        ckpt = torch.load(encoder, map_location="cpu", weights_only=False)
        ckpt["model"] = {k: v for k, v in ckpt["model"].items() if not k.startswith("fpn.")}
        ckpt["backbone_args"] = {**ckpt["backbone_args"], "fpn_channels": 0}
        torch.save(ckpt, out)
    return out


def summarise(rows: list[dict]) -> dict:
    table = {}
    for name in dict.fromkeys(r["init"] for r in rows):
        mine = [r for r in rows if r["init"] == name]
        table[name] = {m: {"mean": float(np.mean([r[m] for r in mine])), "std": float(np.std([r[m] for r in mine])),
                           "seeds": [r[m] for r in mine]} for m in ("ap", "ap50", "ap75")}
    return table


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data/video/synthetic", help="the synthetic Something-Else set (make demo's)")
    p.add_argument("--split", default="compositional")
    p.add_argument("--out", default="runs/resim_detection")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--pretrain-epochs", type=int, default=4)
    p.add_argument("--detector-epochs", type=int, default=6)
    p.add_argument("--jobs", type=int, default=2)
    args = p.parse_args()
    data, out = Path(args.data), Path(args.out)
    split = data / "splits" / args.split
    out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    videos = training_videos(data, split, out)
    with ThreadPoolExecutor(args.jobs) as pool:
        encoders = {(m, s): pool.submit(pretrain, m, s, videos, out, args.pretrain_epochs)
                    for s in seeds for m in ("moco", "resim")}
        jobs = [pool.submit(detector, "random", "none", s, data, split, out, args.detector_epochs) for s in seeds]
        jobs += [pool.submit(lambda m=m, s=s: detector(m, str(encoders[m, s].result()), s, data, split, out,
                                                        args.detector_epochs)) for s in seeds for m in ("moco", "resim")]
        jobs += [pool.submit(lambda s=s: detector("resim_body", str(body_only(encoders["resim", s].result())), s, data,
                                                  split, out, args.detector_epochs)) for s in seeds]
        rows = [j.result() for j in jobs]
    table = summarise(rows)
    (out / "table.json").write_text(json.dumps({"rows": rows, "table": table, "args": vars(args)}, indent=1))
    lines = ["| init | AP@[.5:.95] | AP50 | AP75 |", "|---|---|---|---|"]
    for name, t in table.items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * t[m]['mean']:.1f} ± {100 * t[m]['std']:.1f}"
                                                 for m in ("ap", "ap50", "ap75")) + " |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
