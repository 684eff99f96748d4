"""Promptable masks for one image: the image is embedded once, then any number of prompts are cheap.

`SamPredictor` has the official class's interface and gives the same numbers (`set_image`, `set_torch_image`,
`predict`, `predict_torch`, `get_image_embedding`, `reset_image`). Prompts are checked first, so that a user
mistake (a point outside the image, labels other than 1 foreground / 0 background, a box with x2 < x1, a
mask input of the wrong size) is a one-line `UserError` rather than an assertion or a shape error deep
inside the model. `predict_torch` (prompts already in the resized frame, batched) also accepts the label -1:
a padding point the model ignores (the prompt encoder's "not a point"), so prompts with different numbers
of points can share a batch.
"""
from __future__ import annotations

import numpy as np
import torch

from vislearn.common.errors import UserError

from .transforms import ResizeLongestSide


def _array(value, name: str, dtype=float) -> np.ndarray:
    try:
        return np.asarray(value, dtype=dtype)
    except (TypeError, ValueError):
        raise UserError(f"{name}: expected numbers, got {value!r}") from None


def check_points(coords, labels, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Points [N, 2] (x, y) inside the image of `size` (h, w) and labels [N] in {0, 1}; -> arrays."""
    h, w = size
    coords = _array(coords, "points")
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise UserError(f"points: expected N x 2 coordinates (x, y), got shape {tuple(coords.shape)}")
    if len(coords) == 0:
        raise UserError("points: the list is empty (give at least one x,y point, or no points at all)")
    if not np.isfinite(coords).all():
        raise UserError("points: coordinates must be finite numbers")
    labels = _array(labels, "point labels")
    if labels.shape != (len(coords),):
        raise UserError(f"point labels: {labels.size} labels for {len(coords)} points")
    bad = ~np.isin(labels, (0, 1))
    if bad.any():
        raise UserError(f"point labels: {labels[bad][0]:g} is not a label (1 foreground, 0 background)")
    outside = (coords[:, 0] < 0) | (coords[:, 0] > w) | (coords[:, 1] < 0) | (coords[:, 1] > h)
    if outside.any():
        x, y = coords[outside][0]
        raise UserError(f"point ({x:g}, {y:g}) lies outside the image ({w} x {h} pixels)")
    return coords, labels


def check_box(box, size: tuple[int, int]) -> np.ndarray:
    """A box (x1, y1, x2, y2) inside the image of `size` (h, w) with x1 <= x2, y1 <= y2; -> float array [4]."""
    h, w = size
    box = _array(box, "box")
    if box.size != 4:
        raise UserError(f"box: expected 4 numbers x1,y1,x2,y2, got {box.size}")
    box = box.reshape(4)
    x1, y1, x2, y2 = box
    if not np.isfinite(box).all():
        raise UserError("box: coordinates must be finite numbers")
    if x2 < x1 or y2 < y1:
        raise UserError(f"box ({x1:g}, {y1:g}, {x2:g}, {y2:g}): x2 < x1 or y2 < y1 (expected x1,y1,x2,y2)")
    if x1 < 0 or y1 < 0 or x2 > w or y2 > h:
        raise UserError(f"box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) lies outside the image ({w} x {h} pixels)")
    return box


class SamPredictor:
    """Masks of one image for point, box and mask prompts (see the module)."""

    def __init__(self, sam_model) -> None:
        self.model = sam_model
        self.transform = ResizeLongestSide(sam_model.image_encoder.img_size)
        self.reset_image()

    @property
    def device(self) -> torch.device:
        return self.model.device

    def reset_image(self) -> None:
        """Forget the current image (its embedding and sizes)."""
        self.is_image_set = False
        self.features = None
        self.original_size = None
        self.input_size = None

    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        """Embed an HxWx3 uint8 image (`image_format` "RGB" or "BGR"; flipped to the model's order)."""
        if image_format not in ("RGB", "BGR"):
            raise UserError(f"image_format: expected RGB or BGR, got {image_format!r}")
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise UserError(f"image: expected an H x W x 3 uint8 array, got {image.dtype} {tuple(image.shape)}")
        if min(image.shape[:2]) < 1:
            raise UserError(f"image: empty ({image.shape[1]} x {image.shape[0]} pixels)")
        if image_format != self.model.image_format:
            image = image[..., ::-1]
        resized = self.transform.apply_image(image)
        x = torch.as_tensor(resized, device=self.device).permute(2, 0, 1).contiguous()[None]
        self.set_torch_image(x, image.shape[:2])

    @torch.no_grad()
    def set_torch_image(self, transformed_image: torch.Tensor, original_image_size) -> None:
        """Embed an image already resized (1x3xHxW, longest side `img_size`); `original_image_size` is (h, w)."""
        size = self.model.image_encoder.img_size
        shape = tuple(transformed_image.shape)
        if len(shape) != 4 or shape[1] != 3 or max(shape[2:]) != size:
            raise UserError(f"image: expected a 1 x 3 x H x W tensor with longest side {size}, got {shape}")
        self.reset_image()
        self.original_size = tuple(int(s) for s in original_image_size)
        self.input_size = tuple(int(s) for s in shape[-2:])
        self.features = self.model.image_encoder(self.model.preprocess(transformed_image))
        self.is_image_set = True

    def _require_image(self) -> None:
        if not self.is_image_set:
            raise RuntimeError("An image must be set with .set_image(...) before mask prediction.")

    def _mask_input_size(self) -> tuple[int, int]:
        return tuple(int(s) for s in self.model.prompt_encoder.mask_input_size)

    def predict(self, point_coords: np.ndarray | None = None, point_labels: np.ndarray | None = None,
                box: np.ndarray | None = None, mask_input: np.ndarray | None = None,
                multimask_output: bool = True, return_logits: bool = False):
        """Masks for one prompt, in original image pixels.

        point_coords [N, 2] (x, y) with point_labels [N] (1 foreground, 0 background); box [4] (x1, y1, x2, y2);
        mask_input [1, 256, 256] low-resolution logits of an earlier prediction. Returns numpy arrays:
        masks [C, H, W] (bool, or float logits with `return_logits`), iou_predictions [C], low_res_logits
        [C, 256, 256]; C is 3 with `multimask_output`, else 1.
        """
        self._require_image()
        coords_t = labels_t = box_t = mask_t = None
        if point_coords is not None or point_labels is not None:
            if point_coords is None or point_labels is None:
                raise UserError("points: coordinates and labels go together (got only one of them)")
            coords, labels = check_points(point_coords, point_labels, self.original_size)
            coords = self.transform.apply_coords(coords, self.original_size)
            coords_t = torch.as_tensor(coords, dtype=torch.float, device=self.device)[None]
            labels_t = torch.as_tensor(labels, dtype=torch.int, device=self.device)[None]
        if box is not None:
            b = self.transform.apply_boxes(check_box(box, self.original_size), self.original_size)
            box_t = torch.as_tensor(b, dtype=torch.float, device=self.device)  # [1, 4]
        if mask_input is not None:
            m = _array(mask_input, "mask input", np.float32)
            want = (1, *self._mask_input_size())
            if m.shape != want:
                raise UserError(f"mask input: expected shape {want} (low-resolution logits), got {m.shape}")
            mask_t = torch.as_tensor(m, dtype=torch.float, device=self.device)[None]
        masks, iou, low = self.predict_torch(coords_t, labels_t, box_t, mask_t, multimask_output, return_logits)
        return masks[0].cpu().numpy(), iou[0].cpu().numpy(), low[0].cpu().numpy()

    def _check_torch_prompts(self, point_coords, point_labels, boxes, mask_input) -> None:
        n = {}
        if point_coords is not None:
            if point_labels is None:
                raise UserError("points: coordinates and labels go together (got only coordinates)")
            if point_coords.ndim != 3 or point_coords.shape[-1] != 2 or point_coords.shape[1] == 0:
                raise UserError(f"points: expected B x N x 2 with N >= 1, got {tuple(point_coords.shape)}")
            if tuple(point_labels.shape) != tuple(point_coords.shape[:2]):
                raise UserError(f"point labels: shape {tuple(point_labels.shape)} does not match points "
                                f"{tuple(point_coords.shape)}")
            bad = ~torch.isin(point_labels, torch.tensor([-1, 0, 1], device=point_labels.device))
            if bad.any():
                raise UserError(f"point labels: {point_labels[bad][0].item()} is not a label "
                                f"(1 foreground, 0 background, -1 padding)")
            n["points"] = point_coords.shape[0]
        if boxes is not None:
            if boxes.shape[-1:] != (4,) or boxes.ndim not in (2, 3) or (boxes.ndim == 3 and boxes.shape[1] != 1):
                raise UserError(f"boxes: expected B x 4, got {tuple(boxes.shape)}")
            boxes = boxes.reshape(-1, 4)
            if ((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).any():
                raise UserError("boxes: x2 < x1 or y2 < y1 (expected x1,y1,x2,y2)")
            n["boxes"] = boxes.shape[0]
        if mask_input is not None:
            want = self._mask_input_size()
            if mask_input.ndim != 4 or mask_input.shape[1] != 1 or tuple(mask_input.shape[2:]) != want:
                raise UserError(f"mask input: expected B x 1 x {want[0]} x {want[1]}, got {tuple(mask_input.shape)}")
            n["mask input"] = mask_input.shape[0]
        if len(set(n.values())) > 1:
            raise UserError("prompts: batch sizes differ (" + ", ".join(f"{k} {v}" for k, v in n.items()) + ")")

    @torch.no_grad()
    def predict_torch(self, point_coords: torch.Tensor | None, point_labels: torch.Tensor | None,
                      boxes: torch.Tensor | None = None, mask_input: torch.Tensor | None = None,
                      multimask_output: bool = True, return_logits: bool = False):
        """Masks for a batch of B prompts already in the resized frame (`transform.apply_coords_torch`).

        point_coords [B, N, 2], point_labels [B, N] (1, 0, or -1 for padding), boxes [B, 4], mask_input
        [B, 1, 256, 256]. Returns tensors: masks [B, C, H, W] at the original size, iou_predictions [B, C],
        low_res_logits [B, C, 256, 256].
        """
        self._require_image()
        self._check_torch_prompts(point_coords, point_labels, boxes, mask_input)
        points = (point_coords, point_labels) if point_coords is not None else None
        sparse, dense = self.model.prompt_encoder(points=points, boxes=boxes, masks=mask_input)
        low_res, iou = self.model.mask_decoder(
            image_embeddings=self.features,
            image_pe=self.model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask_output,
        )
        masks = self.model.postprocess_masks(low_res, self.input_size, self.original_size)
        if not return_logits:
            masks = masks > self.model.mask_threshold
        return masks, iou, low_res

    def get_image_embedding(self) -> torch.Tensor:
        """The current image's embedding, 1 x C x h x w (C=256, h=w=64 for the official models)."""
        if not self.is_image_set:
            raise RuntimeError("An image must be set with .set_image(...) to generate an embedding.")
        return self.features
