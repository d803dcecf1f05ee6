"""Private files and folders: 0600 / 0700 whatever the umask and whether or not they existed."""

import os
import stat

from lifeveil.io import atomic_path, private_dir, private_file, write_json


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_private_dir_tightens_an_existing_folder(tmp_path):
    d = tmp_path / "data"
    d.mkdir(mode=0o755)
    d.chmod(0o755)
    assert private_dir(d) == d
    assert _mode(d) == 0o700
    assert _mode(private_dir(tmp_path / "a" / "b")) == 0o700


def test_private_file_creates_or_tightens(tmp_path):
    new = private_file(tmp_path / "new.sqlite")
    assert new.stat().st_size == 0 and _mode(new) == 0o600
    old = tmp_path / "old.sqlite"
    old.write_bytes(b"keep")
    old.chmod(0o644)
    private_file(old)
    assert old.read_bytes() == b"keep" and _mode(old) == 0o600


def test_atomic_writes_private_or_public(tmp_path):
    write_json(tmp_path / "secret.json", {"a": 1}, private=True)
    assert _mode(tmp_path / "secret.json") == 0o600
    with atomic_path(tmp_path / "public.bin") as tmp:
        tmp.write_bytes(b"x")
    umask = os.umask(0o022)
    os.umask(umask)
    assert _mode(tmp_path / "public.bin") == 0o666 & ~umask
