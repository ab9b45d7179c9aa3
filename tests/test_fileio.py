import errno
import json

import pytest

from salttune.errors import SalttuneError
from salttune.fileio import atomic_path, atomic_write_text, write_json


def test_write_json_round_trip_and_no_temporary_left(tmp_path):
    p = write_json(tmp_path / "a.json", {"x": 1, "p": tmp_path})
    assert json.loads(p.read_text()) == {"x": 1, "p": str(tmp_path)}
    assert [f.name for f in tmp_path.iterdir()] == ["a.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = atomic_write_text(tmp_path / "t.txt", "old")
    with pytest.raises(ZeroDivisionError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            1 / 0
    assert target.read_text() == "old" and [f.name for f in tmp_path.iterdir()] == ["t.txt"]


def test_an_os_error_is_one_line_naming_the_file(tmp_path):
    target = tmp_path / "t.txt"
    with pytest.raises(SalttuneError, match=r"t\.txt: cannot write summary .*free disk space"):
        with atomic_path(target, "summary") as tmp:
            tmp.write_text("x")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert not target.exists() and not list(tmp_path.iterdir())


def test_missing_folder(tmp_path):
    with pytest.raises(SalttuneError, match="nope does not exist; create it"):
        atomic_write_text(tmp_path / "nope" / "t.txt", "x")
    with atomic_path(tmp_path / "made" / "t.txt", mkdir=True) as tmp:
        tmp.write_text("y")
    assert (tmp_path / "made" / "t.txt").read_text() == "y"
