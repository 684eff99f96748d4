"""Latency of STIN+OIE+NL (the official size: C=256, 8 box frames, 4 slots, 174 classes) on the CPU:
eager PyTorch vs the TorchScript file vs the ONNX file in onnxruntime, as `vislearn video export` writes
them, at batch 1 and 72. All runtimes get the same thread count and the same inputs (boxes of realistic
shape with some empty slots); timings are interleaved round by round and the median is kept, so the
ratios to eager (measured in the same run) are what to read on a shared machine.

    python bench/bench_export.py [--threads 1] [--rounds 7]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


from vislearn.video.actions.config import TrainConfig, to_dict  # noqa: E402
from vislearn.video.actions.export import example_batch, export, load_exported, model_input_specs  # noqa: E402
from vislearn.video.actions.models import create_model  # noqa: E402
from vislearn.common.checkpoint import save_checkpoint  # noqa: E402
from vislearn.common.cli import Parser, run_main  # noqa: E402


def per_call(fn, batch, seconds: float) -> float:
    """Seconds per call, from as many calls as fit in `seconds` (at least 3)."""
    fn(batch)  # warm-up
    n, start = 0, time.perf_counter()
    while n < 3 or time.perf_counter() - start < seconds:
        fn(batch)
        n += 1
    return (time.perf_counter() - start) / n


def main() -> None:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--seconds", type=float, default=0.5, help="per measurement")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import onnxruntime as ort

    torch.manual_seed(0)
    model = create_model("stin_oie_nl", 174).eval()
    cfg = TrainConfig()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "stin_oie_nl.pt"
        save_checkpoint({"model": model.state_dict(), "model_name": "stin_oie_nl", "model_args": {},
                         "class_names": [str(i) for i in range(174)], "config": to_dict(cfg)}, ckpt)
        for fmt in ("torchscript", "onnx"):
            export(ckpt, fmt, Path(tmp) / f"model.{fmt}", log=lambda *a: None)
        torchscript = load_exported(Path(tmp) / "model.torchscript", "torchscript")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = args.threads, 1
        session = ort.InferenceSession(str(Path(tmp) / "model.onnx"), opts, providers=["CPUExecutionProvider"])
        feeds = [i.name for i in session.get_inputs()]

        def eager(batch):
            with torch.no_grad():
                return model(batch)

        def onnxruntime(batch):
            return session.run(["logits"], {n: batch[n + "_np"] for n in feeds})[0]

        runtimes = {"eager": eager, "torchscript": torchscript, "onnxruntime": onnxruntime}
        specs = model_input_specs(model, cfg)
        print(f"STIN+OIE+NL, {sum(p.numel() for p in model.parameters()):,} parameters, CPU, {args.threads} thread(s), "
              f"torch {torch.__version__}, onnxruntime {ort.__version__}; median of {args.rounds} interleaved rounds")
        print(f"{'batch':>5}  {'runtime':<12} {'ms/batch':>9} {'ms/clip':>8} {'vs eager':>9}")
        for b in (1, 72):
            batch = example_batch(specs, b, seed=b)
            batch.update({k + "_np": v.numpy() for k, v in list(batch.items())})
            got = {name: [] for name in runtimes}
            for _ in range(args.rounds):
                for name, fn in runtimes.items():
                    got[name].append(per_call(fn, batch, args.seconds))
            base = statistics.median(got["eager"])
            for name, times in got.items():
                t = statistics.median(times)
                print(f"{b:>5}  {name:<12} {1000 * t:>9.3f} {1000 * t / b:>8.3f} {base / t:>8.2f}x")


if __name__ == "__main__":
    sys.exit(run_main(main))
