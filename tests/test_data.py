import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from bench.data import DataSpec, fashion_mnist_indices, load, load_fashion_mnist
from bench.errors import BenchError


def test_fashion_mnist_is_padded_rgb_in_unit_range():
    data = load_fashion_mnist("test", 10)
    assert data.images.shape == (10, 3, 32, 32)
    assert data.images.min() >= 0 and data.images.max() <= 1
    assert torch.equal(data.images[:, 0], data.images[:, 2])
    assert data.images[:, :, :2].abs().max() == 0
    assert data.captions[0].startswith("a photo of a ")
    assert torch.equal(load_fashion_mnist("test", 10).images, data.images)


def test_splits_are_fixed_and_disjoint():
    _, val = fashion_mnist_indices("val")
    _, train = fashion_mnist_indices("train")
    assert len(val) == 5000 and len(train) == 55000
    assert not set(val.tolist()) & set(train.tolist())


def test_missing_dataset_names_the_install_command(monkeypatch, tmp_path):
    from bench import data

    monkeypatch.setenv("BENCH_FASHION_MNIST", str(tmp_path))
    data._fashion_mnist_file.cache_clear()
    try:
        with pytest.raises(BenchError, match="apt-get install -y dataset-fashion-mnist"):
            load_fashion_mnist("test", 2)
    finally:
        data._fashion_mnist_file.cache_clear()


def test_folder_of_pngs_loads(tmp_path):
    for i in range(3):
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    data = load(DataSpec(dataset="folder", path=str(tmp_path), n=3))
    assert data.images.shape == (3, 3, 32, 32)


def test_folder_with_mixed_sizes_is_refused(tmp_path):
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "b.png")
    with pytest.raises(BenchError, match="differ in size"):
        load(DataSpec(dataset="folder", path=str(tmp_path), n=2))


def test_tensors_with_nan_are_refused(tmp_path):
    images = torch.rand(2, 3, 8, 8)
    images[0, 0, 0, 0] = float("nan")
    save_file({"images": images}, tmp_path / "x.safetensors")
    with pytest.raises(BenchError, match="NaN"):
        load(DataSpec(dataset="tensors", path=str(tmp_path / "x.safetensors"), n=2))


def test_tensors_of_wrong_shape_are_refused(tmp_path):
    save_file({"images": torch.rand(2, 8, 8)}, tmp_path / "x.safetensors")
    with pytest.raises(BenchError, match=r"\(N, 3, H, W\)"):
        load(DataSpec(dataset="tensors", path=str(tmp_path / "x.safetensors"), n=2))
