"""Every backbone by name: `BACKBONES` (a plain dict of builder functions), `create_backbone(name, **kwargs)`, and
`vislearn backbones list` (names, parameters, flops).

Flops are counted by `torch.utils.flop_counter.FlopCounterMode` on one input of the backbone's `INPUT_SHAPES`
(batch 1, no gradients), on the meta device (no memory, no arithmetic: the biggest model counts in well under a
second). FlopCounterMode counts 2 flops per multiply-add, in convolutions and matrix products (attention
included: `count_flops` runs scaled-dot-product attention through its plain-math form, whose matrix products
it sees; the fused CPU kernel would go uncounted); norms, activations and softmax are not counted. The ViT
paper (and pycls) call one multiply-add one flop: its "1GF" is 1 GMAC, here `flops / 2`.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from vislearn.common.cli import Parser, command
from vislearn.common.errors import UserError

from . import vit
from .dense import MULTISCALE
from .i3d_resnet import build_i3d_trunk
from .mobilenet import MobileNetV2Video, mobilenet_v2_2d
from .video_trunks import TORCHVISION_TRUNKS, Small3D


def _torchvision_trunk(arch: str) -> Callable[..., nn.Module]:
    make, trunk_cls = TORCHVISION_TRUNKS[arch]

    def build(**kwargs) -> nn.Module:
        """torchvision's video model `arch` (weights=None) without its pooling and head (`video_trunks`)."""
        return trunk_cls(make(weights=None, **kwargs))

    build.__name__ = arch
    return build


def tsm_mobilenet_v2(pretrained: str | None = None, **kwargs) -> MobileNetV2Video:
    """MobileNetV2 with temporal shift (TSM) on clips [B,3,T,H,W] (`mobilenet`)."""
    return MobileNetV2Video(mobilenet_v2_2d(pretrained), "tsm", **kwargs)


def i3d_mobilenet_v2(pretrained: str | None = None, **kwargs) -> MobileNetV2Video:
    """MobileNetV2 inflated to 3D as in I3D, on clips [B,3,T,H,W] (`mobilenet`)."""
    return MobileNetV2Video(mobilenet_v2_2d(pretrained), "i3d", **kwargs)


BACKBONES: dict[str, Callable[..., nn.Module]] = {
    **{f"vit_{kind}_{size}": getattr(vit, f"vit_{kind}_{size}") for size in vit.SIZES for kind in ("p", "c")},
    **{f"vit_{size}": getattr(vit, f"vit_{size}") for size in vit.RELEASE_SIZES},
    "mobilenet_v2": mobilenet_v2_2d,
    "tsm_mobilenet_v2": tsm_mobilenet_v2,
    "i3d_mobilenet_v2": i3d_mobilenet_v2,
    "i3d_resnet50": build_i3d_trunk,
    **{arch: _torchvision_trunk(arch) for arch in TORCHVISION_TRUNKS},
    "small3d": Small3D,
    **MULTISCALE,
}

# the input each backbone is measured on: images (C,H,W), clips (C,T,H,W)
INPUT_SHAPES: dict[str, tuple[int, ...]] = {
    **{f"vit_{kind}_{size}": (3, s.img_size, s.img_size) for size, s in vit.SIZES.items() for kind in ("p", "c")},
    **{f"vit_{size}": (3, 224, 224) for size in vit.RELEASE_SIZES},
    "mobilenet_v2": (3, 224, 224),
    "tsm_mobilenet_v2": (3, 8, 224, 224),
    "i3d_mobilenet_v2": (3, 8, 224, 224),
    "i3d_resnet50": (3, 8, 224, 224),
    **{arch: (3, 8, 112, 112) for arch in TORCHVISION_TRUNKS},
    "mvit_v1_b": (3, 16, 224, 224),  # its position encoding has a fixed size
    "small3d": (3, 8, 112, 112),
    **{name: (3, 224, 224) for name in MULTISCALE},
}


def create_backbone(name: str, **kwargs) -> nn.Module:
    """The backbone `name` (a key of `BACKBONES`), built by its builder with `kwargs` (its own: e.g. `weights=`,
    `num_classes=`, `img_size=` for the ViTs; `pretrained=` for the MobileNetV2s). Never downloads anything."""
    if name not in BACKBONES:
        raise UserError(f"unknown backbone {name!r}; choose from {', '.join(BACKBONES)} (`vislearn backbones list`)")
    return BACKBONES[name](**kwargs)


def count_flops(model: nn.Module, x: torch.Tensor) -> int:
    """FlopCounterMode's total for one forward pass of `model` on `x`, without gradients (2 per multiply-add;
    attention computed in its math form so that its matrix products are counted)."""
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops()


def measure(name: str, **kwargs) -> tuple[int, int, tuple[int, ...]]:
    """(parameters, flops, input shape) of backbone `name`, built on the meta device (fast at any size)."""
    shape = INPUT_SHAPES[name]
    if "img_size" in kwargs:
        shape = (shape[0], kwargs["img_size"], kwargs["img_size"])
    with torch.device("meta"):
        model = create_backbone(name, **kwargs).eval()
        x = torch.empty(1, *shape)
    return sum(p.numel() for p in model.parameters()), count_flops(model, x), shape


# ----------------------------------------------------------------------------- `vislearn backbones list`
def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vislearn backbones list",
               description="Every backbone `vislearn.backbones.create_backbone(name)` builds: its parameters, and its "
                           "flops on one input (batch 1) counted by torch's FlopCounterMode on the meta device. "
                           "GFLOPs counts a multiply-add as 2 flops; GMACs (= the ViT_C paper's 'GF') as 1.")
    p.add_argument("names", nargs="*", help="only these backbones (default: all)")
    p.add_argument("--num-classes", type=int, default=None,
                   help="ViTs only: head size (default 1000, the paper's tables; 0 = no head)")
    return p


def _work(args: argparse.Namespace) -> int:
    names = args.names or list(BACKBONES)
    unknown = [n for n in names if n not in BACKBONES]
    if unknown:
        raise UserError(f"unknown backbone {unknown[0]!r}; choose from {', '.join(BACKBONES)}")
    rows, flops_of = [("name", "params (M)", "GFLOPs", "GMACs", "input")], {}
    for name in names:
        kwargs = {"num_classes": args.num_classes} if args.num_classes is not None and name.startswith("vit_") else {}
        params, flops, shape = measure(name, **kwargs)
        flops_of[name] = flops
        rows.append((name, f"{params / 1e6:.2f}", f"{flops / 1e9:.2f}", f"{flops / 2e9:.2f}", "x".join(map(str, shape))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) if i in (0, 4) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    pairs = [n[len("vit_c_"):] for n in names if n.startswith("vit_c_") and f"vit_p_{n[len('vit_c_'):]}" in flops_of]
    if pairs:
        print("\nViT_C / ViT_P flops: " + ", ".join(f"{s} {flops_of['vit_c_' + s] / flops_of['vit_p_' + s]:.3f}"
                                                  for s in pairs))
    return 0


main = command(build_parser, _work)
