"""A 2D ViT on every frame (`ViTVideo`), from an encoder checkpoint: the split into a frozen (cacheable) part and
a trainable rest computes the same map, frozen weights stay frozen, and the video family's scene model takes it."""
from __future__ import annotations

import pytest
import torch

from vislearn.backbones import create_backbone
from vislearn.backbones.encoders import EncoderInfo, encoder_checkpoint, load_encoder_checkpoint
from vislearn.backbones.vit_video import ViTVideo
from vislearn.common.errors import UserError


@pytest.mark.parametrize("name,frozen", [("vit_p_tiny", 0), ("vit_c_tiny", 2), ("vit_p_tiny", -1)])
def test_frozen_part_then_rest_equals_the_whole(name, frozen):
    torch.manual_seed(0)
    trunk = ViTVideo(create_backbone(name, img_size=64, num_classes=0), frozen).eval()
    x = torch.randn(2, 3, 4, 64, 64)
    with torch.no_grad():
        whole = trunk(x)
        split = trunk.temporal_features(trunk.frame_features(x))
        # each frame's map is the 2D ViT's own patch tokens after the final norm
        tokens = trunk.vit.forward_features(x[:, :, 1])[:, 1:]
    assert whole.shape == (2, 192, 4, 4, 4)
    assert torch.allclose(whole, split, atol=1e-5)
    assert torch.allclose(whole[:, :, 1].flatten(2).transpose(1, 2), tokens, atol=1e-5)


def test_frozen_blocks_do_not_train_and_the_rest_does():
    torch.manual_seed(0)
    trunk = ViTVideo(create_backbone("vit_c_tiny", img_size=64, num_classes=0), 2)
    before = {k: v.clone() for k, v in trunk.state_dict().items()}
    opt = torch.optim.SGD([p for p in trunk.parameters() if p.requires_grad], lr=0.1)
    trunk.train()
    trunk(torch.randn(2, 3, 2, 64, 64)).pow(2).mean().backward()
    opt.step()
    after = trunk.state_dict()
    frozen = [k for k in before if k.startswith(("vit.patch_embed", "vit.blocks.0.", "vit.blocks.1.", "vit.cls_token",
                                                 "vit.pos_embed"))]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)  # BatchNorm statistics included
    assert not torch.equal(before["vit.blocks.3.mlp.fc1.weight"], after["vit.blocks.3.mlp.fc1.weight"])


def test_encoder_checkpoint_loads_by_path_at_another_size(tmp_path):
    torch.manual_seed(0)
    enc = create_backbone("vit_p_tiny", img_size=64, num_classes=0)
    path = tmp_path / "encoder.pth"
    torch.save(encoder_checkpoint(enc, EncoderInfo("vit_p_tiny", {"img_size": 64, "num_classes": 0}, 64)), path)
    same, info = load_encoder_checkpoint(path)
    x = torch.randn(2, 3, 64, 64)
    assert info.backbone == "vit_p_tiny" and info.input_size == 64
    assert torch.allclose(same.eval()(x), enc.eval()(x), atol=1e-6)
    bigger, _ = load_encoder_checkpoint(path, img_size=128)  # position embedding resampled to 8x8
    assert bigger(torch.randn(1, 3, 128, 128)).shape == (1, 192)
    (tmp_path / "plain.pth").write_bytes(b"")
    torch.save({"state_dict": enc.state_dict()}, tmp_path / "plain.pth")
    with pytest.raises(UserError, match="not an encoder checkpoint"):
        load_encoder_checkpoint(tmp_path / "plain.pth")
