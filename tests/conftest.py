import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    skip_slow = pytest.mark.skip(reason="slow: run with --runslow")
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


def build_tiny_vae(seed: int = 0):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16),
                         layers_per_block=1, latent_channels=4, norm_num_groups=8, sample_size=32)


@pytest.fixture(scope="session")
def tiny_vae_dir(tmp_path_factory):
    """A tiny, seeded diffusers AutoencoderKL saved with save_pretrained, as diffusers' own tests do."""
    folder = tmp_path_factory.mktemp("tiny-vae")
    build_tiny_vae().save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="session")
def tiny_defense(tiny_vae_dir):
    from defenses.vae import AutoencoderKLDefense

    return AutoencoderKLDefense(AutoencoderKLDefense.make_config({"model": str(tiny_vae_dir)}))


@pytest.fixture
def images():
    from bench.data import load_fashion_mnist

    return load_fashion_mnist("test", 4).images
