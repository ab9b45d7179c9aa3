import pickle

import pytest
import torch

from salttune.checkpoint import build_from_checkpoint, load_checkpoint, save_checkpoint
from salttune.errors import SalttuneError
from salttune.model import build_model


def test_self_describing_round_trip(tmp_path):
    model = build_model(base_width=4, depth=2, block="se")
    path = save_checkpoint(tmp_path / "m.pt", {"model_args": model.config, "model": model.state_dict(), "epoch": 3, "metrics": {"val_score": 0.5}, "config": {}})
    rebuilt, ckpt = build_from_checkpoint(path)
    assert ckpt["epoch"] == 3 and ckpt["metrics"]["val_score"] == 0.5
    x = torch.rand(2, 1, 21, 21)
    model.eval()
    torch.testing.assert_close(rebuilt(x), model(x))
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary file was renamed away


def test_truncated_and_foreign_files(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", {"x": torch.zeros(1000)})
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(SalttuneError, match="truncated or corrupt"):
        load_checkpoint(path)
    torch.save({"x": 1}, tmp_path / "plain.pt")
    with pytest.raises(SalttuneError, match="not a salttune checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    (tmp_path / "evil.pt").write_bytes(pickle.dumps(print))  # arbitrary code must not be loaded
    with pytest.warns(UserWarning), pytest.raises(SalttuneError, match="arbitrary Python objects, which are not loaded"):
        load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(SalttuneError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")


def test_failed_write_keeps_previous(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "m.pt", {"v": 1})

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(SalttuneError, match="No space left on device"):
        save_checkpoint(path, {"v": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["v"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]
