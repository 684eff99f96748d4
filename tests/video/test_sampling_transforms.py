import numpy as np
import pytest
import torch

from vislearn.video.data.sampling import SegmentSampler, StridedClipSampler, make_sampler
from vislearn.video.data.transforms import (CenterCrop, FullFrame, HorizontalFlip, MultiScaleCrop, NCrop, Resize, View,
                                 boxes_from_view, boxes_to_view, frames_to_view, left_right_swap,
                                 make_view_transform, normalize)

RNG = np.random.default_rng


# ---------------------------------------------------------------- sampling
@pytest.mark.parametrize("n", [1, 3, 7, 8, 9, 23, 38, 100])
def test_segment_sampler_properties(n):
    s = SegmentSampler(8)
    for idx in [s.centre(n), s(n), s(n, RNG(0)), s.sample(n, RNG(1)), *s.views(n, 3)]:
        assert idx.shape == (8,) and idx.dtype == np.int64
        assert (np.diff(idx) >= 0).all(), idx  # never reversed
        assert idx.min() >= 0 and idx.max() < n
    if n >= 8:  # one frame per segment
        seg = n / 8
        for idx in (s.centre(n), s.sample(n, RNG(2))):
            assert all(int(k * seg) <= i < (k + 1) * seg + 1e-9 for k, i in enumerate(idx))
    else:  # fewer frames than T: repeat in order, every frame used
        assert set(s.centre(n)) == set(range(n))


def test_segment_sampler_centre_matches_official_and_random_varies():
    s = SegmentSampler(8)
    n = 38
    tick = n / 8
    assert list(s.centre(n)) == [int(tick / 2 + tick * x) for x in range(8)]  # official _get_val_indices
    np.testing.assert_array_equal(s.centre(n), s.centre(n))
    np.testing.assert_array_equal(s.sample(n, RNG(5)), s.sample(n, RNG(5)))
    draws = {tuple(s.sample(n, RNG(k))) for k in range(20)}
    assert len(draws) > 10
    assert list(s.centre(3)) == [0, 0, 0, 1, 1, 2, 2, 2]


def test_segment_views_spread_inside_segments():
    v = SegmentSampler(4).views(40, 2)
    assert v.shape == (2, 4)
    assert list(v[0]) == [2, 12, 22, 32] and list(v[1]) == [7, 17, 27, 37]


def test_strided_clip_sampler():
    s = StridedClipSampler(16, 2)
    assert s.span == 31
    c = s.centre(48)
    assert (np.diff(c) == 2).all() and c[0] == (48 - 31) // 2
    for k in range(10):
        idx = s.sample(48, RNG(k))
        assert (np.diff(idx) == 2).all() and 0 <= idx[0] <= 48 - 31 and idx[-1] < 48
    starts = {s.sample(48, RNG(k))[0] for k in range(30)}
    assert len(starts) > 5
    short = s.centre(10)  # shorter than the clip: pad with the last frame, never reverse
    assert list(short) == [0, 2, 4, 6, 8] + [9] * 11
    assert list(s.centre(1)) == [0] * 16
    v = s.views(48, 3)
    assert [r[0] for r in v] == [0, 8, 17] and all((np.diff(r) == 2).all() for r in v)


def test_make_sampler():
    assert isinstance(make_sampler("segment", 8), SegmentSampler)
    st = make_sampler("strided", 16, stride=2)
    assert isinstance(st, StridedClipSampler) and st.num_out == 16 and st.stride == 2
    with pytest.raises(ValueError, match="unknown frame sampler"):
        make_sampler("reverse", 8)
    with pytest.raises(ValueError):
        SegmentSampler(8).centre(0)


# ---------------------------------------------------------------- transforms
def test_center_crop_math():
    v = CenterCrop(224)((427, 240))  # short side 240 -> 256, centre 224 square
    side = 224 * 240 / 256  # 210 source pixels
    assert v.height == round(side) and abs(v.width - side) <= 1
    assert abs((v.x0 + v.x1) / 2 - 427 / 2) <= 1 and abs((v.y0 + v.y1) / 2 - 120) <= 1
    assert (v.out_w, v.out_h) == (224, 224)
    b, ok = boxes_to_view(np.array([[203.5, 110, 223.5, 130], [0, 0, 50, 50]]), v)
    np.testing.assert_allclose(b[0], [0.5, 0.5, 20 / v.width, 20 / v.height], atol=5e-3)
    assert ok[0] and not ok[1] and (b[1] == 0).all()  # outside the centre crop: empty


def test_resize_and_full_frame():
    assert Resize(128)((427, 240)) == View(0, 0, 427, 240, 228, 128)
    v = FullFrame(112)((427, 240))
    b, ok = boxes_to_view(np.array([[0, 0, 427, 240], [-10, 200, 100, 300]]), v)
    np.testing.assert_allclose(b[0], [0.5, 0.5, 1, 1])
    # partly outside the frame: clipped to it
    np.testing.assert_allclose(b[1], [50 / 427, 220 / 240, 100 / 427, 40 / 240], rtol=1e-5)
    assert ok.all()


def test_multiscale_crop_uses_only_size_and_rng():
    t = MultiScaleCrop(112)
    views = [t((427, 240), RNG(k)) for k in range(50)]
    assert views == [t((427, 240), RNG(k)) for k in range(50)]  # reproducible from the generator
    assert len(set(views)) > 10
    s, pairs = t.crop_choices((427, 240))
    allowed = {int(128 * x) for x in t.scales} | {112}
    for v in views:
        assert 0 <= v.x0 < v.x1 <= 427 and 0 <= v.y0 < v.y1 <= 240
        assert (v.out_w, v.out_h) == (112, 112)
        assert any(abs(v.width * s - a) <= 1.5 for a in allowed) and any(abs(v.height * s - a) <= 1.5 for a in allowed)
    assert t((427, 240)) == t((427, 240))  # no generator: deterministic centre crop


def draw_rect(h, w, box):
    img = np.full((h, w, 3), 90, np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = (250, 10, 10)
    return img


def red(t):  # t: [3,H,W] float 0..255
    return (t[0] > 170) & (t[1] < 80)


@pytest.mark.parametrize("flip", [False, True])
def test_box_covers_same_pixels_after_multiscale_crop(flip):
    """A box drawn as a red rectangle: after the crop, the normalised box reads back red inside
    and grey just outside, for many random crops (boxes and frames moved together)."""
    box = (150, 60, 300, 200)
    frames = draw_rect(240, 427, box)[None]
    t = MultiScaleCrop(112)
    checked = 0
    for k in range(40):
        v = t((427, 240), RNG(k))
        if flip:
            v = View(v.x0, v.y0, v.x1, v.y1, v.out_w, v.out_h, flip=True)
        img = frames_to_view(frames, v)[0]
        (cx, cy, bw, bh), ok = boxes_to_view(np.array(box, np.float32), v)
        assert ok
        x1, x2 = (cx - bw / 2) * 112, (cx + bw / 2) * 112
        y1, y2 = (cy - bh / 2) * 112, (cy + bh / 2) * 112
        inside = red(img[:, int(np.ceil(y1)) + 1:int(y2) - 1, int(np.ceil(x1)) + 1:int(x2) - 1])
        assert inside.all()
        ring = torch.ones(112, 112, dtype=torch.bool)
        ring[max(0, int(y1) - 2):int(np.ceil(y2)) + 2, max(0, int(x1) - 2):int(np.ceil(x2)) + 2] = False
        assert not red(img)[ring].any()
        checked += 1
    assert checked == 40


def test_ncrop_left_centre_right():
    views = NCrop(112, 3).views((427, 240))
    assert [v.x0 for v in views] == sorted(v.x0 for v in views)
    assert views[0].x0 == 0 and views[-1].x1 == 427
    assert all(v.y0 == 0 and v.y1 == 240 and v.width == 240 for v in views)
    assert abs((views[1].x0 + views[1].x1) / 2 - 213.5) <= 1
    portrait = NCrop(112, 3).views((240, 427))
    assert portrait[0].y0 == 0 and portrait[-1].y1 == 427 and all(v.x0 == 0 for v in portrait)
    assert NCrop(112, 1).views((427, 240))[0] == views[1]


def test_boxes_from_view_inverts():
    v = CenterCrop(112)((427, 240))
    box = np.array([[150.0, 60, 250, 200]])
    for flip in (False, True):
        vv = View(v.x0, v.y0, v.x1, v.y1, v.out_w, v.out_h, flip)
        b, _ = boxes_to_view(box, vv)
        np.testing.assert_allclose(boxes_from_view(b, vv), box, atol=1e-3)


def test_flip_swaps_labels_by_name():
    labels = {"Pushing something from left to right": 0, "Pushing something from right to left": 1,
              "Holding something": 2, "Turning the camera left while filming something": 3}
    swap = left_right_swap(list(labels))
    assert swap == {"Pushing something from left to right": "Pushing something from right to left",
                    "Pushing something from right to left": "Pushing something from left to right"}
    flip = HorizontalFlip(labels, swap, p=1.0)
    v = View(0, 0, 10, 10, 10, 10)
    assert flip(v, 0, RNG(0)) == (View(0, 0, 10, 10, 10, 10, True), 1)
    assert flip(v, 2, RNG(0)) == (View(0, 0, 10, 10, 10, 10, True), 2)
    assert flip(v, 3, RNG(0)) == (v, 3)  # mentions 'left', no partner: never flipped
    assert flip(v, 0, None) == (v, 0)  # evaluation: no flip
    with pytest.raises(ValueError, match="symmetric"):
        HorizontalFlip(labels, {"Pushing something from left to right": "Holding something"})


def test_normalize_layout():
    f = frames_to_view(np.full((4, 20, 30, 3), 255, np.uint8), View(0, 0, 30, 20, 15, 10))
    assert f.shape == (4, 3, 10, 15)
    n = normalize(f)
    assert n.shape == (3, 4, 10, 15)
    np.testing.assert_allclose(n[:, 0, 0, 0].numpy(), [(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225], rtol=1e-5)


def test_make_view_transform():
    assert isinstance(make_view_transform(True, 112), MultiScaleCrop)
    assert isinstance(make_view_transform(False, 112), CenterCrop)
    assert isinstance(make_view_transform(True, 112, crop="full"), FullFrame)
    with pytest.raises(ValueError):
        make_view_transform(False, 112, crop="nope")
