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


def test_publish_folder_swaps_in_a_finished_folder_and_keeps_the_old_one_on_failure(tmp_path):
    from bench.zoo.training import publish_folder

    model = tmp_path / "zoo" / "model"
    publish_folder(model, lambda folder: (folder / "weights.safetensors").write_text("first"))
    assert (model / "weights.safetensors").read_text() == "first"

    def failing(folder):
        (folder / "weights.safetensors").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        publish_folder(model, failing)
    assert (model / "weights.safetensors").read_text() == "first"
    assert sorted(p.name for p in model.parent.iterdir()) == ["model"]

    publish_folder(model, lambda folder: (folder / "other.json").write_text("{}"))
    assert sorted(p.name for p in model.iterdir()) == ["other.json"]
    assert sorted(p.name for p in model.parent.iterdir()) == ["model"]
