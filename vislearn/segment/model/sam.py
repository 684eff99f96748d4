"""`Sam`: image encoder + prompt encoder + mask decoder, with the official interface (`preprocess`,
`postprocess_masks`, `forward(batched_input, multimask_output)`), so the predictor, the automatic mask generator and
the ONNX wrappers work on ours and on the official model alike."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)  # ImageNet's, on 0-255 pixels
SAM_PIXEL_STD = (58.395, 57.12, 57.375)


class Sam(nn.Module):
    mask_threshold: float = 0.0
    image_format: str = "RGB"

    def __init__(self, image_encoder: nn.Module, prompt_encoder: nn.Module, mask_decoder: nn.Module,
                 pixel_mean: tuple[float, ...] = SAM_PIXEL_MEAN, pixel_std: tuple[float, ...] = SAM_PIXEL_STD):
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    @property
    def img_size(self) -> int:
        return self.image_encoder.img_size

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """0-255 RGB [.., 3, h, w] resized so its long side is `img_size` -> normalised, zero-padded to a square."""
        x = (x - self.pixel_mean) / self.pixel_std
        h, w = x.shape[-2:]
        return F.pad(x, (0, self.img_size - w, 0, self.img_size - h))

    def postprocess_masks(self, masks: torch.Tensor, input_size: tuple[int, ...],
                          original_size: tuple[int, ...]) -> torch.Tensor:
        """Low-resolution logits -> logits at the original image size (upsample, crop the padding, resize)."""
        masks = F.interpolate(masks, (self.img_size, self.img_size), mode="bilinear", align_corners=False)
        masks = masks[..., :input_size[0], :input_size[1]]
        if tuple(masks.shape[-2:]) == tuple(original_size):  # an identity resize, skipped (same values)
            return masks
        return F.interpolate(masks, tuple(original_size), mode="bilinear", align_corners=False)

    def decode(self, image_embeddings: torch.Tensor, points: tuple[torch.Tensor, torch.Tensor] | None = None,
               boxes: torch.Tensor | None = None, mask_inputs: torch.Tensor | None = None,
               multimask_output: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts (already in the model's input frame) on an image embedding -> (low-res logits, IoU predictions)."""
        sparse, dense = self.prompt_encoder(points=points, boxes=boxes, masks=mask_inputs)
        return self.mask_decoder(image_embeddings=image_embeddings, image_pe=self.prompt_encoder.get_dense_pe(),
                                 sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                 multimask_output=multimask_output)

    @torch.no_grad()
    def forward(self, batched_input: list[dict[str, Any]], multimask_output: bool) -> list[dict[str, torch.Tensor]]:
        """The official end-to-end call: per image a dict with `image` (3xHxW, resized), `original_size`, and
        optionally `point_coords`/`point_labels`, `boxes`, `mask_inputs` -> `masks`, `iou_predictions`,
        `low_res_logits`."""
        images = torch.stack([self.preprocess(x["image"]) for x in batched_input], dim=0)
        embeddings = self.image_encoder(images)
        outputs = []
        for record, embedding in zip(batched_input, embeddings):
            points = (record["point_coords"], record["point_labels"]) if "point_coords" in record else None
            low_res, iou = self.decode(embedding.unsqueeze(0), points, record.get("boxes"), record.get("mask_inputs"),
                                       multimask_output)
            masks = self.postprocess_masks(low_res, record["image"].shape[-2:], record["original_size"])
            outputs.append({"masks": masks > self.mask_threshold, "iou_predictions": iou, "low_res_logits": low_res})
        return outputs
