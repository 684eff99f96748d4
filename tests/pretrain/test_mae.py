"""MAE: masking skips the masked tokens, the loss reads masked patches only, a conv stem cannot see masked pixels,
pre-training lowers the loss and resumes to the same weights, official layouts load with equal outputs."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block, VisionTransformer
from torch import nn

from tests.cli_helpers import default_sigint
from vislearn.backbones import create_backbone
from vislearn.pretrain.mae import MaskedAutoencoder, patchify, random_masking, unpatchify
from vislearn.pretrain.official import MAE_ARCHS, build_official_mae, load_official_mae

ROOT = Path(__file__).resolve().parents[2]


def tiny_mae(name="vit_p_tiny", **kw) -> MaskedAutoencoder:
    torch.manual_seed(0)
    enc = create_backbone(name, img_size=64, num_classes=0, **kw)
    return MaskedAutoencoder(enc, decoder_dim=32, decoder_depth=1, decoder_heads=2)


def test_random_masking_keeps_a_quarter_and_restores_order():
    m = random_masking(5, 64, 0.75)
    assert m.ids_keep.shape == (5, 16)
    assert torch.equal(m.mask.sum(1), torch.full((5,), 48.0))
    for b in range(5):  # the kept ids are exactly the unmasked positions
        assert set(m.ids_keep[b].tolist()) == set(torch.nonzero(m.mask[b] == 0).flatten().tolist())


def test_patchify_round_trip_and_official_pixel_order():
    x = torch.randn(2, 3, 32, 48)
    p = patchify(x, 16)
    assert p.shape == (2, 6, 768)
    assert torch.equal(unpatchify(p, 16, (2, 3)), x)
    # official order inside a patch: row, column, channel
    assert p[1, 4, (5 * 16 + 7) * 3 + 2] == x[1, 2, 16 + 5, 16 + 7]


@pytest.mark.parametrize("name", ["vit_p_tiny", "vit_c_tiny"])
def test_encoder_sees_only_the_visible_quarter(name):
    model = tiny_mae(name)
    seen = []
    hook = model.encoder.blocks[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    model(torch.randn(3, 3, 64, 64))
    hook.remove()
    assert seen == [torch.Size([3, 1 + 4, 192])]  # class token + 25% of the 16 tokens


def test_loss_counts_masked_patches_only():
    model = tiny_mae()
    imgs = torch.randn(2, 3, 64, 64)
    noise = torch.rand(2, 16)
    loss, pred, mask = model(imgs, noise=noise)
    # moving the prediction of a visible patch changes nothing; of a masked one, changes the loss
    target = model.target(imgs)
    visible = torch.nonzero(mask[0] == 0).flatten()[0]
    masked = torch.nonzero(mask[0] == 1).flatten()[0]
    p2 = pred.clone()
    p2[0, visible] += 10.0
    assert torch.allclose(model.forward_loss(imgs, p2, mask), loss)
    p3 = pred.clone()
    p3[0, masked] += 10.0
    assert model.forward_loss(imgs, p3, mask) > loss + 1.0
    expected = (((pred - target) ** 2).mean(-1) * mask).sum() / mask.sum()
    assert torch.allclose(loss, expected)


def test_conv_stem_cannot_see_the_masked_pixels():
    """With ViT_C, changing the pixels of the masked patches leaves the encoder's output unchanged."""
    model = tiny_mae("vit_c_tiny").eval()
    assert model.hide_masked_pixels and not tiny_mae("vit_p_tiny").hide_masked_pixels
    imgs = torch.randn(2, 3, 64, 64)
    noise = torch.rand(2, 16)
    m = random_masking(2, 16, 0.75, noise=noise)
    changed = imgs + 5 * torch.randn_like(imgs) * model.pixel_mask(m.mask)
    with torch.no_grad():
        a, b = model.forward_encoder(imgs, m), model.forward_encoder(changed, m)
    assert torch.allclose(a, b, atol=1e-6)
    model.hide_masked_pixels = False  # the leak the hiding prevents: the 3x3 stem reaches into masked patches
    with torch.no_grad():
        a, b = model.forward_encoder(imgs, m), model.forward_encoder(changed, m)
    assert not torch.allclose(a, b, atol=1e-3)


def test_input_size_not_matching_the_encoder_is_refused():
    from vislearn.common.errors import UserError

    with pytest.raises(UserError, match="encoder takes"):
        tiny_mae()(torch.randn(1, 3, 60, 60))


# ----------------------------------------------------------------------------- official layouts
def official_mae_reference(img_size=32):
    """A models_mae.py-layout model composed from timm parts only, as the official builder composes it (a tiny
    width): PatchEmbed, class token, fixed position embedding, Blocks with qkv bias, norms with eps 1e-6, decoder."""
    d, dd, p = 48, 32, 16
    norm = partial(nn.LayerNorm, eps=1e-6)
    ref = nn.Module()
    ref.patch_embed = PatchEmbed(img_size, p, 3, d)
    n = ref.patch_embed.num_patches
    ref.cls_token = nn.Parameter(torch.randn(1, 1, d))
    ref.pos_embed = nn.Parameter(torch.randn(1, n + 1, d), requires_grad=False)
    ref.blocks = nn.ModuleList(Block(d, 3, 4.0, qkv_bias=True, norm_layer=norm) for _ in range(2))
    ref.norm = norm(d)
    ref.decoder_embed = nn.Linear(d, dd)
    ref.mask_token = nn.Parameter(torch.randn(1, 1, dd))
    ref.decoder_pos_embed = nn.Parameter(torch.randn(1, n + 1, dd), requires_grad=False)
    ref.decoder_blocks = nn.ModuleList(Block(dd, 2, 4.0, qkv_bias=True, norm_layer=norm) for _ in range(1))
    ref.decoder_norm = norm(dd)
    ref.decoder_pred = nn.Linear(dd, p * p * 3)
    for prm in ref.parameters():  # random everything, norms included
        with torch.no_grad():
            prm.add_(torch.randn_like(prm) * 0.1)
    return ref


def reference_forward(ref, imgs, noise):
    """The official forward (models_mae.py: forward_encoder with random masking, forward_decoder), written from
    its source against the reference modules."""
    x = ref.patch_embed(imgs) + ref.pos_embed[:, 1:, :]
    n, length, d = x.shape
    keep = int(length * 0.25)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    x = torch.gather(x, 1, ids_shuffle[:, :keep].unsqueeze(-1).repeat(1, 1, d))
    x = torch.cat([(ref.cls_token + ref.pos_embed[:, :1, :]).expand(n, -1, -1), x], dim=1)
    for blk in ref.blocks:
        x = blk(x)
    x = ref.decoder_embed(ref.norm(x))
    tokens = ref.mask_token.repeat(n, ids_restore.shape[1] + 1 - x.shape[1], 1)
    x_ = torch.cat([x[:, 1:, :], tokens], dim=1)
    x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))
    x = torch.cat([x[:, :1, :], x_], dim=1) + ref.decoder_pos_embed
    for blk in ref.decoder_blocks:
        x = blk(x)
    return ref.decoder_pred(ref.decoder_norm(x))[:, 1:, :]


def test_official_mae_checkpoint_loads_with_equal_outputs(tmp_path):
    ref = official_mae_reference().eval()
    path = tmp_path / "mae_pretrain.pth"
    torch.save({"model": ref.state_dict(), "epoch": 799}, path)
    enc = VisionTransformer(img_size=32, patch_size=16, embed_dim=48, depth=2, num_heads=3, mlp_ratio=4.0,
                            num_classes=0, norm_layer=partial(nn.LayerNorm, eps=1e-6))
    ours = MaskedAutoencoder(enc, decoder_dim=32, decoder_depth=1, decoder_heads=2)
    from vislearn.backbones.loading import load_state_checked
    from vislearn.pretrain.official import mae_state_from_official

    load_state_checked(ours, mae_state_from_official(torch.load(path)["model"]), str(path))
    ours.eval()
    imgs, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 4)
    with torch.no_grad():
        _, pred, _ = ours(imgs, noise=noise)
        expected = reference_forward(ref, imgs, noise)
    assert torch.allclose(pred, expected, atol=1e-5)
    # the same file as a backbone: the encoder only, decoder skipped; features = the class token after the norm
    backbone = VisionTransformer(img_size=32, patch_size=16, embed_dim=48, depth=2, num_heads=3, num_classes=0,
                                 norm_layer=partial(nn.LayerNorm, eps=1e-6))
    from vislearn.backbones.vit import load_vit_state

    load_vit_state(backbone, torch.load(path)["model"], str(path))
    with torch.no_grad():
        x = torch.cat([ref.cls_token.expand(2, -1, -1), ref.patch_embed(imgs)], 1) + ref.pos_embed
        for blk in ref.blocks:
            x = blk(x)
        assert torch.allclose(backbone.eval()(imgs), ref.norm(x)[:, 0], atol=1e-5)


def test_official_mae_architectures_have_the_released_sizes():
    with torch.device("meta"):
        sizes = {arch: sum(p.numel() for p in build_official_mae(arch).encoder.parameters()) for arch in MAE_ARCHS}
    # ViT-B/16, L/16, H/14 encoders without heads (timm: 85.8 M, 303.3 M, 630.8 M)
    assert round(sizes["mae_vit_base_patch16"] / 1e6, 1) == 85.8
    assert round(sizes["mae_vit_large_patch16"] / 1e6, 1) == 303.3
    assert round(sizes["mae_vit_huge_patch14"] / 1e6, 1) == 630.8


def test_load_official_mae_refuses_another_architecture(tmp_path):
    from vislearn.common.errors import UserError

    path = tmp_path / "x.pth"
    torch.save({"model": official_mae_reference().state_dict()}, path)
    with pytest.raises(UserError, match="do not fit"):
        load_official_mae(path)  # a ViT-B file was expected


def test_mvp_vit_s_checkpoint_loads_with_equal_features(tmp_path):
    """MVP's ViT-S (ir413/mvp `vit_s16`: timm VisionTransformer, 384 wide, 12 heads, head deleted) saved with an
    MAE decoder beside it, as its pre-training checkpoints are; its feature is norm(blocks(...))[:, 0]."""
    torch.manual_seed(1)
    ref = VisionTransformer(img_size=224, patch_size=16, embed_dim=384, depth=12, num_heads=12, mlp_ratio=4,
                            qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6))
    del ref.head
    for prm in ref.parameters():
        with torch.no_grad():
            prm.add_(torch.randn_like(prm) * 0.02)
    state = {**ref.state_dict(), "decoder_embed.weight": torch.randn(512, 384), "mask_token": torch.zeros(1, 1, 512)}
    path = tmp_path / "mae_pretrain_hoi_vit_small.pth"
    torch.save({"model": state}, path)
    ours = create_backbone("vit_s16_mvp", weights=path, num_classes=0).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        t = torch.cat([ref.cls_token.expand(2, -1, -1), ref.patch_embed(x)], 1) + ref.pos_embed
        for blk in ref.blocks:
            t = blk(t)
        assert torch.allclose(ours(x), ref.norm(t)[:, 0], atol=1e-5)
    assert ours.blocks[0].attn.num_heads == 12


# ----------------------------------------------------------------------------- pre-training runs
def write_frames(folder: Path, n: int = 24) -> Path:
    """A folder of small images with structure (bars and blobs) for a reconstruction loss to fall on."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[0:80, 0:80]
    for i in range(n):
        img = np.zeros((80, 80, 3), np.float32)
        for _ in range(3):
            cx, cy, r = rng.uniform(10, 70, 2).tolist() + [rng.uniform(6, 20)]
            img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
        Image.fromarray(img.astype(np.uint8)).save(folder / f"{i:03d}.png")
    return folder


def mae_args(data: Path, out: Path, epochs: int) -> list[str]:
    return ["--data", str(data), "--out", str(out), "--epochs", str(epochs), "--steps-per-epoch", "6",
            "--batch-size", "8", "--img-size", "32", "--patch-size", "8", "--decoder-dim", "32", "--decoder-heads",
            "2", "--decoder-depth", "1", "--blr", "0.01", "--warmup-epochs", "0.5", "--threads", "1"]


def run_mae(args, **kw):
    return subprocess.run([sys.executable, "-m", "vislearn", "pretrain", "mae", *args], cwd=ROOT, text=True,
                          capture_output=True, **kw)


def test_pretraining_lowers_the_loss_and_writes_a_loadable_encoder(tmp_path):
    data = write_frames(tmp_path / "frames")
    r = run_mae(mae_args(data, tmp_path / "run", 6))
    assert r.returncode == 0, r.stderr
    import json

    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["final_loss"] < results["first_loss"]
    for name in ("metrics.jsonl", "encoder.pth", "reconstructions.png", "index.html", "frames.npy", "config.json"):
        assert (tmp_path / "run" / name).is_file()
    enc = create_backbone("vit_p_tiny", weights=tmp_path / "run" / "encoder.pth", img_size=32, patch_size=8,
                          num_classes=5)
    assert enc(torch.randn(1, 3, 32, 32)).shape == (1, 5)


def test_resume_after_a_kill_gives_the_same_weights(tmp_path):
    data = write_frames(tmp_path / "frames")
    assert run_mae(mae_args(data, tmp_path / "whole", 4)).returncode == 0
    args = mae_args(data, tmp_path / "cut", 4)
    proc = subprocess.Popen([sys.executable, "-m", "vislearn", "pretrain", "mae", *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=default_sigint)
    deadline = time.time() + 120
    while not (tmp_path / "cut" / "last.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    r = run_mae([*args, "--resume"])
    assert r.returncode == 0, r.stderr
    a = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("case", ["empty", "corrupt", "size", "conv_patch"])
def test_bad_input_is_one_line(tmp_path, case):
    data = tmp_path / "data"
    data.mkdir()
    args = mae_args(data, tmp_path / "run", 1)
    if case == "empty":
        (data / "notes.txt").write_text("no images here")
        expect = "no images"
    elif case == "corrupt":
        write_frames(data / "ok", 3)
        (data / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
        expect = "broken.jpg: not a readable image"
    elif case == "size":
        write_frames(data / "ok", 3)
        args[args.index("--img-size") + 1] = "36"
        expect = "not divisible by the patch size"
    else:
        write_frames(data / "ok", 3)
        args += ["--backbone", "vit_c_tiny"]
        expect = "ViT_P only"
    r = run_mae(args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], r.stderr


SAMPLE_FRAMES = ROOT.parent / "shared" / "fixtures" / "something_else_sample" / "frames"


@pytest.mark.skipif(not SAMPLE_FRAMES.is_dir(), reason="the real Something-Else sample is not here")
def test_pretrains_on_the_real_sample_frames(tmp_path):
    """The real sample's frame folders (JPEGs of real SSv2 videos) are pre-training data as they are."""
    from vislearn.pretrain.train_mae import MAEConfig, pretrain

    cfg = MAEConfig(data=str(SAMPLE_FRAMES), out=str(tmp_path / "run"), img_size=32, patch_size=8, epochs=1,
                    steps_per_epoch=2, batch_size=4, decoder_dim=16, decoder_heads=2, decoder_depth=1, max_frames=40)
    results = pretrain(cfg, log=lambda *a: None, progress=False)
    info = __import__("json").loads((tmp_path / "run" / "frames.json").read_text())
    assert info["images"] > 0 and info["frames"] == min(40, info["images"]) and results["frames"] == info["frames"]


def test_conv_stem_statistics_are_those_of_whole_images(tmp_path):
    """ViT_C's stem saw three-quarters-zero images in pre-training: encoder.pth holds BatchNorm statistics
    re-estimated on whole crops (equal to a fresh estimate from the same crops)."""
    from vislearn.pretrain.train_mae import MAEConfig, build_mae, recalibrate_stem_norms

    cfg = MAEConfig(data="", out="", backbone="vit_c_tiny", img_size=32, batch_size=4)
    model = build_mae(cfg)
    bank = np.random.default_rng(0).integers(0, 255, (10, 36, 36, 3), dtype=np.uint8)
    bn = model.encoder.patch_embed.backbone[1]
    bn.running_mean.fill_(7.0)
    assert recalibrate_stem_norms(model, bank, cfg, batches=3)
    assert bn.running_mean.abs().max() < 3.0 and bn.momentum == 0.1
    first = bn.running_mean.clone()
    recalibrate_stem_norms(model, bank, cfg, batches=3)  # deterministic: the same crops, the same statistics
    assert torch.equal(first, bn.running_mean)
    assert not recalibrate_stem_norms(build_mae(MAEConfig(data="", out="", img_size=32)), bank, cfg)


def test_a_bank_of_other_data_in_the_run_folder_is_not_reused(tmp_path):
    """A run folder holding the frame bank of an earlier start on other data (killed before its first checkpoint)
    decodes the new data instead of training on the old frames."""
    from vislearn.pretrain.train_mae import MAEConfig, pretrain

    kw = dict(out=str(tmp_path / "run"), img_size=32, patch_size=8, epochs=1, steps_per_epoch=1, batch_size=2,
              decoder_dim=16, decoder_heads=2, decoder_depth=1)
    pretrain(MAEConfig(data=str(write_frames(tmp_path / "a", 3)), **kw), log=lambda *a: None, progress=False)
    (tmp_path / "run" / "last.pt").unlink()  # as if the first start had been killed before its checkpoint
    results = pretrain(MAEConfig(data=str(write_frames(tmp_path / "b", 5)), **kw), log=lambda *a: None,
                       progress=False)
    assert results["frames"] == 5
