"""Pure crop geometry: square boxes, frame clipping, fitting and padding, crop scale."""

import random

import pytest

from handgesture.data.geometry import (
    clip_to_frame,
    crop_scale,
    fit_size,
    level_of,
    level_scales,
    pad_offsets,
    square_crop_box,
)


def test_square_is_centred_on_the_box_with_the_longer_side():
    # 50 x 25 px box centred at (50, 37.5) in a 100 x 100 frame.
    assert square_crop_box((0.25, 0.25, 0.5, 0.25), 100, 100, 1.0) == (25, 13, 75, 63)


def test_side_uses_pixels_not_normalised_units():
    # w = 0.1 * 200 = 20 px, h = 0.2 * 50 = 10 px -> side 20.
    x0, y0, x1, y1 = square_crop_box((0.45, 0.4, 0.1, 0.2), 200, 50, 1.0)
    assert (x1 - x0, y1 - y0) == (20, 20)
    assert (x0 + x1) / 2 == 100 and (y0 + y1) / 2 == 25


@pytest.mark.parametrize(("scale", "side"), [(1.0, 40), (1.5, 60), (2.0, 80), (1.99, 80)])
def test_scale_grows_the_square_around_the_same_centre(scale, side):
    x0, y0, x1, y1 = square_crop_box((0.4, 0.3, 0.2, 0.4), 100, 100, scale)
    assert (x1 - x0, y1 - y0) == (side, side)
    assert abs((x0 + x1) / 2 - 50) <= 0.5 and abs((y0 + y1) / 2 - 50) <= 0.5


def test_degenerate_box_gives_a_one_pixel_square():
    x0, y0, x1, y1 = square_crop_box((0.5, 0.5, 0.0, 0.0), 10, 10, 1.0)
    assert (x1 - x0, y1 - y0) == (1, 1)


@pytest.mark.parametrize(("args", "match"), [((0, 10, 1.0), "frame size"), ((10, 10, 0.0), "scale")])
def test_bad_geometry_arguments_are_named(args, match):
    with pytest.raises(ValueError, match=match):
        square_crop_box((0, 0, 1, 1), *args)


# Box 10 x 20 px in a 100 x 80 frame, touching or crossing each edge.
EDGE_CASES = {
    "touch_left": ((0.0, 0.5, 0.1, 0.25), (-5, 40, 15, 60), (0, 40, 15, 60), (5, 0)),
    "touch_right": ((0.9, 0.5, 0.1, 0.25), (85, 40, 105, 60), (85, 40, 100, 60), (0, 0)),
    "touch_top": ((0.5, 0.0, 0.1, 0.25), (45, 0, 65, 20), (45, 0, 65, 20), (0, 0)),
    "touch_bottom": ((0.5, 0.75, 0.1, 0.25), (45, 60, 65, 80), (45, 60, 65, 80), (0, 0)),
    "cross_left": ((-0.05, 0.5, 0.1, 0.25), (-10, 40, 10, 60), (0, 40, 10, 60), (10, 0)),
    "cross_right": ((0.95, 0.5, 0.1, 0.25), (90, 40, 110, 60), (90, 40, 100, 60), (0, 0)),
    "cross_top": ((0.5, -0.125, 0.1, 0.25), (45, -10, 65, 10), (45, 0, 65, 10), (0, 10)),
    "cross_bottom": ((0.5, 0.875, 0.1, 0.25), (45, 70, 65, 90), (45, 70, 65, 80), (0, 0)),
    "corner": ((-0.05, -0.125, 0.1, 0.25), (-10, -10, 10, 10), (0, 0, 10, 10), (10, 10)),
}


@pytest.mark.parametrize("case", EDGE_CASES)
def test_boxes_touching_and_crossing_frame_edges(case):
    box, crop, src, dst = EDGE_CASES[case]
    assert square_crop_box(box, 100, 80, 1.0) == crop
    assert clip_to_frame(crop, 100, 80) == (src, dst)


def test_crop_wholly_outside_the_frame_is_empty():
    assert clip_to_frame((120, 10, 140, 30), 100, 80) == ((0, 0, 0, 0), (0, 0))
    assert clip_to_frame((-30, -30, -10, -10), 100, 80) == ((0, 0, 0, 0), (0, 0))


def test_crop_larger_than_the_frame_holds_the_whole_frame():
    assert clip_to_frame((-10, -20, 110, 100), 100, 80) == ((0, 0, 100, 80), (10, 20))


def test_clip_always_lands_inside_the_canvas():
    rng = random.Random(0)
    for _ in range(500):
        w, h = rng.randint(1, 50), rng.randint(1, 50)
        box = (rng.uniform(-0.5, 1.2), rng.uniform(-0.5, 1.2), rng.uniform(0, 1), rng.uniform(0, 1))
        crop = square_crop_box(box, w, h, rng.uniform(1, 2))
        side = crop[2] - crop[0]
        (sx0, sy0, sx1, sy1), (dx, dy) = clip_to_frame(crop, w, h)
        assert 0 <= sx0 <= sx1 <= w and 0 <= sy0 <= sy1 <= h
        assert dx >= 0 and dy >= 0
        assert dx + sx1 - sx0 <= side and dy + sy1 - sy0 <= side
        if sx1 > sx0:  # the source is where the canvas position maps back to in the frame
            assert (crop[0] + dx, crop[1] + dy) == (sx0, sy0)


@pytest.mark.parametrize(
    ("side", "image_size", "fitted", "pad"),
    [
        (50, (64, 64), (64, 64), (0, 0, 0, 0)),
        (500, (64, 64), (64, 64), (0, 0, 0, 0)),
        (30, (32, 48), (32, 32), (8, 8, 0, 0)),
        (30, (48, 32), (32, 32), (0, 0, 8, 8)),
        (7, (32, 49), (32, 32), (8, 9, 0, 0)),
    ],
)
def test_fit_and_pad_to_image_size(side, image_size, fitted, pad):
    assert fit_size(side, image_size) == fitted
    left, right, top, bottom = pad_offsets(fitted, image_size)
    assert (left, right, top, bottom) == pad
    assert (fitted[0] + top + bottom, fitted[1] + left + right) == image_size


def test_fit_and_pad_reject_bad_sizes():
    with pytest.raises(ValueError, match="image_size"):
        fit_size(10, (0, 5))
    with pytest.raises(ValueError, match="larger than image_size"):
        pad_offsets((10, 10), (8, 8))


def test_crop_scale_is_one_for_eval_and_seeded_uniform_for_training():
    assert crop_scale(123, train=False) == 1.0
    scales = [crop_scale(seed, train=True) for seed in range(200)]
    assert all(1.0 <= s < 2.0 for s in scales)
    assert scales == [crop_scale(seed, train=True) for seed in range(200)]
    assert min(scales) < 1.2 and max(scales) > 1.8


@pytest.mark.parametrize(
    ("levels", "scales"), [(1, [2.0]), (2, [2**0.5, 2.0]), (3, [2 ** (1 / 3), 2 ** (2 / 3), 2.0])]
)
def test_levels_split_the_scales_into_equal_ratios(levels, scales):
    got = level_scales(2.0, levels)
    assert got == pytest.approx(scales) and got[-1] == 2.0  # the last one exactly: no crop falls outside


def test_a_crop_reads_the_smallest_level_that_holds_it():
    scales = level_scales(2.0, 2)
    assert [level_of(s, scales) for s in (1.0, 1.4, 2**0.5, 1.42, 1.999, 2.0)] == [0, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="crop scale 2.1 exceeds the cache's largest scale 2.0"):
        level_of(2.1, scales)
    with pytest.raises(ValueError, match="levels >= 1"):
        level_scales(2.0, 0)
