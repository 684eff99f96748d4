"""The official SAM (`segment-anything` 1.0) at small sizes with random weights: the reference our model, predictor,
generator and ONNX export are tested against. Wired as `segment_anything.build_sam` wires the released sizes."""
from __future__ import annotations

import pytest
import torch

from vislearn.segment.model.build import SamArch

pytest.importorskip("segment_anything")
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer  # noqa: E402

# decoder heads are 8 as released (they are not in the shapes, so an official file is read as 8)
SMALL = SamArch("test_small", img_size=128, width=64, depth=4, heads=2, window_size=4, global_attn_indexes=(1, 3),
                prompt_dim=64, decoder_mlp=128, iou_head_hidden=64)
TINY = SamArch("test_tiny", img_size=64, width=32, depth=2, heads=2, window_size=2, global_attn_indexes=(1,),
               prompt_dim=32, decoder_mlp=64, iou_head_hidden=32)


def official_model(arch: SamArch = SMALL, seed: int = 0, perturb: float = 0.0, decoder_gain: float = 1.0,
                   hyper_gain: float = 1.0) -> Sam:
    """The official classes at `arch`'s size, in eval mode. `perturb`: noise added to every weight (so that no
    zero-initialised part, e.g. the relative positions, hides a mistake); `decoder_gain` scales the decoder's
    weight matrices and `hyper_gain` the hypernetworks' last layers, so that a random model's masks have sharp
    edges and depend on the prompt."""
    grid = arch.img_size // arch.patch_size
    torch.manual_seed(seed)
    model = Sam(
        image_encoder=ImageEncoderViT(img_size=arch.img_size, patch_size=arch.patch_size, embed_dim=arch.width,
                                      depth=arch.depth, num_heads=arch.heads, mlp_ratio=arch.mlp_ratio,
                                      out_chans=arch.prompt_dim, qkv_bias=True,
                                      norm_layer=lambda d: torch.nn.LayerNorm(d, eps=1e-6), use_rel_pos=True,
                                      window_size=arch.window_size, global_attn_indexes=arch.global_attn_indexes),
        prompt_encoder=PromptEncoder(embed_dim=arch.prompt_dim, image_embedding_size=(grid, grid),
                                     input_image_size=(arch.img_size, arch.img_size), mask_in_chans=arch.mask_in_chans),
        mask_decoder=MaskDecoder(num_multimask_outputs=3, transformer=TwoWayTransformer(
            depth=arch.decoder_depth, embedding_dim=arch.prompt_dim, mlp_dim=arch.decoder_mlp,
            num_heads=arch.decoder_heads), transformer_dim=arch.prompt_dim, iou_head_depth=3,
            iou_head_hidden_dim=arch.iou_head_hidden),
        pixel_mean=list(arch.pixel_mean), pixel_std=list(arch.pixel_std))
    with torch.no_grad():
        if perturb:
            for p in model.parameters():
                p.add_(torch.randn_like(p) * perturb)
        for p in model.mask_decoder.parameters():
            if p.ndim >= 2:
                p.mul_(decoder_gain)
        for mlp in model.mask_decoder.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(hyper_gain)
    return model.eval()
