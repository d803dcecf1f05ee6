import json

import pytest

from lifeveil.errors import CheckpointError
from lifeveil.privatizer import PrivatizerConfig


def test_roundtrip(tmp_path):
    cfg = PrivatizerConfig(z_dim=32, lam=0.01, clip_frames=4)
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"privatizer": cfg.to_dict()}))
    assert PrivatizerConfig.load(path) == cfg


@pytest.mark.parametrize(
    "change, message",
    [
        ({"utility_loss": "l1"}, "utility_loss"),
        ({"z_dim": 0}, "z_dim"),
        ({"deploy_mode": "max"}, "deploy_mode"),
        ({"frozen_blocks": 99}, "frozen_blocks"),
    ],
)
def test_invalid_values_are_refused(change, message):
    with pytest.raises(CheckpointError, match=message):
        PrivatizerConfig(**change)


def test_unknown_keys_and_newer_versions_are_refused(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"z_dim": 8, "colour": "red"}))
    with pytest.raises(CheckpointError, match="colour"):
        PrivatizerConfig.load(path)
    path.write_text(json.dumps({"version": 99}))
    with pytest.raises(CheckpointError, match="newer"):
        PrivatizerConfig.load(path)
    path.write_text("{not json")
    with pytest.raises(CheckpointError, match="not a valid JSON"):
        PrivatizerConfig.load(path)


def test_release_mode_is_one_vocabulary():
    from lifeveil.device.config import DeviceConfig
    from lifeveil.errors import InputError
    from lifeveil.privatizer.config import PrivatizerConfig
    from lifeveil.privatizer.release import ReleaseMode

    assert PrivatizerConfig(deploy_mode="mean").deploy_mode is ReleaseMode.MEAN
    assert DeviceConfig(release_mode="sample").release_mode is ReleaseMode.SAMPLE
    assert PrivatizerConfig(deploy_mode="mean").to_dict()["deploy_mode"] == "mean"
    with pytest.raises(InputError, match="release_mode must be one of mean, sample"):
        DeviceConfig(release_mode="median")
