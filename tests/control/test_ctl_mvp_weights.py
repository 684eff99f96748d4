"""MVP's released encoders (ir413/mvp) load through `build_encoder("mvp:ARCH:FILE")` with the features MVP's own
model computes. The files are made here by the reference architecture, laid out as MVP's loader reads them.

The reference, from ir413/mvp `mvp/backbones/vit.py`: timm's VisionTransformer with patch 16, MLP ratio 4, qkv bias
and LayerNorm eps 1e-6; ViT-S 384 wide, 12 deep, 12 heads (timm's own ViT-S has 6); ViT-B 768/12/12; ViT-L
1024/24/16; the classifier head deleted; the feature is `norm(blocks(cls + patches + pos))[:, 0]` (its
`extract_feat` then `forward_norm`). Its `load_checkpoint` reads `torch.load(f)["model"]` with strict=False: the
release files are MAE pre-training checkpoints, which also hold the MAE decoder."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from vislearn.backbones.encoders import IMAGENET_MEAN, IMAGENET_STD
from vislearn.control.encoders import build_encoder, encode_frames

pytestmark = pytest.mark.usefixtures("one_thread")

# (width, depth, heads) of MVP's vit_s16 / vit_b16 / vit_l16
MVP = {"vit_s16_mvp": (384, 12, 12), "vit_b16": (768, 12, 12), "vit_l16": (1024, 24, 16)}


class MVPViT(VisionTransformer):
    """MVP's `VisionTransformer`: timm's, head removed, feature = norm of the class token after the blocks."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if hasattr(self, "pre_logits"):
            del self.pre_logits
        del self.head

    def forward(self, x):
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), self.patch_embed(x)], dim=1) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x[:, 0])


def mvp_release(path, arch: str, img_size: int) -> MVPViT:
    """MVP's model of `arch` with perturbed weights (nothing left at its initial zeros or ones), saved as a release
    file: {"model": encoder + MAE decoder state}."""
    width, depth, heads = MVP[arch]
    torch.manual_seed(0)
    ref = MVPViT(img_size=img_size, patch_size=16, embed_dim=width, depth=depth, num_heads=heads, mlp_ratio=4,
                 qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6)).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    decoder = {"mask_token": torch.zeros(1, 1, 512), "decoder_embed.weight": torch.randn(512, width),
               "decoder_pos_embed": torch.zeros(1, (img_size // 16) ** 2 + 1, 512)}
    torch.save({"model": {**ref.state_dict(), **decoder}, "epoch": 399}, path)
    return ref


def check_equal_features(tmp_path, arch: str, img_size: int) -> None:
    ref = mvp_release(tmp_path / f"{arch}.pth", arch, img_size)
    suffix = "" if img_size == 224 else f"@{img_size}"
    enc = build_encoder(f"mvp:{arch}:{tmp_path / f'{arch}.pth'}{suffix}")
    assert enc.dim == MVP[arch][0] and enc.input_size == img_size
    assert enc.trunk.blocks[0].attn.num_heads == MVP[arch][2] and len(enc.trunk.blocks) == MVP[arch][1]
    frames = np.random.default_rng(0).integers(0, 256, (2, img_size, img_size, 3), dtype=np.uint8)
    ours = encode_frames(enc, frames)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        want = ref(x).numpy()
    assert ours.shape == want.shape == (2, MVP[arch][0])
    np.testing.assert_allclose(ours, want, atol=1e-5, rtol=0)
    assert np.abs(ours[0] - ours[1]).max() > 1e-3  # two frames, two features


def test_mvp_vit_s_release_loads_with_equal_features(tmp_path):
    check_equal_features(tmp_path, "vit_s16_mvp", 224)


def test_mvp_vit_b_release_loads_with_equal_features(tmp_path):
    """At 64 px (the release's 224 has the same names and shapes but a longer position embedding): 4x faster."""
    check_equal_features(tmp_path, "vit_b16", 64)


@pytest.mark.slow
def test_mvp_vit_l_release_loads_with_equal_features(tmp_path):
    """ViT-L as MVP releases it for its real-robot work: 256 px (`mae_pretrain_egosoup_vit_large_256.pth`)."""
    check_equal_features(tmp_path, "vit_l16", 256)


def test_a_release_of_another_size_is_one_line(tmp_path):
    """ViT-S weights named as ViT-B: the shapes do not fit, and the user is told which file, in one line."""
    from vislearn.common.errors import UserError

    mvp_release(tmp_path / "s.pth", "vit_s16_mvp", 64)
    with pytest.raises(UserError) as e:
        build_encoder(f"mvp:vit_b16:{tmp_path / 's.pth'}@64")
    assert str(tmp_path / "s.pth") in str(e.value) and "\n" not in str(e.value)
