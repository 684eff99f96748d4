"""The scene stream on a 2D ViT encoder checkpoint (e.g. MAE's), frozen: `vit_scene` (configs/video/synthetic/scene_mae.yaml)."""
from __future__ import annotations

import pytest
import torch

from vislearn.backbones import create_backbone
from vislearn.backbones.encoders import EncoderInfo, encoder_checkpoint


def test_scene_model_on_the_encoder(tmp_path):
    from vislearn.video.actions.models import create_model

    enc = create_backbone("vit_p_tiny", img_size=64, num_classes=0)
    path = tmp_path / "encoder.pth"
    torch.save(encoder_checkpoint(enc, EncoderInfo("vit_p_tiny", {"img_size": 64, "num_classes": 0}, 64)), path)
    model = create_model("vit_scene", 7, backbone="vit_p_tiny", img_size=64, encoder_checkpoint=str(path),
                         frozen_blocks=-1, head="frames", num_frames=4)
    assert torch.equal(model.backbone.vit.blocks[0].attn.qkv.weight, enc.blocks[0].attn.qkv.weight)
    assert model({"frames": torch.randn(2, 3, 4, 64, 64)}).shape == (2, 7)
    with pytest.raises(ValueError, match="an encoder of vit_p_tiny"):
        create_model("vit_scene", 7, backbone="vit_c_tiny", encoder_checkpoint=str(path))
