"""The corrupted training set (``bench.corrupted_data``): share, noise, seeding, hash, bad input."""

import pytest
import torch

from bench.corrupted_data import CorruptionConfig, corrupt
from bench.errors import BenchError


def grey_images(n=200):
    grey = torch.rand((n, 1, 32, 32), generator=torch.Generator().manual_seed(0))
    return grey.expand(-1, 3, -1, -1).contiguous()


def test_the_share_of_corrupted_images_and_their_noise_std_are_as_asked():
    images = grey_images()
    data = corrupt(images, CorruptionConfig(percent=90, sigma=0.05, seed=3))
    assert int(data.corrupted.sum()) == 180
    difference = data.images - images
    assert torch.equal(difference[~data.corrupted], torch.zeros_like(difference[~data.corrupted]))
    assert abs(float(difference[data.corrupted].std()) - 0.05) < 0.002
    assert torch.equal(data.images[:, 0], data.images[:, 2])
    assert float(data.images.max()) > 1 and float(data.images.min()) < 0


def test_the_same_seed_gives_the_same_set_and_hash_and_another_seed_another():
    images = grey_images()
    first, again = (corrupt(images, CorruptionConfig(90, 0.1, seed=1)) for _ in range(2))
    other = corrupt(images, CorruptionConfig(90, 0.1, seed=2))
    assert torch.equal(first.images, again.images) and first.sha256 == again.sha256
    assert other.sha256 != first.sha256 and not torch.equal(other.corrupted, first.corrupted)
    assert corrupt(images, CorruptionConfig(90, 0.2, seed=1)).sha256 != first.sha256


def test_no_corruption_leaves_the_images_and_hashes_them():
    images = grey_images()
    data = corrupt(images, CorruptionConfig())
    assert data.images is images and not data.corrupted.any()
    assert data.describe()["sha256"] == data.sha256 and len(data.sha256) == 64


@pytest.mark.parametrize(("percent", "sigma", "message"), [
    (-1, 0.1, r"percent=-1 must lie in \[0, 100\]"),
    (100.5, 0.1, r"percent=100.5 must lie in \[0, 100\]"),
    (90, -0.1, "sigma=-0.1 must be a finite std >= 0"),
    (90, float("nan"), "sigma=nan must be a finite std >= 0"),
])
def test_bad_percent_or_sigma_is_refused(percent, sigma, message):
    with pytest.raises(BenchError, match=message):
        CorruptionConfig(percent=percent, sigma=sigma)
