"""ViT_P / ViT_C (Early Convolutions Help Transformers See Better): the stem, the sizes (parameters and flops
against the paper's Table 1, ViT_C within 5% of ViT_P's flops), the weight layouts (timm's names: saved by a
timm VisionTransformer of the same config; pycls's: the official key list transcribed from its source), and
`create_backbone` / `vislearn backbones list`. Big sizes are built on the meta device only (no memory, no
arithmetic); real forward passes use the tiny size."""
from __future__ import annotations

from functools import cache, partial

import pytest
import torch
from timm.layers import HybridEmbed
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from vislearn.backbones import create_backbone, vit
from vislearn.backbones.registry import BACKBONES, INPUT_SHAPES, count_flops, main as list_main
from vislearn.backbones.registry import measure as measure_uncached
from vislearn.common.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")

PAPER_SIZES = ["1gf", "4gf", "18gf", "36gf"]
# the paper's Table 1: (params in M, flops in G as the paper counts them = multiply-adds)
TABLE_1 = {
    "vit_p_1gf": (4.8, 1.1), "vit_p_4gf": (18.5, 3.9), "vit_p_18gf": (86.6, 17.5), "vit_p_36gf": (178.4, 35.9),
    "vit_c_1gf": (4.6, 1.1), "vit_c_4gf": (17.8, 4.0), "vit_c_18gf": (81.6, 17.7), "vit_c_36gf": (167.8, 35.0),
}


measure = cache(measure_uncached)  # (params, flops, input shape) of a backbone by name, counted on the meta device


def images(n: int = 2, size: int = 128, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Every parameter and BatchNorm statistic random (not the init's zeros and ones), so a wrong mapping shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) + 0.5 if name.endswith("running_var")
                        else torch.randn(t.shape, generator=g) * 0.05)
    return model.eval()


def shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


# ----------------------------------------------------------------------------- the stem
def test_conv_stem_is_3x3_conv_bn_relu_then_a_bare_1x1_conv_on_the_patchify_grid():
    with torch.device("meta"):
        model = vit.vit_c_18gf()
    stem = model.patch_embed
    layers = list(stem.backbone)
    convs = [m for m in layers if isinstance(m, nn.Conv2d)]
    assert [type(m) for m in layers] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU] * 6
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) and c.bias is None for c in convs)
    assert [c.out_channels for c in convs] == [64, 128, 128, 256, 256, 512]
    assert [c.stride[0] for c in convs] == [2, 2, 1, 2, 1, 2]
    assert stem.proj.kernel_size == (1, 1) and stem.proj.bias is not None and stem.proj.out_channels == 768
    assert len(model.blocks) == 11 and stem.grid_size == (14, 14) and stem.feat_ratio() == 16

    p, c = vit.vit_p_tiny().eval(), vit.vit_c_tiny().eval()
    assert p.patch_embed.grid_size == c.patch_embed.grid_size == (8, 8)
    x = images()
    with torch.no_grad():
        assert p.forward_features(x).shape == c.forward_features(x).shape == (2, 65, 192)  # class token + 8x8
        maps = c.forward_intermediates(x, indices=1, intermediates_only=True)  # dense features, NCHW
    assert maps[0].shape == (2, 192, 8, 8)


def test_stem_rules_are_checked():
    with pytest.raises(ValueError, match="doubled"):
        vit.conv_stack(3, (24, 96), (2, 2))
    with pytest.raises(ValueError, match="total stride 8 != patch size 16"):
        vit.build_vit(vit.ViTSize(192, 2, 3, 3.0, (24, 48, 96), (2, 2, 2)), conv_stem=True)


# ----------------------------------------------------------------------------- sizes and flops
@pytest.mark.parametrize("size", ["tiny", *PAPER_SIZES])
def test_vit_c_flops_within_5_percent_of_vit_p(size):
    """Counted on one image of the size's input (224x224 for the paper's sizes), no gradients, meta device."""
    _, flops_p, shape = measure(f"vit_p_{size}")
    _, flops_c, _ = measure(f"vit_c_{size}")
    assert shape == ((3, 128, 128) if size == "tiny" else (3, 224, 224))
    assert abs(flops_c / flops_p - 1) <= 0.05, (size, flops_c / flops_p)


def test_sizes_match_the_papers_table_1():
    for name, (params_m, gf) in TABLE_1.items():
        params, flops, _ = measure(name)
        assert round(params / 1e6, 1) == params_m, (name, params)
        assert abs(flops / 2e9 - gf) <= 0.1, (name, flops / 2e9)  # the paper counts a multiply-add as one flop


@pytest.mark.parametrize("name", ["vit_p_tiny", "vit_c_tiny"])
def test_meta_device_count_equals_the_count_on_a_real_image(name):
    """The cross-check of the meta-device counts: the same FlopCounterMode total on a real CPU forward."""
    _, on_meta, shape = measure(name)
    model = create_backbone(name).eval()
    assert count_flops(model, torch.randn(1, *shape)) == on_meta


# ----------------------------------------------------------------------------- timm's names
def timm_reference(size: vit.ViTSize, conv: bool, **kwargs) -> VisionTransformer:
    """timm's own VisionTransformer for the config, composed here from timm parts only: PatchEmbed, or
    HybridEmbed over a plain nn.Sequential of conv/BN/ReLU with a 1x1 projection."""
    args = dict(img_size=size.img_size, embed_dim=size.width, depth=size.depth - int(conv), num_heads=size.heads,
                mlp_ratio=size.mlp_ratio, **kwargs)
    if not conv:
        return VisionTransformer(patch_size=size.patch_size, **args)
    layers, c_in = [], 3
    for c, s in zip(size.stem_channels, size.stem_strides):
        layers += [nn.Conv2d(c_in, c, 3, s, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
        c_in = c
    return VisionTransformer(patch_size=1, embed_layer=partial(HybridEmbed, backbone=nn.Sequential(*layers)), **args)


@pytest.mark.parametrize("size", PAPER_SIZES)
def test_every_size_has_timms_state_dict_layout(size):
    with torch.device("meta"):
        for conv, ours in ((False, vit.build_vit(vit.SIZES[size], False)), (True, vit.build_vit(vit.SIZES[size], True))):
            assert shapes(ours) == shapes(timm_reference(vit.SIZES[size], conv)), (size, conv)


@pytest.mark.parametrize("conv", [False, True], ids=["vit_p", "vit_c"])
def test_weights_saved_by_timm_give_equal_logits(conv, tmp_path):
    reference = randomize_(timm_reference(vit.SIZES["tiny"], conv))
    torch.save({"model": reference.state_dict()}, tmp_path / "timm.pth")  # MAE / timm's train script keep it here
    ours = (vit.vit_c_tiny if conv else vit.vit_p_tiny)(weights=tmp_path / "timm.pth").eval()
    x = images()
    with torch.no_grad():
        assert (ours(x) - reference(x)).abs().max().item() <= 1e-5
        # a headless backbone takes the same file: the pooled feature the head would read
        trunk = (vit.vit_c_tiny if conv else vit.vit_p_tiny)(weights=tmp_path / "timm.pth", num_classes=0).eval()
        assert (trunk(x) - reference.forward_head(reference.forward_features(x), pre_logits=True)).abs().max() <= 1e-5


def test_position_embedding_is_resampled_for_another_input_size(tmp_path):
    torch.save(randomize_(vit.vit_c_tiny()).state_dict(), tmp_path / "w.pth")
    small = vit.vit_c_tiny(weights=tmp_path / "w.pth", img_size=64).eval()
    assert small.pos_embed.shape == (1, 1 + 16, 192)
    with torch.no_grad():
        assert small(images(size=64)).shape == (2, 1000)


def test_a_file_for_another_model_is_one_line(tmp_path):
    torch.save(vit.vit_p_tiny().state_dict(), tmp_path / "p.pth")
    with pytest.raises(UserError, match=r"p\.pth: weights do not fit VisionTransformer; missing keys") as e:
        vit.vit_c_tiny(weights=tmp_path / "p.pth")
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="unknown backbone 'vit_q_1gf'"):
        create_backbone("vit_q_1gf")


# ----------------------------------------------------------------------------- the official pycls layout
def pycls_official_shapes(p: dict) -> dict[str, tuple[int, ...]]:
    """The state-dict keys and shapes of facebookresearch/pycls `pycls/models/vit.py` ViT(params), transcribed from
    its source (commit 206d0db): `ViTStemPatchify` (patchify2d: Conv2d(3, hidden_d, k, stride k, bias)) or
    `ViTStemConv` (for each (k, w, s) but the last: `cstem{i}_conv` Conv2d 3x3 no bias, `cstem{i}_bn` BatchNorm2d,
    `cstem{i}_af`; the last: `cstem_last_conv` Conv2d kxk with bias); `class_token` [1,1,D] for cls_type 'token';
    `pos_embedding` [1, seq_len, D]; `ViTEncoder`: `block_{i}` = ln_1, self_attention (MultiheadSelfAttention:
    attn_proj D -> 3D, out_proj D -> D, with bias), ln_2, mlp_block (linear_1 D -> mlp_d, linear_2 mlp_d -> D),
    then `ln`; `ViTHead`: head_fc D -> num_classes."""
    d, out = p["hidden_d"], {}
    if p["stem_type"] == "patchify":
        out |= {"stem.patchify.weight": (d, 3, p["patch_size"], p["patch_size"]), "stem.patchify.bias": (d,)}
    else:
        w_in, n = 3, len(p["c_stem_dims"])
        for i, (k, w, _) in enumerate(zip(p["c_stem_kernels"], p["c_stem_dims"], p["c_stem_strides"])):
            if i < n - 1:
                out[f"stem.cstem{i}_conv.weight"] = (w, w_in, 3, 3)
                out |= {f"stem.cstem{i}_bn.{b}": (w,) for b in ("weight", "bias", "running_mean", "running_var")}
                out[f"stem.cstem{i}_bn.num_batches_tracked"] = ()
            else:
                out |= {"stem.cstem_last_conv.weight": (w, w_in, k, k), "stem.cstem_last_conv.bias": (w,)}
            w_in = w
    seq_len = (p["image_size"] // p["patch_size"]) ** 2
    if p["cls_type"] == "token":
        out["class_token"] = (1, 1, d)
        seq_len += 1
    out["pos_embedding"] = (1, seq_len, d)
    for i in range(p["n_layers"]):
        b = f"encoder.block_{i}"
        out |= {f"{b}.ln_1.weight": (d,), f"{b}.ln_1.bias": (d,), f"{b}.ln_2.weight": (d,), f"{b}.ln_2.bias": (d,),
                f"{b}.self_attention.attn_proj.weight": (3 * d, d), f"{b}.self_attention.attn_proj.bias": (3 * d,),
                f"{b}.self_attention.out_proj.weight": (d, d), f"{b}.self_attention.out_proj.bias": (d,),
                f"{b}.mlp_block.linear_1.weight": (p["mlp_d"], d), f"{b}.mlp_block.linear_1.bias": (p["mlp_d"],),
                f"{b}.mlp_block.linear_2.weight": (d, p["mlp_d"]), f"{b}.mlp_block.linear_2.bias": (d,)}
    out |= {"encoder.ln.weight": (d,), "encoder.ln.bias": (d,),
            "head.head_fc.weight": (p["num_classes"], d), "head.head_fc.bias": (p["num_classes"],)}
    return out


def pycls_params(size: vit.ViTSize, conv: bool, cls_type: str = "token", num_classes: int = 1000) -> dict:
    """pycls's ViT params (cfg.VIT.*) for a size: the conv stem's lists include the final 1x1 conv."""
    return {"image_size": size.img_size, "patch_size": size.patch_size, "stem_type": "conv" if conv else "patchify",
            "c_stem_kernels": [3] * len(size.stem_channels) + [1], "c_stem_strides": [*size.stem_strides, 1],
            "c_stem_dims": [*size.stem_channels, size.width], "n_layers": size.depth - int(conv),
            "n_heads": size.heads, "hidden_d": size.width, "mlp_d": int(size.width * size.mlp_ratio),
            "cls_type": cls_type, "num_classes": num_classes}


# timm name -> pycls name, written from the two sources (the inverse of what the loader does)
TIMM_TO_PYCLS = [
    ("patch_embed.proj.", {"conv": "stem.cstem_last_conv.", "patchify": "stem.patchify."}),
    ("cls_token", "class_token"), ("pos_embed", "pos_embedding"), ("norm.", "encoder.ln."), ("head.", "head.head_fc."),
    (".norm1.", ".ln_1."), (".norm2.", ".ln_2."), (".attn.qkv.", ".self_attention.attn_proj."),
    (".attn.proj.", ".self_attention.out_proj."), (".mlp.fc1.", ".mlp_block.linear_1."),
    (".mlp.fc2.", ".mlp_block.linear_2."),
]


def to_pycls_names(state: dict, stem_type: str) -> dict:
    out = {}
    for key, v in state.items():
        if key.startswith("patch_embed.backbone."):
            idx, rest = key.removeprefix("patch_embed.backbone.").split(".", 1)
            i, kind = divmod(int(idx), 3)
            out[f"stem.cstem{i}_{('conv', 'bn')[kind]}.{rest}"] = v
            continue
        if key.startswith("blocks."):
            _, i, rest = key.split(".", 2)
            key = f"encoder.block_{i}.{rest}"
            for a, b in TIMM_TO_PYCLS[5:]:
                key = key.replace(a, b)
        else:
            for a, b in TIMM_TO_PYCLS[:5]:
                if key.startswith(a):
                    key = (b[stem_type] if isinstance(b, dict) else b) + key[len(a):]
                    break
        out[key] = v
    return out


@pytest.mark.parametrize("size", PAPER_SIZES)
def test_pycls_layout_of_every_size_is_the_official_key_list(size):
    s = vit.SIZES[size]
    with torch.device("meta"):
        for conv in (False, True):
            ours = vit.build_vit(s, conv)
            named = to_pycls_names(ours.state_dict(), "conv" if conv else "patchify")
            assert {k: tuple(v.shape) for k, v in named.items()} == pycls_official_shapes(pycls_params(s, conv))
            renamed = vit.timm_state_from_pycls(named)
            assert shapes(ours) == {k: tuple(v.shape) for k, v in renamed.items()}


@pytest.mark.parametrize("conv,cls_type", [(True, "token"), (False, "token"), (True, "pooled")])
def test_a_pycls_checkpoint_loads_with_equal_logits(conv, cls_type, tmp_path):
    """A pycls checkpoint (its keys: model_state, ema_state, optimizer_state, cfg, epoch) made by renaming our own
    weights to the official names; pycls's LayerNorm eps (1e-5) comes with it."""
    pooled = dict(class_token=False, global_pool="avg", fc_norm=False) if cls_type == "pooled" else {}
    source = randomize_(vit.build_vit(vit.SIZES["tiny"], conv, ln_eps=vit.PYCLS_LN_EPS, **pooled))
    state = to_pycls_names(source.state_dict(), "conv" if conv else "patchify")
    assert {k: tuple(v.shape) for k, v in state.items()} == pycls_official_shapes(
        pycls_params(vit.SIZES["tiny"], conv, cls_type))
    ema = randomize_(vit.build_vit(vit.SIZES["tiny"], conv, ln_eps=vit.PYCLS_LN_EPS, **pooled), seed=1)
    torch.save({"epoch": 99, "model_state": state, "ema_state": to_pycls_names(ema.state_dict(), "conv" if conv else
                "patchify"), "optimizer_state": {}, "cfg": "MODEL:\n  TYPE: vit\n"}, tmp_path / "model_epoch_0100.pyth")
    build = vit.vit_c_tiny if conv else vit.vit_p_tiny
    loaded = build(weights=tmp_path / "model_epoch_0100.pyth").eval()
    assert all(m.eps == vit.PYCLS_LN_EPS for m in loaded.modules() if isinstance(m, nn.LayerNorm))
    assert loaded.cls_token is None if cls_type == "pooled" else loaded.cls_token is not None
    x = images()
    with torch.no_grad():
        assert (loaded(x) - source(x)).abs().max().item() <= 1e-5
        loaded_ema = build(weights=tmp_path / "model_epoch_0100.pyth", ema=True).eval()
        assert (loaded_ema(x) - ema(x)).abs().max().item() <= 1e-5


def test_pycls_state_with_unknown_keys_is_refused():
    with pytest.raises(UserError, match="not a pycls ViT state dict: unknown keys stem.something"):
        vit.timm_state_from_pycls({"pos_embedding": torch.zeros(1), "stem.something": torch.zeros(1)})


# ----------------------------------------------------------------------------- by name, and the listing
def test_every_backbone_builds_by_name_and_has_an_input_shape():
    assert set(BACKBONES) == set(INPUT_SHAPES)
    assert {f"vit_{k}_{s}" for k in "pc" for s in vit.SIZES} <= set(BACKBONES)
    assert "mobilenet_v2" in BACKBONES
    with torch.device("meta"):
        for name in ("vit_c_36gf", "mobilenet_v2", "small3d"):
            assert isinstance(create_backbone(name), nn.Module)
    model = create_backbone("vit_c_tiny", num_classes=0, drop_path_rate=0.1, patch_drop_rate=0.25)
    model.train()
    assert model(images()).shape == (2, 192)


def test_backbones_list_prints_params_and_flops(capsys):
    assert list_main(["vit_p_1gf", "vit_c_1gf"]) == 0
    out = capsys.readouterr().out
    assert "vit_c_1gf" in out and "4.57" in out and "ViT_C / ViT_P flops: 1gf 0.997" in out
    assert list_main(["nope"]) == 2
    assert "unknown backbone 'nope'" in capsys.readouterr().err
