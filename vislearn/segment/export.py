"""`vislearn segment export --checkpoint CKPT --out DIR`: SAM as ONNX files, checked against the torch model.

Writes into DIR (a folder of this command; an existing file of someone else's is replaced only with --overwrite):

  decoder.onnx            prompt encoder + mask decoder + mask upscaling, the official `SamOnnxModel` graph
                          (inputs image_embeddings, point_coords, point_labels, mask_input, has_mask_input,
                          orig_im_size; outputs masks, iou_predictions, low_res_masks; see
                          `vislearn.segment.onnx_model`); number of points and of prompts dynamic
  encoder.onnx            image encoder with the preprocessing inside: 0-255 RGB [B,3,h,w] resized so its long side
                          is the model's img_size (B, h, w dynamic) -> image_embeddings [B,256,S/16,S/16]
  *_quantized.onnx        with --quantize: weights as 8-bit integers (onnxruntime's `quantize_dynamic`, QUInt8,
                          per tensor, as the official script); ~4x smaller, less exact (the error is reported)
  export.json             the model's size, the inputs and options, and the check's figures per file

Each file is written atomically and kept only when onnxruntime, run on example inputs (point, box, several points,
a previous mask, several prompts, image sizes other than the traced one), reproduces the torch model within
--tolerance (default 1e-4, max |difference| on logits and IoU predictions): otherwise nothing is kept and the exit
code is 1. The quantised files are reported, not required to match. With --gelu-approximate the files use GELU's
tanh form (no Erf op, for runtimes that lack it); they are checked against the torch model with that same GELU, and
export.json also gives their distance to the exact model. The same metadata sits in each file (ONNX metadata key
`vislearn_sam`).

Uses torch's TorchScript-based ONNX exporter (`dynamo=False`, opset 17 by default), as `vislearn video export`.
On one CPU core the ViT-B encoder takes a few minutes (it is run 5 times: trace, and twice in each runtime);
the decoder takes seconds. The ViT-H encoder (2.5 GB of weights) is over ONNX's 2 GB single-file limit: refused.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vislearn.common.cli import EXIT_FAILED, Parser, command, positive_int
from vislearn.common.errors import UserError
from vislearn.common.files import atomic_path, remove_stale_files
from vislearn.common.jsonio import write_json
from vislearn.common.outputs import claim_folder

from .model.build import SamArch, load_sam
from .onnx_model import (DECODER_INPUTS, ENCODER_INPUTS, ENCODER_OUTPUTS, SamOnnxDecoder, SamOnnxEncoder,
                         decoder_example, encoder_example, use_gelu_approximation)

KIND = "segment export"
META_KEY = "vislearn_sam"
FORMAT, VERSION = "vislearn-sam-onnx", 1
OPSET = 17
PARTS = ("decoder", "encoder")
ONNX_LIMIT = 2 * 2**30  # protobuf's limit on one file
# what the check runs on the decoder: every kind of prompt, other point counts and image sizes than the traced ones
DECODER_CASES = {
    "point": dict(num_points=1, orig_size=(480, 640)),
    "box": dict(num_points=0, box=True, orig_size=(640, 480)),
    "points+box": dict(num_points=2, box=True, orig_size=(333, 500)),
    "points": dict(num_points=4, orig_size=(77, 130)),
    "mask": dict(num_points=1, mask=True, orig_size=(512, 512)),
    "prompts": dict(num_points=1, num_prompts=3, orig_size=(200, 300)),
}


def file_names(what: tuple[str, ...], quantize: bool) -> dict[str, str]:
    names = {part: f"{part}.onnx" for part in what}
    if quantize:
        names.update({f"{part}_quantized": f"{part}_quantized.onnx" for part in what})
    return names


@contextlib.contextmanager
def quiet_export():
    """The exporter's deprecation notices and tracer warnings (shapes read as Python numbers in the model's own
    code, constant for a fixed image size) are not the user's concern."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        yield


@contextlib.contextmanager
def quiet_logging():
    """onnxruntime's quantiser logs advice and per-tensor notes (integer shape tensors it leaves alone) as warnings
    of the root logger: not the user's concern either."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def _onnx():
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise UserError("segment export needs the `onnx` and `onnxruntime` packages: pip install onnx onnxruntime") \
            from None
    return onnx, onnxruntime


def write_onnx(wrapper: nn.Module, example: tuple, path: Path, input_names, output_names, dynamic_axes: dict,
               opset: int, meta: dict) -> None:
    onnx, _ = _onnx()
    with torch.no_grad(), quiet_export():
        torch.onnx.export(wrapper, example, str(path), input_names=list(input_names), output_names=list(output_names),
                          dynamic_axes=dynamic_axes, opset_version=opset, dynamo=False, do_constant_folding=True)
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta)
    onnx.save(proto, str(path))


def session(path: Path, threads: int | None = None):
    _, ort = _onnx()
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = options.inter_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run(sess, feeds: dict[str, torch.Tensor]) -> list[np.ndarray]:
    names = {i.name for i in sess.get_inputs()}  # an input the graph does not use is not declared
    return sess.run(None, {k: v.numpy() for k, v in feeds.items() if k in names})


def compare(got: list[np.ndarray], want: tuple[torch.Tensor, ...], names) -> dict:
    """Max and mean |difference| per output, and for logits the share of pixels on the same side of 0."""
    out = {}
    for name, g, w in zip(names, got, want):
        w = w.numpy()
        if g.shape != w.shape:
            raise ExportMismatch(f"output {name}: shape {list(g.shape)} where the torch model gives {list(w.shape)}")
        d = np.abs(g.astype(np.float64) - w.astype(np.float64))
        row = {"max_abs": float(d.max()) if d.size else 0.0, "mean_abs": float(d.mean()) if d.size else 0.0}
        if name in ("masks", "low_res_masks"):
            row["same_sign"] = float(((g > 0) == (w > 0)).mean())
        out[name] = row
    return out


def worst(figures: dict, names=("masks", "low_res_masks", "iou_predictions", "image_embeddings")) -> float:
    """The largest max |difference| over the checked outputs of every case."""
    return max((row[n]["max_abs"] for row in figures.values() for n in names if n in row), default=0.0)


# ------------------------------------------------------------------------------------------ the two graphs

def decoder_axes(output_names) -> dict:
    prompts = {0: "num_prompts"}
    return {"point_coords": {**prompts, 1: "num_points"}, "point_labels": {**prompts, 1: "num_points"},
            "mask_input": {0: "mask_batch"}, **{n: dict(prompts) for n in output_names}}


def check_decoder(sess, wrapper: SamOnnxDecoder, exact: SamOnnxDecoder | None = None) -> tuple[dict, dict]:
    """onnxruntime against the torch wrapper on every case; with `exact` (the model before the GELU
    approximation), also the torch wrapper against it."""
    figures, approximation = {}, {}
    for i, (case, kw) in enumerate(DECODER_CASES.items()):
        feeds = decoder_example(wrapper.model, seed=10 + i, **kw)
        want = wrapper(*feeds.values())
        figures[case] = compare(_run(sess, feeds), want, wrapper.output_names)
        if exact is not None:
            approximation[case] = compare([w.numpy() for w in want], exact(*feeds.values()), wrapper.output_names)
    return figures, approximation


def check_encoder(sess, wrapper: SamOnnxEncoder, exact: SamOnnxEncoder | None = None) -> tuple[dict, dict]:
    """Two images of another aspect ratio than the traced one (batch and size are dynamic)."""
    image = encoder_example(wrapper.model, batch=2, aspect=0.5, seed=7)
    want = (wrapper(image),)
    figures = {"batch2": compare(_run(sess, {"image": image}), want, ENCODER_OUTPUTS)}
    approximation = {"batch2": compare([want[0].numpy()], (exact(image),), ENCODER_OUTPUTS)} if exact else {}
    return figures, approximation


def quantize(src: Path, dst: Path) -> None:
    """8-bit weights, as the official export script makes them (QUInt8, per tensor, full range)."""
    _onnx()
    from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: PLC0415

    with quiet_export(), quiet_logging():
        quantize_dynamic(model_input=str(src), model_output=str(dst), per_channel=False, reduce_range=False,
                         weight_type=QuantType.QUInt8)


# ------------------------------------------------------------------------------------------ the command

def metadata(arch: SamArch, model: nn.Module, checkpoint: str, opts: dict) -> dict:
    pe = model.prompt_encoder
    h, w = pe.image_embedding_size
    return {"format": FORMAT, "version": VERSION, "checkpoint": checkpoint, "arch": arch.to_dict(),
            "img_size": int(model.image_encoder.img_size), "embedding_shape": [int(pe.embed_dim), int(h), int(w)],
            "mask_input_size": [4 * int(h), 4 * int(w)], "mask_threshold": float(model.mask_threshold),
            "pixel_mean": list(arch.pixel_mean), "pixel_std": list(arch.pixel_std), "options": opts}


def export(checkpoint: str, out: str | Path, what: tuple[str, ...] = PARTS, single_mask: bool = False,
           gelu_approximate: bool = False, quantized: bool = False, opset: int = OPSET, tolerance: float = 1e-4,
           use_stability_score: bool = False, return_extra_metrics: bool = False, log=print) -> dict:
    """Export the parts `what` of the SAM in `checkpoint` into the folder `out` (claimed by the caller) and check
    them; returns what export.json holds. Raises ExportMismatch (nothing of that part kept) when a file is off."""
    out = Path(out)
    model, arch = load_sam(checkpoint)
    opts = {"parts": list(what), "return_single_mask": single_mask, "gelu_approximate": gelu_approximate,
            "use_stability_score": use_stability_score, "return_extra_metrics": return_extra_metrics,
            "quantize": quantized, "opset": opset, "tolerance": tolerance}
    meta = metadata(arch, model, str(checkpoint), opts)
    if "encoder" in what:
        weights = sum(p.numel() * p.element_size() for p in model.image_encoder.parameters())
        if weights >= ONNX_LIMIT * 0.95:
            raise UserError(f"{checkpoint}: the {arch.name} image encoder has {weights / 2**30:.1f} GB of weights, "
                            "over ONNX's 2 GB single-file limit; export the decoder alone (--what decoder)")
    exported = use_gelu_approximation(model) if gelu_approximate else model
    report = {**meta, "files": {}}
    for part in what:
        if part == "decoder":
            wrapper = SamOnnxDecoder(exported, single_mask, use_stability_score, return_extra_metrics).eval()
            exact = SamOnnxDecoder(model, single_mask, use_stability_score, return_extra_metrics).eval() \
                if gelu_approximate else None
            example = tuple(decoder_example(model, num_points=3).values())
            inputs, outputs, axes = DECODER_INPUTS, wrapper.output_names, decoder_axes(wrapper.output_names)
            check = check_decoder
        else:
            wrapper, exact = SamOnnxEncoder(exported).eval(), (SamOnnxEncoder(model).eval() if gelu_approximate else None)
            example = (encoder_example(model, batch=1, aspect=0.75),)
            inputs, outputs = ENCODER_INPUTS, ENCODER_OUTPUTS
            axes = {"image": {0: "batch", 2: "height", 3: "width"}, "image_embeddings": {0: "batch"}}
            check = check_encoder
        path = out / f"{part}.onnx"
        remove_stale_files(path)
        start = time.perf_counter()
        with atomic_path(path) as tmp:
            write_onnx(wrapper, example, tmp, inputs, outputs, axes, opset,
                       {**meta, "part": part, "inputs": list(inputs), "outputs": list(outputs)})
            seconds = time.perf_counter() - start
            figures, approx = check(session(tmp), wrapper, exact)
            diff = worst(figures)
            if not diff <= tolerance:
                raise ExportMismatch(f"{path}: onnxruntime's outputs differ from the torch model's by {diff:.3g} "
                                     f"(tolerance {tolerance:g}); the file was not kept")
        entry = {"file": path.name, "bytes": path.stat().st_size, "export_seconds": round(seconds, 2),
                 "check_seconds": round(time.perf_counter() - start - seconds, 2), "max_abs_difference": diff,
                 "check": figures}
        if approx:
            entry["gelu_approximation_max_abs"] = worst(approx)
        report["files"][part] = entry
        log(f"wrote {path}: {path.stat().st_size / 2**20:.1f} MiB, {seconds:.1f} s; onnxruntime vs torch: "
            f"max |difference| {diff:.2g} over {len(figures)} checks")
        if quantized:
            qpath = out / f"{part}_quantized.onnx"
            remove_stale_files(qpath)
            with atomic_path(qpath) as tmp:
                quantize(path, tmp)
                qfigures, _ = check(session(tmp), wrapper)
            qdiff = worst(qfigures)
            report["files"][f"{part}_quantized"] = {"file": qpath.name, "bytes": qpath.stat().st_size,
                                                    "max_abs_difference": qdiff, "check": qfigures}
            signs = [row[n]["same_sign"] for row in qfigures.values() for n in ("masks",) if n in row]
            agree = f", mask pixels agreeing {min(signs):.4f}" if signs else ""
            log(f"wrote {qpath}: {qpath.stat().st_size / 2**20:.1f} MiB (8-bit weights); vs torch: max |difference| "
                f"{qdiff:.3g}{agree} (reported, not required)")
    return report


class ExportMismatch(Exception):
    """The exported graph does not compute what the torch model computes (a bug, not a user mistake)."""


def run(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    what = tuple(dict.fromkeys(args.what))
    names = [*file_names(what, args.quantize).values(), "export.json"]
    claim_folder(args.out, names, kind=KIND, overwrite=args.overwrite, inputs=[args.checkpoint], lock=True)
    try:
        report = export(args.checkpoint, args.out, what, args.single_mask, args.gelu_approximate, args.quantize,
                        args.opset, args.tolerance, args.use_stability_score, args.return_extra_metrics)
    except ExportMismatch as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    write_json(Path(args.out) / "export.json", report, indent=1)
    return 0


def opset_number(text: str) -> int:
    v = positive_int(text)
    if not 14 <= v <= 21:
        raise argparse.ArgumentTypeError(f"ONNX opset from 14 to 21, got {v}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn segment export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, metavar="CKPT",
                   help="a SAM checkpoint: ours (segment train, save_sam) or an official sam_vit_{b,l,h}_*.pth")
    p.add_argument("--out", required=True, metavar="DIR", help="the folder to write the ONNX files and export.json into")
    p.add_argument("--what", nargs="+", choices=PARTS, default=list(PARTS),
                   help="which graphs to export (default: both)")
    p.add_argument("--single-mask", action="store_true",
                   help="the decoder returns one mask per prompt, chosen as the official graph does (the best "
                        "multimask output for one click or a box, the single-mask output for more clicks); "
                        "default: all four masks")
    p.add_argument("--use-stability-score", action="store_true",
                   help="scores are the stability scores of the low-res masks instead of the predicted IoUs")
    p.add_argument("--return-extra-metrics", action="store_true",
                   help="the decoder also returns stability_scores and areas of the upscaled masks")
    p.add_argument("--gelu-approximate", action="store_true",
                   help="GELU's tanh approximation: no Erf op, for runtimes without it (slightly different numbers)")
    p.add_argument("--quantize", action="store_true",
                   help="also write PART_quantized.onnx with 8-bit weights (onnxruntime quantize_dynamic)")
    p.add_argument("--opset", type=opset_number, default=OPSET, help=f"ONNX opset (default {OPSET})")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="largest |difference| to the torch model accepted by the check (default 1e-4)")
    p.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--overwrite", action="store_true", help="replace files in --out that vislearn did not write")
    return p


main = command(build_parser, run)


if __name__ == "__main__":
    sys.exit(main())
