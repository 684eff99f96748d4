"""MAE (He et al., "Masked Autoencoders Are Scalable Vision Learners"), the pre-training of the MVP papers, on the
project's ViTs (`vislearn.backbones`: ViT_P or ViT_C, timm's VisionTransformer).

What it does, as the official code (facebookresearch/mae, `models_mae.py`) does:
- Per image, a random 75% of the tokens are masked (argsort of uniform noise; `mask` is 1 where masked). The
  encoder (class token + blocks + final norm) runs on the **visible tokens only**: its blocks cost ~25% of a
  full pass (`bench/backbones/bench_mae.py`).
- A light decoder: a linear map to the decoder width, a shared learned mask token put back at the masked places,
  fixed 2D sin-cos position embeddings, a few transformer blocks (timm's `Block`), a norm, and a linear
  prediction of each token's pixels.
- The loss is the mean squared error on the **masked tokens only**, against each patch's pixels normalised by
  the patch's own mean and variance (`norm_pix_loss`, the paper's default).
- Pixel order inside a patch is the official `patchify`'s (row, column, channel), so an official checkpoint's
  `decoder_pred` predicts the same layout here. The parameter names are the official ones under `encoder.`
  (timm names) and `decoder_*` / `mask_token` at the top (`official.py` loads facebookresearch/mae files).

**The conv stem and masking.** The official MAE and MVP encoders are patchify ViTs: a 16x16 stride-16
convolution, so a token sees its own patch only, and masking before or after the stem is the same thing
(`models_mae.py` masks right after `patch_embed`; ir413/mvp uses the MAE checkpoints on ViT-S/B/L patchify
models and has no conv stem). ViT_C's stem is a stack of overlapping 3x3 convolutions: a token's receptive
field reaches ~15 px into its neighbours, so masking after the stem alone would let the visible tokens see
parts of the masked patches, and the reconstruction task would leak. Here the tokens are masked (dropped)
after the stem, as the stem's output grid is the token grid, and with `hide_masked_pixels` (the default for
any stem other than a plain patchify) the masked patches' pixels are zeroed before the stem, so the visible
tokens carry nothing of what they must reconstruct. The stem itself runs on the whole image (its cost is about
one transformer block: ViT_C drops one block for it).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from timm.layers import PatchEmbed, build_sincos2d_pos_embed
from timm.models.vision_transformer import Block, VisionTransformer
from torch import nn

from vislearn.common.errors import UserError


_decoder_norm = partial(nn.LayerNorm, eps=1e-6)  # the official decoder's norms (its `norm_layer`)


@dataclass(frozen=True)
class Masking:
    """Which tokens each image keeps: `ids_keep` [B, K] (the visible tokens, in the order the encoder sees them),
    `mask` [B, L] (1 = masked, in the image's token order), `ids_restore` [B, L] (undoes the shuffle)."""
    ids_keep: torch.Tensor
    mask: torch.Tensor
    ids_restore: torch.Tensor


def random_masking(batch: int, tokens: int, mask_ratio: float, device=None, noise: torch.Tensor | None = None,
                   generator: torch.Generator | None = None) -> Masking:
    """Per-image random masking by sorting uniform noise (small noise = kept), as the official code does;
    `int(tokens * (1 - mask_ratio))` tokens are kept."""
    keep = int(tokens * (1 - mask_ratio))
    if noise is None:
        noise = torch.rand(batch, tokens, device=device, generator=generator)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    mask = torch.ones(batch, tokens, device=noise.device)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return Masking(ids_shuffle[:, :keep], mask, ids_restore)


def sincos_pos_embed(grid: tuple[int, int], dim: int, class_token: bool = True) -> torch.Tensor:
    """Fixed 2D sin-cos position embedding [1, (1 +) H*W, dim] (a zero row for the class token), as MAE's."""
    pos = build_sincos2d_pos_embed(list(grid), dim=dim)
    if class_token:
        pos = torch.cat([torch.zeros(1, dim), pos], dim=0)
    return pos.unsqueeze(0)


def patchify(imgs: torch.Tensor, patch: int) -> torch.Tensor:
    """[B,C,H,W] -> [B, L, patch*patch*C], pixels in (row, column, channel) order inside a patch (official)."""
    b, c, h, w = imgs.shape
    gh, gw = h // patch, w // patch
    x = imgs.reshape(b, c, gh, patch, gw, patch)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(b, gh * gw, patch * patch * c)


def unpatchify(x: torch.Tensor, patch: int, grid: tuple[int, int], channels: int = 3) -> torch.Tensor:
    """The inverse of `patchify`: [B, L, patch*patch*C] -> [B,C,H,W]."""
    b = x.shape[0]
    gh, gw = grid
    x = x.reshape(b, gh, gw, patch, patch, channels)
    return torch.einsum("nhwpqc->nchpwq", x).reshape(b, channels, gh * patch, gw * patch)


def check_encoder(encoder: VisionTransformer) -> None:
    """MAE needs a class-token ViT with an absolute position embedding and a fixed grid."""
    problems = []
    if encoder.cls_token is None:
        problems.append("no class token")
    if encoder.pos_embed is None or encoder.no_embed_class:
        problems.append("no position embedding over the class token and the grid")
    if getattr(encoder, "reg_token", None) is not None:
        problems.append("register tokens")
    if encoder.dynamic_img_size:
        problems.append("dynamic_img_size")
    if problems:
        raise UserError(f"MAE needs a ViT with a class token and an absolute position embedding: this one has "
                        f"{', '.join(problems)}")


class MaskedAutoencoder(nn.Module):
    """MAE around a timm VisionTransformer `encoder` (ViT_P or ViT_C from `vislearn.backbones`).

    `forward(imgs)` returns (loss, pred [B, L, patch*patch*3], mask [B, L]) as the official model does; `imgs`
    are normalised images [B,3,H,W] at the encoder's input size. `encoder` keeps its own state-dict names, so
    `self.encoder.state_dict()` is a backbone checkpoint (`create_backbone(name, weights=...)`).
    """

    def __init__(self, encoder: VisionTransformer, decoder_dim: int = 512, decoder_depth: int = 8,
                 decoder_heads: int = 16, mlp_ratio: float = 4.0, mask_ratio: float = 0.75,
                 norm_pix_loss: bool = True, hide_masked_pixels: bool | None = None,
                 fixed_pos_embed: bool = True):
        super().__init__()
        check_encoder(encoder)
        if not 0.0 <= mask_ratio < 1.0:
            raise UserError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
        self.encoder = encoder
        self.patch = int(encoder.patch_embed.feat_ratio())
        self.grid = tuple(int(g) for g in encoder.patch_embed.grid_size)
        self.mask_ratio = mask_ratio
        self.norm_pix_loss = norm_pix_loss
        plain_patchify = type(encoder.patch_embed) is PatchEmbed
        self.hide_masked_pixels = (not plain_patchify) if hide_masked_pixels is None else hide_masked_pixels
        width, tokens = encoder.embed_dim, self.grid[0] * self.grid[1]
        if fixed_pos_embed:  # MAE pre-trains with a fixed sin-cos embedding (fine-tuning may learn it later)
            with torch.no_grad():
                encoder.pos_embed.copy_(sincos_pos_embed(self.grid, width))
            encoder.pos_embed.requires_grad_(False)

        self.decoder_embed = nn.Linear(width, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_pos_embed = nn.Parameter(sincos_pos_embed(self.grid, decoder_dim), requires_grad=False)
        self.decoder_blocks = nn.ModuleList(
            Block(decoder_dim, decoder_heads, mlp_ratio, qkv_bias=True, norm_layer=_decoder_norm)
            for _ in range(decoder_depth))
        self.decoder_norm = _decoder_norm(decoder_dim)
        self.decoder_pred = nn.Linear(decoder_dim, self.patch * self.patch * 3)
        self._init_decoder()
        self.tokens = tokens

    def _init_decoder(self) -> None:
        """As the official: normal(0.02) mask token, xavier-uniform linear layers, unit LayerNorms."""
        nn.init.normal_(self.mask_token, std=0.02)
        for m in [self.decoder_embed, self.decoder_pred, *self.decoder_blocks.modules(), self.decoder_norm]:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------------------------------ encoder
    def pixel_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """[B, L] token mask -> [B, 1, H, W] pixel mask (1 = the pixel belongs to a masked patch)."""
        b = mask.shape[0]
        m = mask.reshape(b, 1, *self.grid)
        return m.repeat_interleave(self.patch, dim=2).repeat_interleave(self.patch, dim=3)

    def forward_encoder(self, imgs: torch.Tensor, masking: Masking) -> torch.Tensor:
        """Latent [B, 1 + K, D] of the class token and the K visible tokens (the masked ones never enter a block)."""
        enc = self.encoder
        if self.hide_masked_pixels:
            imgs = imgs * (1 - self.pixel_mask(masking.mask).to(imgs.dtype))
        x = enc.patch_embed(imgs)  # [B, L, D] (the stem runs on the whole image)
        x = x + enc.pos_embed[:, 1:, :]
        x = torch.gather(x, 1, masking.ids_keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        cls = (enc.cls_token + enc.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        x = enc.norm_pre(x)
        for block in enc.blocks:
            x = block(x)
        return enc.norm(x)

    # ------------------------------------------------------------------------------------------ decoder
    def forward_decoder(self, latent: torch.Tensor, masking: Masking) -> torch.Tensor:
        """Predicted pixels of every token [B, L, patch*patch*3] (the loss reads the masked ones)."""
        x = self.decoder_embed(latent)
        b, kept, d = x.shape[0], x.shape[1] - 1, x.shape[2]
        fill = self.mask_token.expand(b, self.tokens - kept, d)
        x_ = torch.cat([x[:, 1:, :], fill], dim=1)
        x_ = torch.gather(x_, 1, masking.ids_restore.unsqueeze(-1).expand(-1, -1, d))
        x = torch.cat([x[:, :1, :], x_], dim=1) + self.decoder_pos_embed
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:, :]

    def target(self, imgs: torch.Tensor) -> torch.Tensor:
        """What the decoder predicts: each patch's pixels, normalised per patch with `norm_pix_loss`."""
        t = patchify(imgs, self.patch)
        if self.norm_pix_loss:
            mean, var = t.mean(dim=-1, keepdim=True), t.var(dim=-1, keepdim=True)
            t = (t - mean) / (var + 1e-6) ** 0.5
        return t

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error per patch, averaged over the masked patches only."""
        per_patch = ((pred - self.target(imgs)) ** 2).mean(dim=-1)
        return (per_patch * mask).sum() / mask.sum().clamp(min=1)

    def forward(self, imgs: torch.Tensor, mask_ratio: float | None = None, noise: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if tuple(imgs.shape[-2:]) != (self.grid[0] * self.patch, self.grid[1] * self.patch):
            raise UserError(f"MAE input is {tuple(imgs.shape[-2:])} but the encoder takes "
                            f"{(self.grid[0] * self.patch, self.grid[1] * self.patch)}")
        ratio = self.mask_ratio if mask_ratio is None else mask_ratio
        masking = random_masking(imgs.shape[0], self.tokens, ratio, imgs.device, noise, generator)
        latent = self.forward_encoder(imgs, masking)
        pred = self.forward_decoder(latent, masking)
        return self.forward_loss(imgs, pred, masking.mask), pred, masking.mask

    def reconstruct(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Images made of the visible patches and the predicted masked ones, in the input's normalisation (a
        normalised-pixel prediction is put back at each patch's true mean and variance, as the official demo)."""
        if self.norm_pix_loss:
            t = patchify(imgs, self.patch)
            mean, var = t.mean(dim=-1, keepdim=True), t.var(dim=-1, keepdim=True)
            pred = pred * (var + 1e-6) ** 0.5 + mean
        pasted = patchify(imgs, self.patch) * (1 - mask.unsqueeze(-1)) + pred * mask.unsqueeze(-1)
        return unpatchify(pasted, self.patch, self.grid)
