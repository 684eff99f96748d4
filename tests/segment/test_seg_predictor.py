"""Our resizing and SamPredictor against the official `segment_anything` ones: the same numbers for point, box,
point + box and mask prompts, multimask on and off, on a tiny random model (the official classes, saved as an
official `.pth`, loaded by our `load_sam`); prompts a user gets wrong are one-line UserErrors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vislearn.common.errors import UserError
from vislearn.segment.model.build import load_sam
from vislearn.segment.predictor import SamPredictor
from vislearn.segment.transforms import ResizeLongestSide

segment_anything = pytest.importorskip("segment_anything")
from segment_anything import SamPredictor as OfficialPredictor  # noqa: E402
from official_sam import TINY, official_model  # noqa: E402
from segment_anything.utils.transforms import ResizeLongestSide as OfficialResize  # noqa: E402

H, W = 48, 80  # not square: the resize pads, prompts scale by different factors than a square would


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    official = official_model(TINY, perturb=0.05, decoder_gain=2.0)
    path = tmp_path_factory.mktemp("sam") / "sam_tiny.pth"
    torch.save(official.state_dict(), path)
    ours, _ = load_sam(path)
    return official, ours


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(1)
    img = (rng.random((H, W, 3)) * 255).astype(np.uint8)
    img[10:30, 20:50] = (220, 40, 30)
    return img


@pytest.fixture(scope="module")
def predictors(models, image):
    official, ours = models
    a, b = OfficialPredictor(official), SamPredictor(ours)
    a.set_image(image)
    b.set_image(image)
    return a, b


# ----------------------------------------------------------------------------- transforms
def test_resize_equals_official():
    ours, theirs = ResizeLongestSide(64), OfficialResize(64)
    rng = np.random.default_rng(0)
    for h, w in [(48, 80), (81, 40), (64, 64), (7, 200)]:
        img = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        assert np.array_equal(ours.apply_image(img), theirs.apply_image(img))
        pts = rng.random((5, 2)) * [w, h]
        assert np.array_equal(ours.apply_coords(pts, (h, w)), theirs.apply_coords(pts, (h, w)))
        boxes = rng.random((3, 4)) * [w, h, w, h]
        assert np.array_equal(ours.apply_boxes(boxes, (h, w)), theirs.apply_boxes(boxes, (h, w)))
        t = torch.as_tensor(pts)
        assert torch.equal(ours.apply_coords_torch(t, (h, w)), theirs.apply_coords_torch(t, (h, w)))
        tb = torch.as_tensor(boxes)
        assert torch.equal(ours.apply_boxes_torch(tb, (h, w)), theirs.apply_boxes_torch(tb, (h, w)))
        assert ours.get_preprocess_shape(h, w, 64) == theirs.get_preprocess_shape(h, w, 64)
    assert pts is not ours.apply_coords(pts, (h, w))  # a new array, the input untouched
    # batched images: H and W of the tensor (the official one reads B and C there, a known slip)
    x = torch.rand(2, 3, 48, 80)
    assert ours.apply_image_torch(x).shape == (2, 3, 38, 64)


# ----------------------------------------------------------------------------- predictions
PROMPTS = {
    "one point": dict(point_coords=np.array([[30.0, 20.0]]), point_labels=np.array([1])),
    "fg and bg points": dict(point_coords=np.array([[30.0, 20.0], [70.0, 40.0]]), point_labels=np.array([1, 0])),
    "box": dict(box=np.array([15.0, 8.0, 55.0, 33.0])),
    "point and box": dict(point_coords=np.array([[35.0, 18.0]]), point_labels=np.array([1]),
                          box=np.array([15.0, 8.0, 55.0, 33.0])),
}


def _close(a, b, tol=1e-4):
    """Within `tol` of the larger magnitude (logits reach ~10: float32 rounding of two encoders that compute
    the same thing in a different order)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= tol * max(1.0, np.abs(a).max())


@pytest.fixture(scope="module")
def same_model(models, image):
    """The official predictor and ours on the very same (official) model: the predictor's own work, bit for bit."""
    official, _ = models
    a, b = OfficialPredictor(official), SamPredictor(official)
    a.set_image(image)
    b.set_image(image)
    return a, b


def test_image_embedding_equals_official(predictors):
    a, b = predictors
    _close(a.get_image_embedding(), b.get_image_embedding())
    assert b.original_size == (H, W) and b.input_size == (38, 64)


@pytest.mark.parametrize("multimask", [True, False])
@pytest.mark.parametrize("name", list(PROMPTS))
def test_predict_equals_official(predictors, name, multimask):
    a, b = predictors
    la, ia, lowa = a.predict(**PROMPTS[name], multimask_output=multimask, return_logits=True)
    lb, ib, lowb = b.predict(**PROMPTS[name], multimask_output=multimask, return_logits=True)
    assert lb.shape == (3 if multimask else 1, H, W)
    _close(la, lb)
    _close(ia, ib)
    _close(lowa, lowb)
    ma, _, _ = a.predict(**PROMPTS[name], multimask_output=multimask)
    mb, _, _ = b.predict(**PROMPTS[name], multimask_output=multimask)
    assert mb.dtype == bool
    assert np.array_equal(ma, mb)
    assert 0 < mb.sum() < mb.size  # masks, not all or nothing: the comparison means something


@pytest.mark.parametrize("name", list(PROMPTS))
def test_predict_on_the_same_model_is_bitwise_official(same_model, name):
    a, b = same_model
    for multimask in (True, False):
        for x, y in zip(a.predict(**PROMPTS[name], multimask_output=multimask, return_logits=True),
                        b.predict(**PROMPTS[name], multimask_output=multimask, return_logits=True)):
            assert np.array_equal(x, y)


def test_mask_input_refinement_equals_official(predictors):
    """A second round with the first round's low-resolution logits as mask input (the interactive loop)."""
    a, b = predictors
    prompt = PROMPTS["one point"]
    _, iou, low = b.predict(**prompt, multimask_output=True)
    mask_input = low[np.argmax(iou)][None]
    more = dict(point_coords=np.array([[30.0, 20.0], [45.0, 25.0]]), point_labels=np.array([1, 1]))
    la, ia, _ = a.predict(**more, mask_input=mask_input, multimask_output=False, return_logits=True)
    lb, ib, _ = b.predict(**more, mask_input=mask_input, multimask_output=False, return_logits=True)
    _close(la, lb)
    _close(ia, ib)
    plain, _, _ = b.predict(**more, multimask_output=False, return_logits=True)
    assert np.abs(plain - lb).max() > 1e-3  # the mask input changed the answer


def test_predict_torch_batched_with_padding_equals_official(predictors):
    """Two prompts in one batch, the shorter padded with a label -1 point."""
    a, b = predictors
    coords = torch.tensor([[[30.0, 20.0], [70.0, 40.0]], [[10.0, 10.0], [0.0, 0.0]]])
    labels = torch.tensor([[1, 0], [1, -1]])
    coords = b.transform.apply_coords_torch(coords, (H, W))
    ma, ia, la = a.predict_torch(coords, labels, multimask_output=True, return_logits=True)
    mb, ib, lb = b.predict_torch(coords, labels, multimask_output=True, return_logits=True)
    assert mb.shape == (2, 3, H, W)
    _close(ma, mb)
    _close(ia, ib)
    # the padded prompt equals the same point alone
    alone, _, _ = b.predict_torch(coords[1:, :1], labels[1:, :1], multimask_output=True, return_logits=True)
    assert not torch.allclose(alone, mb[1:])  # padding is a token of its own, as in the official model
    _close(alone, a.predict_torch(coords[1:, :1], labels[1:, :1], return_logits=True)[0])


def test_bgr_input_is_flipped(models, image):
    _, ours = models
    rgb, bgr = SamPredictor(ours), SamPredictor(ours)
    rgb.set_image(image)
    bgr.set_image(np.ascontiguousarray(image[..., ::-1]), image_format="BGR")
    assert torch.equal(rgb.get_image_embedding(), bgr.get_image_embedding())


def test_reset_and_no_image(models):
    _, ours = models
    p = SamPredictor(ours)
    with pytest.raises(RuntimeError):
        p.predict(**PROMPTS["box"])
    with pytest.raises(RuntimeError):
        p.get_image_embedding()


# ----------------------------------------------------------------------------- user mistakes
@pytest.mark.parametrize("kwargs, words", [
    (dict(point_coords=np.array([[90.0, 10.0]]), point_labels=np.array([1])), "outside the image"),
    (dict(point_coords=np.array([[10.0, -1.0]]), point_labels=np.array([1])), "outside the image"),
    (dict(point_coords=np.zeros((0, 2)), point_labels=np.zeros(0)), "empty"),
    (dict(point_coords=np.array([[10.0, 10.0]]), point_labels=np.array([2])), "not a label"),
    (dict(point_coords=np.array([[10.0, 10.0]]), point_labels=np.array([-1])), "not a label"),
    (dict(point_coords=np.array([[10.0, 10.0], [20.0, 20.0]]), point_labels=np.array([1])), "2 points"),
    (dict(point_coords=np.array([[10.0, 10.0]])), "go together"),
    (dict(point_coords=np.array([10.0, 10.0, 5.0]), point_labels=np.array([1])), "N x 2"),
    (dict(box=np.array([50.0, 10.0, 20.0, 30.0])), "x2 < x1"),
    (dict(box=np.array([10.0, 10.0, 20.0])), "4 numbers"),
    (dict(box=np.array([10.0, 10.0, 90.0, 30.0])), "outside the image"),
    (dict(box=np.array([10.0, 10.0, 20.0, 30.0]), mask_input=np.zeros((1, 8, 8))), "mask input"),
])
def test_bad_prompts_are_one_line_user_errors(predictors, kwargs, words):
    _, b = predictors
    with pytest.raises(UserError) as e:
        b.predict(**kwargs)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_bad_batched_prompts(predictors):
    _, b = predictors
    coords = torch.zeros(2, 1, 2)
    with pytest.raises(UserError, match="not a label"):
        b.predict_torch(coords, torch.tensor([[1], [3]]))
    with pytest.raises(UserError, match="does not match"):
        b.predict_torch(coords, torch.ones(2, 2))
    with pytest.raises(UserError, match="batch sizes differ"):
        b.predict_torch(coords, torch.ones(2, 1), boxes=torch.tensor([[0.0, 0.0, 5.0, 5.0]] * 3))
    with pytest.raises(UserError, match="x2 < x1"):
        b.predict_torch(None, None, boxes=torch.tensor([[9.0, 0.0, 5.0, 5.0]]))


def test_bad_images(models):
    _, ours = models
    p = SamPredictor(ours)
    with pytest.raises(UserError, match="uint8"):
        p.set_image(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(UserError, match="H x W x 3"):
        p.set_image(np.zeros((10, 10), np.uint8))
    with pytest.raises(UserError, match="RGB or BGR"):
        p.set_image(np.zeros((10, 10, 3), np.uint8), image_format="HSV")
