"""Freezing parts of a network: the one way, used by every model, the trainer and the detector.

`freeze(module)` (as timm's `freeze()`): no gradients for its parameters, and eval mode that a later
`.train()` of the network does not undo, so its BatchNorm statistics never move and its dropout stays
off. `freeze(model, keep=layer)` freezes everything but `layer` (few-shot fine-tuning of the output
layer); `freeze_batchnorm(module)` freezes only the BatchNorm layers (a pretrained detector
backbone, STIN's official +NL recipe).

How: a frozen module becomes an instance of a subclass of its own class whose `train()` keeps
eval mode. Nothing else changes: `isinstance` holds, the state dict (keys, tensors) is the same, so
checkpoints load either way; `repr` shows `Frozen<Class>`.
"""
from __future__ import annotations

from functools import cache

from torch import nn


def _train_frozen(self: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(self, False)


@cache
def _frozen_class(cls: type) -> type:
    name = f"Frozen{cls.__name__}"
    return type(name, (cls,), {"train": _train_frozen, "__module__": __name__, "__qualname__": name})


def is_frozen(module: nn.Module) -> bool:
    return type(module).train is _train_frozen


def freeze(module: nn.Module, keep: nn.Module | None = None) -> nn.Module:
    """Freeze `module` (all of it, or all but its submodule `keep`, which stays trainable). Returns it."""
    if keep is None:
        module.requires_grad_(False)
        if not is_frozen(module):
            module.__class__ = _frozen_class(type(module))
        return module.eval()
    if module is keep:
        return module
    if not any(m is keep for m in module.modules()):
        raise ValueError(f"freeze: keep= is not a submodule of {type(module).__name__}")
    for p in module.parameters(recurse=False):  # an ancestor of `keep`: its own tensors only
        p.requires_grad_(False)
    for child in module.children():
        if any(m is keep for m in child.modules()):
            freeze(child, keep)
        else:
            freeze(child)
    return module


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Freeze every BatchNorm layer inside `module` (affine parameters and running statistics)."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            freeze(m)
    return module
