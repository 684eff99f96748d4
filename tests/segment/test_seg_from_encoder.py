"""A SAM initialised from a vislearn encoder checkpoint (the MAE contract file): the weights are copied under SAM's
names, and SAM's first block sees exactly the tokens the ViT's first block sees (patch embedding + position) at
the same grid; a file that is not a ViT encoder is one line."""
from __future__ import annotations


import pytest
import torch

from vislearn.backbones import create_backbone
from vislearn.backbones.encoders import EncoderInfo, encoder_checkpoint
from vislearn.common.errors import UserError
from vislearn.segment.model.build import load_sam, save_sam
from vislearn.segment.model.from_encoder import sam_from_encoder

torch.set_num_threads(1)


def write_encoder(path, name: str, img_size: int):
    torch.manual_seed(0)
    vit = create_backbone(name, img_size=img_size, num_classes=0)
    with torch.no_grad():  # no zero / one initialisations that would hide a missed copy
        for p in vit.parameters():
            p.add_(torch.randn_like(p) * 0.02)
        for m in vit.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
    torch.save(encoder_checkpoint(vit, EncoderInfo(name, {"img_size": img_size, "num_classes": 0}, img_size)), path)
    return vit.eval()


def first_block_input(module, blocks, x):
    seen = {}
    handle = blocks[0].register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0].detach().clone()))
    with torch.no_grad():
        module(x)
    handle.remove()
    return seen["x"]


@pytest.mark.parametrize("name", ["vit_c_tiny", "vit_p_tiny"])
def test_weights_copied_and_same_first_block_tokens(tmp_path, name):
    vit = write_encoder(tmp_path / "encoder.pth", name, img_size=64)
    sam, arch = sam_from_encoder(tmp_path / "encoder.pth", img_size=64, window_size=2)
    sam.eval()
    assert (arch.width, arch.depth, arch.heads, arch.mlp_ratio) == (192, len(vit.blocks), 3, 3.0)
    assert bool(arch.stem_channels) == (name == "vit_c_tiny")
    ours = sam.image_encoder.state_dict()
    for key, value in vit.state_dict().items():
        if key.startswith("blocks."):
            assert torch.equal(ours[key.replace("mlp.fc1", "mlp.lin1").replace("mlp.fc2", "mlp.lin2")], value), key
        elif key.startswith("patch_embed."):
            assert torch.equal(ours[key], value), key
    assert torch.equal(ours["pos_embed"], vit.pos_embed[:, 1:].reshape(1, 4, 4, 192))
    # the tokens entering block 0: the ViT's without its class token, SAM's NHWC
    x = torch.randn(2, 3, 64, 64)
    vit_tokens = first_block_input(vit, vit.blocks, x)[:, 1:]
    sam_tokens = first_block_input(sam.image_encoder, sam.image_encoder.blocks, x)
    assert sam_tokens.shape == (2, 4, 4, 192)
    torch.testing.assert_close(sam_tokens.reshape(2, 16, 192), vit_tokens, atol=1e-5, rtol=1e-5)


def test_position_embedding_resampled_to_sams_grid_and_saved(tmp_path):
    vit = write_encoder(tmp_path / "encoder.pth", "vit_c_tiny", img_size=64)
    sam, arch = sam_from_encoder(tmp_path / "encoder.pth", img_size=128, window_size=4)
    assert sam.image_encoder.pos_embed.shape == (1, 8, 8, 192)
    # a smooth resampling: the mean over the grid is kept closely, and it is not the fresh (zero) embedding
    assert torch.allclose(sam.image_encoder.pos_embed.mean((1, 2)), vit.pos_embed[:, 1:].mean(1), atol=5e-3)
    save_sam(tmp_path / "sam.pth", sam, arch)
    loaded, arch2 = load_sam(tmp_path / "sam.pth")
    assert arch2 == arch
    assert torch.equal(loaded.image_encoder.pos_embed, sam.image_encoder.pos_embed)


def test_not_an_encoder_is_one_line(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "junk.pth")
    with pytest.raises(UserError, match="not a ViT encoder checkpoint"):
        sam_from_encoder(tmp_path / "junk.pth")
    torch.save(encoder_checkpoint(torch.nn.Linear(2, 2), EncoderInfo("mobilenet_v2", {}, 64)), tmp_path / "cnn.pth")
    with pytest.raises(UserError, match="not a ViT encoder"):
        sam_from_encoder(tmp_path / "cnn.pth")
