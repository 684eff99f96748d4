"""SAM as graphs that export to ONNX: the prompt decoder (prompt encoder + mask decoder + mask upscaling) with the
semantics of the official `segment_anything.utils.onnx.SamOnnxModel`, and the image encoder.

The decoder graph is the official one, input for input and output for output, so clients of the official ONNX model
(the web demo, samexporter-style apps) run ours unchanged:

  image_embeddings [1, C, h, w]   the image encoder's output
  point_coords     [B, N, 2]      (x, y) in the model's input frame (the image resized so its long side is img_size)
  point_labels     [B, N]         1 foreground, 0 background, 2 / 3 box top-left / bottom-right, -1 padding
  mask_input       [1|B, 1, 4h, 4w]  a previous low-resolution logit mask (zeros when there is none)
  has_mask_input   [1]            1.0 when mask_input is used, else 0.0
  orig_im_size     [2]            (H, W) of the original image, float
  -> masks [B, M, H, W] (logits at the original size), iou_predictions [B, M], low_res_masks [B, M, 4h, 4w]

Without a box the caller appends one padding point (0, 0) with label -1, as `SamPredictor` does inside the prompt
encoder: the graph has no control flow, so it cannot add one. All four mask tokens are decoded; M = 4 (the
single-mask token first, then the three ambiguity-aware masks), or 1 with `return_single_mask`: then the official
rule picks one with no control flow, by the number of points N (padding included): N <= 2 (one click plus padding,
or a box) takes the multimask output with the best predicted IoU, N >= 3 the single-mask token (several clicks are
not ambiguous). The official SAM 1 has no stability-based fallback here (SAM 2 added one), so neither do we.

B (prompts decoded on one image at once) is dynamic beside N: the official graph fixes it to 1; with B = 1 ours is
the official graph. Options as official: `use_stability_score` (the scores are stability scores of the low-res
logits instead of the predicted IoU), `return_extra_metrics` (also stability scores and areas of the upscaled
masks), and GELU's tanh approximation (`use_gelu_approximation`) for runtimes without the Erf op.

The image encoder graph (`SamOnnxEncoder`) takes the image as 0-255 RGB float [B, 3, h, w], already resized so its
long side is img_size (h, w dynamic), and does `Sam.preprocess` (normalise, zero-pad to a square) inside, so a client
only resizes; -> image_embeddings [B, C, img_size / 16, img_size / 16].
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .automatic import stability_score

DECODER_INPUTS = ("image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input", "orig_im_size")
DECODER_OUTPUTS = ("masks", "iou_predictions", "low_res_masks")
EXTRA_OUTPUTS = ("masks", "iou_predictions", "stability_scores", "areas", "low_res_masks")
ENCODER_INPUTS, ENCODER_OUTPUTS = ("image",), ("image_embeddings",)
PADDING_LABEL = -1


def use_gelu_approximation(model: nn.Module) -> nn.Module:
    """A copy of `model` whose GELUs use the tanh approximation (no Erf in the graph; what the official export script
    does with --gelu-approximate, there in place)."""
    model = copy.deepcopy(model)
    for m in model.modules():
        if isinstance(m, nn.GELU):
            m.approximate = "tanh"
    return model


def prepadded_size(orig_im_size: Tensor, longest_side: int) -> Tensor:
    """(h, w) of an image of size `orig_im_size` resized so its long side is `longest_side` (rounded half up, as
    `ResizeLongestSide` does), int64."""
    size = orig_im_size.to(torch.float32)
    return torch.floor(size * (longest_side / size.max()) + 0.5).to(torch.int64)


class SamOnnxDecoder(nn.Module):
    """The prompt decoder of `model` (ours or the official `Sam`: the same attribute names) as one traceable graph."""

    def __init__(self, model: nn.Module, return_single_mask: bool, use_stability_score: bool = False,
                 return_extra_metrics: bool = False, stability_score_offset: float = 1.0):
        super().__init__()
        self.model = model
        self.img_size = int(model.image_encoder.img_size)
        self.return_single_mask = return_single_mask
        self.use_stability_score = use_stability_score
        self.return_extra_metrics = return_extra_metrics
        self.stability_score_offset = stability_score_offset

    @property
    def output_names(self) -> tuple[str, ...]:
        return EXTRA_OUTPUTS if self.return_extra_metrics else DECODER_OUTPUTS

    def embed_points(self, coords: Tensor, labels: Tensor) -> Tensor:
        """Sparse embeddings [B, N, C]: Fourier features of the pixel centres plus the label's learned embedding;
        a padding point is `not_a_point_embed` alone. Masks instead of indexing, so any label tensor traces."""
        pe = self.model.prompt_encoder
        features = pe.pe_layer._pe_encoding((coords + 0.5) / self.img_size)
        labels = labels.unsqueeze(-1).to(features.dtype)
        emb = features * (labels != PADDING_LABEL) + pe.not_a_point_embed.weight * (labels == PADDING_LABEL)
        for i, point_embedding in enumerate(pe.point_embeddings):
            emb = emb + point_embedding.weight * (labels == i)
        return emb

    def embed_mask(self, mask_input: Tensor, has_mask_input: Tensor) -> Tensor:
        """Dense embedding: the downscaled mask when `has_mask_input` is 1, else `no_mask_embed` everywhere."""
        pe = self.model.prompt_encoder
        return has_mask_input * pe.mask_downscaling(mask_input) + \
            (1 - has_mask_input) * pe.no_mask_embed.weight.reshape(1, -1, 1, 1)

    def select_single(self, masks: Tensor, scores: Tensor, num_points: int | Tensor) -> tuple[Tensor, Tensor]:
        """The official rule with no control flow: the single-mask token gets +/- 1000 by (N - 2.5)."""
        tokens = self.model.mask_decoder.num_mask_tokens
        bonus = torch.tensor([[1000.0] + [0.0] * (tokens - 1)], device=scores.device)
        best = torch.argmax(scores + (num_points - 2.5) * bonus, dim=1)
        rows = torch.arange(masks.shape[0], device=masks.device)
        return masks[rows, best].unsqueeze(1), scores[rows, best].unsqueeze(1)

    def upscale(self, masks: Tensor, orig_im_size: Tensor) -> Tensor:
        """Low-res logits -> logits at the original size (`Sam.postprocess_masks` with the sizes as tensors)."""
        masks = F.interpolate(masks, size=(self.img_size, self.img_size), mode="bilinear", align_corners=False)
        pre = prepadded_size(orig_im_size, self.img_size)
        # sliced by the tensors themselves: the official `int(...)` is frozen at trace time by torch 2.x's tracer, so
        # its graph crops every image as it cropped the example (wrong masks for any other aspect ratio)
        masks = masks[..., : pre[0], : pre[1]]
        size = orig_im_size.to(torch.int64)
        return F.interpolate(masks, size=(size[0], size[1]), mode="bilinear", align_corners=False)

    @torch.no_grad()
    def forward(self, image_embeddings: Tensor, point_coords: Tensor, point_labels: Tensor, mask_input: Tensor,
                has_mask_input: Tensor, orig_im_size: Tensor) -> tuple[Tensor, ...]:
        b = point_coords.shape[0]
        sparse = self.embed_points(point_coords, point_labels)
        dense = self.embed_mask(mask_input, has_mask_input)
        # one row per prompt for the embedding and its positions: the decoder then takes no data-dependent branch
        embeddings = image_embeddings.expand(b, -1, -1, -1)
        image_pe = self.model.prompt_encoder.get_dense_pe().expand(b, -1, -1, -1)
        masks, scores = self.model.mask_decoder.predict_masks(image_embeddings=embeddings, image_pe=image_pe,
                                                             sparse_prompt_embeddings=sparse,
                                                             dense_prompt_embeddings=dense.expand(b, -1, -1, -1))
        threshold = self.model.mask_threshold
        if self.use_stability_score:
            scores = stability_score(masks, threshold, self.stability_score_offset)
        if self.return_single_mask:
            masks, scores = self.select_single(masks, scores, point_coords.shape[1])
        upscaled = self.upscale(masks, orig_im_size)
        if self.return_extra_metrics:
            stability = stability_score(upscaled, threshold, self.stability_score_offset)
            areas = (upscaled > threshold).sum((-1, -2))
            return upscaled, scores, stability, areas, masks
        return upscaled, scores, masks


class SamOnnxEncoder(nn.Module):
    """Resized 0-255 RGB [B, 3, h, w] (long side = img_size) -> image embeddings, preprocessing inside."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.img_size = int(model.image_encoder.img_size)

    @torch.no_grad()
    def forward(self, image: Tensor) -> Tensor:
        return self.model.image_encoder(self.model.preprocess(image))


def decoder_example(model: nn.Module, num_points: int = 3, num_prompts: int = 1, box: bool = False,
                    mask: bool = False, orig_size: tuple[int, int] = (1500, 2250), seed: int = 0) -> dict[str, Tensor]:
    """Decoder inputs of the right shapes and kinds: `num_points` clicks (fg / bg) in the input frame, then box
    corners (labels 2, 3) or one padding point, an optional previous mask; what the check after export runs."""
    g = torch.Generator().manual_seed(seed)
    enc, pe = model.image_encoder, model.prompt_encoder
    h, w = pe.image_embedding_size
    s = float(enc.img_size)
    coords = torch.rand(num_prompts, num_points, 2, generator=g) * s
    labels = torch.randint(0, 2, (num_prompts, num_points), generator=g).float()
    if box:
        corners = torch.sort(torch.rand(num_prompts, 2, 2, generator=g) * s, dim=1).values
        coords = torch.cat([coords, corners], 1)
        labels = torch.cat([labels, torch.tensor([[2.0, 3.0]]).expand(num_prompts, -1)], 1)
    else:
        coords = torch.cat([coords, torch.zeros(num_prompts, 1, 2)], 1)
        labels = torch.cat([labels, torch.full((num_prompts, 1), float(PADDING_LABEL))], 1)
    return {
        "image_embeddings": torch.randn(1, pe.embed_dim, h, w, generator=g),
        "point_coords": coords,
        "point_labels": labels,
        "mask_input": torch.randn(1, 1, 4 * h, 4 * w, generator=g) * 4 if mask else torch.zeros(1, 1, 4 * h, 4 * w),
        "has_mask_input": torch.tensor([1.0 if mask else 0.0]),
        "orig_im_size": torch.tensor([float(orig_size[0]), float(orig_size[1])]),
    }


def encoder_example(model: nn.Module, batch: int = 1, aspect: float = 0.75, seed: int = 0) -> Tensor:
    """A resized 0-255 image: long side img_size, short side `aspect` of it (so the padding is exercised)."""
    g = torch.Generator().manual_seed(seed)
    s = int(model.image_encoder.img_size)
    return torch.randint(0, 256, (batch, 3, int(s * aspect + 0.5), s), generator=g).float()
