"""SAM on one CPU core: ours against the official `segment-anything` 1.0 on the same weights, and onnxruntime
against torch for the exported decoder. Every figure sits next to its baseline measured in the same run (alternating
the two, so machine noise hits both alike; median of --reps), as a ratio (ours / baseline: > 1 is faster).

- image encoder, images/s: the small sizes (`vit_tiny_p256` against the official `ImageEncoderViT` built at 256 px
  with the same weights; `vit_tiny_c256`, the conv-stem ViT_C, has no official counterpart: against the official
  ViT_P at 256 px, its equal-flops baseline), and ViT-B at 1024 px with --vit-b (one image each: ~1 min per pass);
- decoder, prompts/s: 64 single-click prompts per call (the automatic mask generator's batch), three masks each,
  image embedding and positions given: ours `Sam.decode` against the official prompt encoder + mask decoder, at
  each size's embedding grid (16x16 at 256 px, 64x64 at 1024 px);
- exported decoder: the ONNX graph (`vislearn segment export`) in onnxruntime, float and 8-bit, against the same
  graph in torch (`SamOnnxDecoder`): one prompt per call with one mask at 480x640 (the interactive case of the
  official web demo) and 64 prompts per call with four masks at 256x256;
- automatic masks, seconds per image: `vislearn.segment.automatic.AutomaticMaskGenerator(model).generate` against
  the official `SamAutomaticMaskGenerator` (same weights, default settings, 32x32 points; --quick: 16x16) on a
  synthetic 192x256 image, at `vit_tiny_p256`; the number of masks of both is printed (they should agree).

Weights are random (the official package ships none); speed does not depend on them.

    nice .venv/bin/python bench/segment/bench_sam.py [--quick] [--reps N] [--vit-b] [--skip auto onnx ...]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vislearn.segment.model.build import ARCHS, SamArch, build_sam  # noqa: E402

PARTS = ("encoder", "decoder", "onnx", "auto")


# ------------------------------------------------------------------------------------------ models

def official_sam(arch: SamArch):
    """The official classes wired as `segment_anything.build_sam` does, at `arch`'s size (plain ViT only)."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    grid = arch.img_size // arch.patch_size
    return Sam(
        image_encoder=ImageEncoderViT(img_size=arch.img_size, patch_size=arch.patch_size, embed_dim=arch.width,
                                      depth=arch.depth, num_heads=arch.heads, mlp_ratio=arch.mlp_ratio,
                                      out_chans=arch.prompt_dim, qkv_bias=True,
                                      norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), use_rel_pos=True,
                                      window_size=arch.window_size, global_attn_indexes=arch.global_attn_indexes),
        prompt_encoder=PromptEncoder(embed_dim=arch.prompt_dim, image_embedding_size=(grid, grid),
                                     input_image_size=(arch.img_size, arch.img_size), mask_in_chans=arch.mask_in_chans),
        mask_decoder=MaskDecoder(num_multimask_outputs=3, transformer=TwoWayTransformer(
            depth=arch.decoder_depth, embedding_dim=arch.prompt_dim, mlp_dim=arch.decoder_mlp,
            num_heads=arch.decoder_heads), transformer_dim=arch.prompt_dim, iou_head_depth=3,
            iou_head_hidden_dim=arch.iou_head_hidden),
        pixel_mean=list(arch.pixel_mean), pixel_std=list(arch.pixel_std)).eval()


def pair(name: str):
    """Ours with random weights (relative positions perturbed, as trained ones are not zero) and the official model
    with the same state dict."""
    torch.manual_seed(0)
    ours = build_sam(name).eval()
    with torch.no_grad():
        for key, p in ours.named_parameters():
            if "rel_pos" in key:
                p.normal_(0, 0.02)
    official = official_sam(ARCHS[name])
    official.load_state_dict(ours.state_dict(), strict=True)
    return ours, official


# ------------------------------------------------------------------------------------------ timing

def alternate(fns: dict, reps: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each function, calls interleaved."""
    with torch.no_grad():
        for _ in range(warmup):
            for fn in fns.values():
                fn()
        times = {k: [] for k in fns}
        for _ in range(reps):
            for k, fn in fns.items():
                t = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def row(what: str, unit: str, ours: float, base: float, base_name: str) -> None:
    """Rates (per second): ours, the baseline, and ours / baseline."""
    print(f"  {what:<52} {ours:10.3g} {unit:<9} {base:10.3g} {unit:<9} x{ours / base:5.2f}  (vs {base_name})", flush=True)


def header(title: str) -> None:
    print(f"\n{title}\n  {'':<52} {'ours':>10} {'':<9} {'baseline':>10}", flush=True)


def image(size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (1, 3, size, size), generator=g).float()


# ------------------------------------------------------------------------------------------ parts

def bench_encoder(models: dict, args) -> None:
    header("image encoder, images/s (one image per call, preprocessed 0-255 input)")
    if "vit_tiny_p256" in models:
        ours, official = models["vit_tiny_p256"]
        x = image(256)
        t = alternate({"ours_p": lambda: ours.image_encoder(ours.preprocess(x)),
                       "official_p": lambda: official.image_encoder(official.preprocess(x))}, args.reps)
        row("vit_tiny_p256 (ViT_P, 256 px)", "img/s", 1 / t["ours_p"], 1 / t["official_p"], "official ViT_P 256")
        if "vit_tiny_c256" in models:
            conv = models["vit_tiny_c256"][0]
            t = alternate({"ours_c": lambda: conv.image_encoder(conv.preprocess(x)),
                           "official_p": lambda: official.image_encoder(official.preprocess(x))}, args.reps)
            row("vit_tiny_c256 (ViT_C conv stem, 256 px)", "img/s", 1 / t["ours_c"], 1 / t["official_p"],
                "official ViT_P 256")
    if "vit_b" in models:
        ours, official = models["vit_b"]
        x = image(1024)
        print("  (ViT-B at 1024 px: one pass each, ~1 min per pass on one core)", flush=True)
        t = alternate({"ours": lambda: ours.image_encoder(ours.preprocess(x)),
                       "official": lambda: official.image_encoder(official.preprocess(x))},
                      reps=max(1, args.vit_b_reps), warmup=0)
        row("vit_b (1024 px)", "img/s", 1 / t["ours"], 1 / t["official"], "official ViT-B")
        print(f"  {'':<52} {t['ours']:10.3g} s/img    {t['official']:10.3g} s/img", flush=True)


def bench_decoder(models: dict, args) -> None:
    header(f"decoder, prompts/s ({args.batch} one-click prompts per call, 3 masks each)")
    for name, (ours, official) in models.items():
        if official is None:
            continue
        pe = ours.prompt_encoder
        g = torch.Generator().manual_seed(1)
        emb = torch.randn(1, pe.embed_dim, *pe.image_embedding_size, generator=g)
        coords = torch.rand(args.batch, 1, 2, generator=g) * ours.img_size
        labels = torch.ones(args.batch, 1, dtype=torch.long)

        def official_decode():
            sparse, dense = official.prompt_encoder(points=(coords, labels), boxes=None, masks=None)
            return official.mask_decoder(image_embeddings=emb, image_pe=official.prompt_encoder.get_dense_pe(),
                                         sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                         multimask_output=True)

        reps = args.reps if pe.image_embedding_size[0] <= 32 else max(1, args.reps // 2)
        t = alternate({"ours": lambda: ours.decode(emb, (coords, labels), multimask_output=True),
                       "official": official_decode}, reps)
        grid = "x".join(map(str, pe.image_embedding_size))
        row(f"{name} (embedding {grid})", "prompt/s", args.batch / t["ours"], args.batch / t["official"],
            "official decoder")


def bench_onnx(models: dict, args) -> None:
    from vislearn.segment.export import decoder_axes, quantize, session, write_onnx
    from vislearn.segment.onnx_model import DECODER_INPUTS, SamOnnxDecoder, decoder_example

    header("exported decoder, prompts/s: onnxruntime (1 thread) vs the same graph in torch")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (ours, official) in models.items():
            if official is None:  # vit_tiny_c256: the same decoder as vit_tiny_p256
                continue
            for single, prompts, size, label in [(True, 1, (480, 640), "1 prompt/call, 1 mask at 480x640"),
                                                 (False, args.batch, (256, 256),
                                                  f"{args.batch} prompts/call, 4 masks at 256x256")]:
                wrapper = SamOnnxDecoder(ours, return_single_mask=single).eval()
                path = Path(tmp) / f"{name}_{int(single)}.onnx"
                write_onnx(wrapper, tuple(decoder_example(ours).values()), path, DECODER_INPUTS,
                           wrapper.output_names, decoder_axes(wrapper.output_names), 17, {})
                qpath = path.with_suffix(".q.onnx")
                quantize(path, qpath)
                sess, qsess = session(path, threads=1), session(qpath, threads=1)
                feeds = decoder_example(ours, num_points=1, num_prompts=prompts, orig_size=size, seed=3)
                arrays = {k: v.numpy() for k, v in feeds.items()}
                use = {i.name for i in sess.get_inputs()}
                quse = {i.name for i in qsess.get_inputs()}
                reps = args.reps * (5 if prompts == 1 else 1)
                t = alternate({"torch": lambda: wrapper(*feeds.values()),
                               "onnx": lambda: sess.run(None, {k: arrays[k] for k in use}),
                               "quant": lambda: qsess.run(None, {k: arrays[k] for k in quse})}, reps)
                row(f"{name}: {label}", "prompt/s", prompts / t["onnx"], prompts / t["torch"], "torch")
                row(f"{name}: same, 8-bit weights", "prompt/s", prompts / t["quant"], prompts / t["torch"], "torch")


def synthetic_image(h: int = 192, w: int = 256, seed: int = 0) -> np.ndarray:
    """Flat-coloured rectangles and discs on a gradient: something with edges for the masks to find."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    img = np.stack([xx * 255 / w, yy * 255 / h, np.full((h, w), 96.0)], -1)
    for _ in range(8):
        colour = rng.integers(0, 256, 3)
        cx, cy, r = rng.integers(0, w), rng.integers(0, h), rng.integers(10, 50)
        if rng.random() < 0.5:
            img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = colour
        else:
            img[max(0, cy - r):cy + r, max(0, cx - r):cx + r] = colour
    return img.astype(np.uint8)


def bench_auto(models: dict, args) -> None:
    try:
        from vislearn.segment.automatic import AutomaticMaskGenerator
    except ImportError as e:
        print(f"\nautomatic masks: skipped ({e})")
        return
    from segment_anything import SamAutomaticMaskGenerator

    side = 16 if args.quick else 32
    header(f"automatic masks, images/s ({side}x{side} points, 192x256 image)")
    img = synthetic_image()
    # random weights: the default filters (predicted IoU > 0.88, stability >= 0.95) keep nothing, so the cost is the
    # decoder's; with the filters off every mask goes through boxes, RLE and NMS as well
    settings = {"default filters": {}, "filters off": dict(pred_iou_thresh=0.0, stability_score_thresh=0.0)}
    for name, (ours, official) in models.items():
        if official is None or name == "vit_b":
            continue
        for label, kw in settings.items():
            mine = AutomaticMaskGenerator(ours, points_per_side=side, **kw)
            theirs = SamAutomaticMaskGenerator(official, points_per_side=side, **kw)
            counts = {}

            def run(key, gen):
                counts[key] = len(gen.generate(img))

            t = alternate({"ours": lambda: run("ours", mine), "official": lambda: run("official", theirs)},
                          max(1, args.reps // 3), warmup=0)
            row(f"{name}, {label}: {counts['ours']} masks (official {counts['official']})", "img/s", 1 / t["ours"],
                1 / t["official"], "official generator")
            print(f"  {'':<52} {t['ours']:10.3g} s/img    {t['official']:10.3g} s/img", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer repetitions and a 16x16 point grid")
    p.add_argument("--reps", type=int, default=None, help="measurements per figure (default 7; --quick 3)")
    p.add_argument("--vit-b", action="store_true", help="also ViT-B at 1024 px (encoder: minutes; decoder at 64x64)")
    p.add_argument("--vit-b-reps", type=int, default=1, help="passes of each ViT-B encoder (default 1)")
    p.add_argument("--batch", type=int, default=64, help="prompts per decoder call (default 64)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--skip", nargs="*", default=[], choices=PARTS, help="parts to leave out")
    args = p.parse_args(argv)
    args.reps = args.reps or (3 if args.quick else 7)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    models = {"vit_tiny_p256": pair("vit_tiny_p256")}
    torch.manual_seed(0)
    models["vit_tiny_c256"] = (build_sam("vit_tiny_c256").eval(), None)
    if args.vit_b:
        models["vit_b"] = pair("vit_b")
    print(f"torch {torch.__version__}, {args.threads} thread(s), reps {args.reps}, {os.cpu_count()} CPUs on the "
          f"machine; ratio = ours / baseline (> 1: ours faster)")
    parts = {"encoder": bench_encoder, "decoder": bench_decoder, "onnx": bench_onnx, "auto": bench_auto}
    for part, fn in parts.items():
        if part not in args.skip:
            fn(models, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
