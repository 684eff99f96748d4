"""MobileSAM's TinyViT image encoder against the reference (`mobilesam-mirror`, module `mobile_sam`): the state dict
the reference saves loads into ours strictly with no key renamed, and embeddings agree (<= 1e-4) at 1024 px and, by
the reference's own stages, at smaller sizes; the whole MobileSAM file loads with `load_sam` and gives the
reference predictor's masks and IoU predictions. Reference weights are random with non-trivial BatchNorm statistics
and attention biases, so a misplaced bias index or a dropped BatchNorm shows."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from vislearn.segment.model.build import load_sam
from vislearn.segment.model.tiny_vit import (HEAD_KEYS, TinyViT, build_tiny_vit_encoder, is_tiny_vit_state,
                                             tiny_vit_state_keys)

pytestmark = pytest.mark.usefixtures("one_thread")

with warnings.catch_warnings():  # importing mobile_sam registers its TinyViTs in timm's registry, with a warning
    warnings.simplefilter("ignore")
    mobile_sam = pytest.importorskip("mobile_sam")
from mobile_sam import SamPredictor, sam_model_registry  # noqa: E402
from mobile_sam.modeling import TinyViT as ReferenceTinyViT  # noqa: E402


def perturb_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random BatchNorm affine and running statistics, random attention biases (both start trivial: 1/0, zeros)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("attention_biases"):
                p.copy_(torch.randn(p.shape, generator=g))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 1.5 + 0.5)
                m.weight.copy_(1 + torch.randn(m.num_features, generator=g) * 0.2)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()  # the reference caches its attention biases in eval(): call it after changing them


def reference_encoder(img_size: int = 1024) -> ReferenceTinyViT:
    """The reference TinyViT exactly as `mobile_sam.build_sam_vit_t` configures it."""
    torch.manual_seed(0)
    return ReferenceTinyViT(img_size=img_size, in_chans=3, num_classes=1000, embed_dims=[64, 128, 160, 320],
                            depths=[2, 2, 6, 2], num_heads=[2, 4, 5, 10], window_sizes=[7, 7, 14, 7], mlp_ratio=4.0,
                            drop_rate=0.0, drop_path_rate=0.0, use_checkpoint=False, mbconv_expand_ratio=4.0,
                            local_conv_size=3, layer_lr_decay=0.8)


def reference_embedding(ref: ReferenceTinyViT, x: torch.Tensor) -> torch.Tensor:
    """The reference's stages and neck at any size (its forward reshapes to a fixed 64 x 64 grid: 1024 px only)."""
    y = ref.patch_embed(x)
    for layer in ref.layers:
        y = layer(y)
    b, n, c = y.shape
    side = int(round(n ** 0.5))
    return ref.neck(y.view(b, side, side, c).permute(0, 3, 1, 2))


def loaded_from_file(ref: torch.nn.Module, path, img_size: int) -> TinyViT:
    torch.save(ref.state_dict(), path)
    ours = build_tiny_vit_encoder(img_size).eval()  # eval before loading: no cached biases may go stale
    ours.load_state_dict(torch.load(path, weights_only=True), strict=True)
    return ours


@pytest.fixture(scope="module")
def ref_1024():
    return perturb_(reference_encoder(1024))


def test_keys_and_shapes_are_mobile_sams(ref_1024):
    ref = ref_1024.state_dict()
    ours = build_tiny_vit_encoder().state_dict()
    assert list(ours) == list(ref)  # same keys, same order
    assert all(ours[k].shape == ref[k].shape for k in ref)
    assert set(HEAD_KEYS) <= set(ours)  # the ImageNet head MobileSAM files carry
    whole = sam_model_registry["vit_t"]().state_dict()
    assert tiny_vit_state_keys() == {k for k in whole if k.startswith("image_encoder.")}
    assert is_tiny_vit_state(whole) and not is_tiny_vit_state({"image_encoder.pos_embed": torch.zeros(1)})


def test_embedding_equals_the_reference_at_1024(ref_1024, tmp_path):
    ours = loaded_from_file(ref_1024, tmp_path / "tiny_vit.pth", 1024)
    x = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = ref_1024(x), ours(x)
    assert got.shape == want.shape == (1, 256, 64, 64)
    assert (got - want).abs().max() <= 1e-4
    assert want.std() > 0.5  # not a degenerate output that would match anything


@pytest.mark.parametrize("img_size,train", [(256, False), (512, False), (256, True)])
def test_smaller_sizes_equal_the_reference_stages(img_size, train, tmp_path):
    """The grid is img_size/4 -> /8 -> /16 -> /16; windows that do not tile it are zero-padded as in the reference.
    In train mode BatchNorm uses batch statistics (batch of 2)."""
    ref = perturb_(reference_encoder(img_size), seed=img_size)
    ours = loaded_from_file(ref, tmp_path / "tiny_vit.pth", img_size)
    ref.train(train), ours.train(train)
    x = torch.randn(2, 3, img_size, img_size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want, got = reference_embedding(ref, x), ours(x)
    assert got.shape == (2, 256, img_size // 16, img_size // 16)
    assert ours.img_size == img_size
    assert (got - want).abs().max() <= 1e-4


def test_training_reaches_every_weight_but_the_unused_head():
    model = perturb_(build_tiny_vit_encoder(64)).train()  # at init each MBConv branch ends in a zero BN weight
    model(torch.randn(2, 3, 64, 64)).square().mean().backward()
    head = {f"{m}.{p}" for m, p in (k.rsplit(".", 1) for k in HEAD_KEYS)}
    for name, p in model.named_parameters():
        if name in head:
            assert not p.requires_grad and p.grad is None
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_img_size_must_be_a_multiple_of_16():
    with pytest.raises(ValueError, match="multiple of 16"):
        build_tiny_vit_encoder(1000)


# ----------------------------------------------------------------------------- the whole MobileSAM


def _image() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (300, 400, 3), dtype=np.uint8)


POINT = dict(point_coords=np.array([[180.0, 120.0]]), point_labels=np.array([1]))


@pytest.fixture(scope="module")
def mobile_sam_file(tmp_path_factory):
    """A whole MobileSAM as `mobile_sam.pt` is laid out (a bare state dict), and the reference predictor's answer."""
    torch.manual_seed(0)
    ref = perturb_(sam_model_registry["vit_t"](), seed=5)
    path = tmp_path_factory.mktemp("mobile_sam") / "mobile_sam.pt"
    torch.save(ref.state_dict(), path)
    predictor = SamPredictor(ref)
    predictor.set_image(_image())
    return path, predictor.features, predictor.predict(**POINT, multimask_output=True, return_logits=True)


def _check_prediction(model, want_features, want):
    predictor = SamPredictor(model)  # the reference predictor drives our Sam: the interfaces are the same
    predictor.set_image(_image())
    assert (predictor.features - want_features).abs().max() <= 1e-4
    masks, ious, low_res = predictor.predict(**POINT, multimask_output=True, return_logits=True)
    assert np.abs(low_res - want[2]).max() <= 1e-4
    assert np.abs(ious - want[1]).max() <= 1e-4
    assert np.abs(masks - want[0]).max() <= 1e-4  # full-size logits (return_logits)


def test_mobile_sam_file_loads_with_load_sam_and_predicts_as_the_reference(mobile_sam_file):
    path, features, want = mobile_sam_file
    model, arch = load_sam(path)
    assert arch.name == "vit_t_mobile" and isinstance(model.image_encoder, TinyViT)
    _check_prediction(model, features, want)
