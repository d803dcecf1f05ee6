import pytest

from lifeveil.data import (
    ORL_TRAIN_IDENTITIES,
    load_action_clips,
    load_image_folder,
    load_orl,
    load_sun8,
    sun8_split,
)
from lifeveil.errors import DatasetError


def test_sun8_split_is_fixed_stratified_and_disjoint(sun8_root):
    split = sun8_split(sun8_root)
    assert len(split["train"]) == 960 and len(split["test"]) == 640
    assert not set(split["train"]) & set(split["test"])
    assert split == sun8_split(sun8_root)
    assert split["train"][0] == "auditorium/sun_abmvbqiztxwusefc.jpg" or split["train"][
        0
    ].startswith("auditorium/")


def test_sun8_test_split_loads(sun8_root):
    data = load_sun8(sun8_root, "test")
    assert len(data) == 640 and len(data.classes) == 8
    assert max(data.images[0].shape[:2]) <= 256


def test_orl_identities(orl_root):
    train = load_orl(orl_root, ORL_TRAIN_IDENTITIES)
    assert len(train) == 100 and set(train.labels) == set(ORL_TRAIN_IDENTITIES)
    everyone = load_orl(orl_root)
    assert len(everyone) == 400 and len(everyone.classes) == 40


def test_action_clips(clips_root):
    clips = load_action_clips(clips_root)
    assert len(clips) == 23 and all(c.path.is_file() for c in clips)


def test_generic_folder_and_layout_errors(orl_root, tmp_path):
    data = load_image_folder(orl_root)
    assert len(data) == 400
    with pytest.raises(DatasetError, match="sX/Y.pgm"):
        load_orl(tmp_path)
    with pytest.raises(DatasetError, match="labels file missing"):
        load_sun8(tmp_path)
    with pytest.raises(DatasetError, match="no images"):
        load_image_folder(tmp_path)
    with pytest.raises(DatasetError, match="split"):
        load_sun8(tmp_path, "validation")
