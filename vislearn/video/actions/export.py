"""`vislearn video export CKPT --format torchscript|onnx --out FILE`: a trained model out, for deployment.

Any checkpoint of this project (trained, fine-tuned or converted): STIN (+OIE, +NL), the scene models
(I3D ResNet-50, torchvision video trunks, MobileNetV2 TSM/I3D, small3d), fusion and STRG. The exported
graph takes the batch tensors the model reads, in this order, each with a dynamic batch size B:

  boxes [B,T,N,4] float32, box_ids [B,N] int64, box_mask [B,T,N] bool    (box models: STIN, fusion, STRG)
  frames [B,3,T',S,S] float32                                             (pixel models)
  rgb_boxes [B,T',N,4] float32, rgb_box_mask [B,T',N] bool                (STRG)

and returns `logits` [B, classes]. T, N, T', S are the checkpoint's (`num_box_frames`, `num_slots`,
`num_rgb_frames`, `input_size`), and the inputs are built exactly as for the eager model
(`video.actions.data.make_dataset`; `video.actions.infer --runtime onnx|torchscript` does it). The file carries
what inference needs besides the weights (class names, model name and arguments, run config, the input
list) as JSON: ONNX metadata `something_else`, TorchScript extra file `something_else.json`.

Nothing stays eager: the data-dependent parts were given export-friendly forms that the models use in
eval mode (same results): masked rows (STIN, STRG) run every row and zero the empty ones instead of
gathering the real ones, and STRG's RoIAlign pools every (frame, slot) box, empty ones zeroed after
(torchvision's `roi_align` exports as ONNX RoiAlign, opset 16+). The trunks' ops (3D convolutions,
replicate padding, temporal shift, window attention) export as they are.

After writing, the exported file is run on example batches of two sizes other than the traced one and
compared with the eager model (`--tolerance`, default 1e-4 on the logits); the file is kept only if it
matches; a model the tracer or exporter cannot take is one line naming the checkpoint and the exporter's
reason (exit 2), not torch's traceback and graph dump. TorchScript is traced (`torch.jit.trace`), and ONNX
uses torch's TorchScript-based exporter (`dynamo=False`, opset 17): both are deprecated upstream in favour
of `torch.export` but work on the pinned torch 2.14, need no extra package besides `onnx`, and take a
second (the dynamo exporter also exports STIN, in ~11 s, with `onnxscript` installed).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from vislearn.common.cli import EXIT_FAILED, Parser, command, positive_int
from vislearn.common.errors import UserError
from vislearn.common.files import atomic_path, new_output_file, remove_stale_files
from vislearn.common.jsonio import loads_json

from .checkpoints import config_of, load_model_checkpoint, model_from_checkpoint, without_weight_sources
from .config import TrainConfig
from .data import model_inputs

FORMATS = ("torchscript", "onnx")
META_KEY = "something_else"  # ONNX metadata key; TorchScript extra file META_KEY + ".json"
FORMAT, VERSION = "something-else-export", 1
OPSET = 17


@dataclass(frozen=True)
class Input:
    name: str
    dtype: torch.dtype
    shape: tuple  # "batch" first, then ints


def model_input_specs(model: nn.Module, cfg: TrainConfig) -> list[Input]:
    """The batch tensors `model` reads, with the shapes of the checkpoint's configuration."""
    needs = model_inputs(model)
    T, N, Tr, S = cfg.num_box_frames, cfg.num_slots, cfg.num_rgb_frames, cfg.input_size
    specs = []
    if needs["needs_boxes"]:
        specs += [Input("boxes", torch.float32, ("batch", T, N, 4)), Input("box_ids", torch.int64, ("batch", N)),
                  Input("box_mask", torch.bool, ("batch", T, N))]
    if needs["needs_frames"]:
        specs.append(Input("frames", torch.float32, ("batch", 3, Tr, S, S)))
    if needs["needs_rgb_boxes"]:
        specs += [Input("rgb_boxes", torch.float32, ("batch", Tr, N, 4)), Input("rgb_box_mask", torch.bool, ("batch", Tr, N))]
    return specs


def example_batch(specs: list[Input], batch_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Inputs of the right shapes and kinds: boxes inside the view, hand in slot 0 and objects, some
    slots and frames empty."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for s in specs:
        shape = (batch_size, *s.shape[1:])
        if s.name in ("boxes", "rgb_boxes"):
            c = torch.rand(*shape[:-1], 2, generator=g) * 0.6 + 0.2
            out[s.name] = torch.cat([c, torch.rand(*shape[:-1], 2, generator=g) * 0.3 + 0.05], -1)
        elif s.name == "box_ids":
            ids = torch.full(shape, 2, dtype=torch.int64)
            ids[:, 0] = 1
            ids[:, -1] = 0  # an unused slot
            out[s.name] = ids
        elif s.name.endswith("mask"):
            m = torch.rand(*shape, generator=g) > 0.25
            m[..., -1] = False
            out[s.name] = m
        else:
            out[s.name] = torch.randn(*shape, generator=g)
    return out


class BatchModel(nn.Module):
    """The batch-dict model as a function of positional tensors (what tracing and ONNX need)."""

    def __init__(self, model: nn.Module, names: list[str]):
        super().__init__()
        self.model, self.names = model, list(names)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(dict(zip(self.names, tensors)))


@contextlib.contextmanager
def quiet_tracing():
    """The deprecation notices of torch.jit.trace / the TorchScript-based ONNX exporter, and tracer warnings
    about Python values in torchvision's own code (constant for the fixed T/H/W sizes), are not the user's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*(ONNX|onnx|constant folding|Exporting).*")
        yield


@contextlib.contextmanager
def native_stdout_dropped():
    """The TorchScript-based ONNX exporter writes its whole graph (hundreds of lines) to the process's stdout
    from C++ when a node fails to export (its log is always on: torch's `setup_onnx_logging`); the user
    gets the one-line error instead. File descriptor 1 goes to /dev/null meanwhile (Python's own prints are
    flushed first and are not affected)."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no stdout at all: nothing to protect
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def metadata(ckpt: dict, model_name: str, specs: list[Input], fmt: str, source: str, needs: dict) -> dict:
    return {"format": FORMAT, "version": VERSION, "runtime": fmt, "checkpoint": source, "model_name": model_name,
            "model_args": without_weight_sources(dict(ckpt.get("model_args", {}))),
            "class_names": list(ckpt["class_names"]), "config": ckpt.get("config", {}), **needs,
            "inputs": [{"name": s.name, "dtype": str(s.dtype).removeprefix("torch."), "shape": list(s.shape)}
                       for s in specs]}


def write_torchscript(wrapper: BatchModel, example: tuple, path: Path, meta: dict) -> None:
    with torch.no_grad(), quiet_tracing():
        traced = torch.jit.trace(wrapper, example, check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={META_KEY + ".json": json.dumps(meta)})


def write_onnx(wrapper: BatchModel, example: tuple, path: Path, meta: dict, names: list[str]) -> None:
    try:
        import onnx
    except ImportError:
        raise UserError("--format onnx needs the `onnx` package: pip install onnx onnxruntime") from None
    axes = {n: {0: "batch"} for n in [*names, "logits"]}
    with torch.no_grad(), quiet_tracing(), native_stdout_dropped():
        torch.onnx.export(wrapper, example, str(path), input_names=names, output_names=["logits"], dynamic_axes=axes,
                          opset_version=OPSET, dynamo=False, do_constant_folding=True)
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta)
    onnx.save(proto, str(path))


# ------------------------------------------------------------------------------------------ running

class ExportedModel(nn.Module):
    """An exported file as a batch-dict model (`model(batch) -> logits`), like the eager one: what
    `video.actions.infer --runtime` and the tests run. `needs_*` and `meta` come from the file's metadata."""

    def __init__(self, run, meta: dict):
        super().__init__()
        self.run, self.meta = run, meta
        self.input_names = [i["name"] for i in meta["inputs"]]
        self._dtypes = {i["name"]: getattr(torch, i["dtype"]) for i in meta["inputs"]}
        self.needs_boxes, self.needs_frames = bool(meta["needs_boxes"]), bool(meta["needs_frames"])
        self.needs_rgb_boxes = bool(meta["needs_rgb_boxes"])

    def forward(self, batch: dict) -> torch.Tensor:
        missing = [n for n in self.input_names if n not in batch]
        if missing:
            raise ValueError(f"exported model: the batch has no {', '.join(missing)}")
        tensors = [batch[n].to(self._dtypes[n]) for n in self.input_names]
        return self.run(tensors).to(tensors[0].device)


def read_metadata(text: str | None, path) -> dict:
    try:
        meta = loads_json(text or "", path)  # depth-limited (vislearn.common.jsonio)
    except ValueError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{path}: not a model exported by vislearn video export (no '{META_KEY}' metadata)")
    if not isinstance(meta.get("version"), int) or meta["version"] > VERSION:
        raise UserError(f"{path}: export version {meta.get('version')!r} is newer than this tool reads ({VERSION})")
    return meta


def load_exported(path: str | os.PathLike, runtime: str, device: torch.device | str = "cpu") -> ExportedModel:
    """An exported file, run by onnxruntime (`runtime="onnx"`) or torch (`"torchscript"`)."""
    device = torch.device(device)
    if not Path(path).is_file():
        raise UserError(f"{path}: exported model file not found")
    if runtime == "onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError("--runtime onnx needs the `onnxruntime` package: pip install onnxruntime") from None
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            session = ort.InferenceSession(str(path), providers=providers)
        except Exception as e:  # onnxruntime's own exception types
            raise UserError(f"{path}: not an ONNX model onnxruntime can load ({str(e).splitlines()[0][:200]})") from None
        meta = read_metadata(session.get_modelmeta().custom_metadata_map.get(META_KEY), path)
        feeds = [i.name for i in session.get_inputs()]  # an input the graph does not use is not declared

        def run(tensors):
            arrays = dict(zip([i["name"] for i in meta["inputs"]], tensors))
            out = session.run(["logits"], {n: arrays[n].detach().cpu().numpy() for n in feeds})[0]
            return torch.from_numpy(out)

        return ExportedModel(run, meta)
    if runtime == "torchscript":
        files = {META_KEY + ".json": ""}
        try:
            with quiet_tracing():
                module = torch.jit.load(str(path), map_location=device, _extra_files=files)
        except Exception as e:  # torch raises RuntimeError and others for a file that is not an archive
            raise UserError(f"{path}: not a TorchScript model torch can load ({str(e).splitlines()[0][:200]})") from None
        meta = read_metadata(files[META_KEY + ".json"], path)
        module.eval()

        def run(tensors):
            with torch.no_grad():
                return module(*(t.to(device) for t in tensors))

        return ExportedModel(run, meta)
    raise UserError(f"runtime must be one of {', '.join(FORMATS)}, got {runtime!r}")


def max_difference(exported: nn.Module, model: nn.Module, specs: list[Input], batch_sizes=(1, 3)) -> float:
    """The largest |logit difference| between an exported model and the eager one on example batches."""
    worst = 0.0
    for i, b in enumerate(batch_sizes):
        batch = example_batch(specs, b, seed=100 + i)
        with torch.no_grad():
            worst = max(worst, float((exported(batch) - model(batch)).abs().max()))
    return worst


# ------------------------------------------------------------------------------------------ the CLI

def export(checkpoint: str | os.PathLike, fmt: str, out: str | os.PathLike, tolerance: float = 1e-4,
           log=print) -> dict:
    """Export a checkpoint to `out`; returns the metadata written into it (with the check's result)."""
    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    ckpt = load_model_checkpoint(checkpoint)  # a detector checkpoint, or damaged entries: one line saying so
    try:
        model = model_from_checkpoint(ckpt, "cpu", str(checkpoint))
    except UserError:
        raise
    except (RuntimeError, ValueError, TypeError, KeyError) as e:
        raise UserError(f"{checkpoint}: cannot rebuild model {ckpt.get('model_name')!r} from it ({str(e)[:300]})") from None
    cfg = config_of(ckpt, {}, checkpoint)
    specs = model_input_specs(model, cfg)
    names = [s.name for s in specs]
    example = tuple(example_batch(specs, 2).values())
    meta = metadata(ckpt, str(ckpt["model_name"]), specs, fmt, str(checkpoint), model_inputs(model))
    wrapper = BatchModel(model, names).eval()
    with atomic_path(out) as tmp:
        try:
            if fmt == "torchscript":
                write_torchscript(wrapper, example, tmp, meta)
            else:
                write_onnx(wrapper, example, tmp, meta, names)
            diff = max_difference(load_exported(tmp, fmt), model, specs)
        except (UserError, OSError):
            raise
        except Exception as e:  # the tracer's / exporter's / runtime's own errors: a model part that does not export
            raise UserError(f"{checkpoint}: {ckpt['model_name']} cannot be exported as {fmt}: {failure(e)}") from None
        if not diff <= tolerance:
            raise ExportMismatch(f"{out}: the exported model's logits differ from the eager model's by {diff:.3g} "
                                 f"(tolerance {tolerance:g}); nothing was written")
    size = Path(out).stat().st_size
    log(f"wrote {out}: {ckpt['model_name']} as {fmt}, inputs {', '.join(names)} (batch size dynamic), "
        f"{size / 2**20:.1f} MiB; checked against the eager model: max |logit difference| {diff:.2g} at batch 1 and 3")
    return {**meta, "checked_max_difference": diff}


def failure(e: Exception) -> str:
    """One line about why an export failed: the exception's type and its message's first line, shortened."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return f"{type(e).__name__}: {lines[0][:300] if lines else 'no message'}"


class ExportMismatch(Exception):
    """The exported graph does not compute what the eager model computes (a bug, not a user mistake)."""


def run(args) -> int:
    out = new_output_file(args.out, [args.checkpoint], args.overwrite)
    remove_stale_files(out)  # the temporary file of an export that was killed (its pid is gone)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        export(args.checkpoint, args.format, out, args.tolerance)
    except ExportMismatch as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn video export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", metavar="CKPT", help="a checkpoint of vislearn video train / fewshot / convert (best.pt)")
    p.add_argument("--format", required=True, choices=FORMATS, help="torchscript (.pt) or onnx (.onnx)")
    p.add_argument("--out", required=True, metavar="FILE", help="the file to write")
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest |logit difference| to the eager model "
                                                                 "accepted by the check after export (default 1e-4)")
    p.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    return p


main = command(build_parser, run)


if __name__ == "__main__":
    sys.exit(main())
