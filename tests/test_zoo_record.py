import json

import pytest

from bench import zoo
from bench.errors import BenchError


def test_record_hashes_files_in_subfolders_and_loading_checks_them(monkeypatch, tmp_path):
    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path)
    monkeypatch.setattr(zoo, "MANIFEST", tmp_path / "manifest.json")
    folder = tmp_path / "weights" / "model"
    (folder / "unet").mkdir(parents=True)
    (folder / "unet" / "weights.safetensors").write_bytes(b"unet")
    (folder / "config.json").write_text("{}")
    zoo.record("model", folder, {"class": "test"})
    entry = json.loads((tmp_path / "manifest.json").read_text())["model"]
    assert set(entry["files"]) == {"config.json", "unet/weights.safetensors"}
    assert zoo.model_dir("model") == folder
    (folder / "unet" / "weights.safetensors").write_bytes(b"changed")
    with pytest.raises(BenchError, match="sha256"):
        zoo.model_dir("model")
