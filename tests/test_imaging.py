"""Shared face-pasting helper used by training composites and benchmark bystanders."""

import numpy as np

from lifeveil.imaging import elliptical_alpha, paste_face


def test_alpha_is_one_inside_and_zero_in_the_corners():
    a = elliptical_alpha(21, 15, feather=0.2)
    assert a.shape == (21, 15)
    assert a[10, 7] == 1.0
    assert a[0, 0] == 0.0 and a[-1, -1] == 0.0


def test_paste_changes_only_a_box_of_the_drawn_height():
    scene = np.zeros((100, 120, 3), np.uint8)
    face = np.full((50, 40, 3), 200, np.uint8)
    out = paste_face(scene, face, np.random.default_rng(3), (0.3, 0.3), feather=0.2)
    rows, cols = np.nonzero(out.any(axis=2))
    assert rows.max() - rows.min() + 1 <= 30
    assert cols.max() - cols.min() + 1 <= 24
    assert out.max() == 200  # the centre is the face itself
    assert scene.max() == 0  # the input is not modified
    again = paste_face(scene, face, np.random.default_rng(3), (0.3, 0.3), feather=0.2)
    assert np.array_equal(out, again)
