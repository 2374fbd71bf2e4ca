"""A grey 28x28 pixel DDPM (the ``ddpm`` recipe's layout) through the suite's 32x32 RGB image format."""

import pytest
import torch


@pytest.fixture(scope="module")
def grey_ddpm_dir(tmp_path_factory):
    from diffusers import DDIMScheduler

    from bench.zoo.train_ddpm import DDPM_CPU, SCHEDULER_KWARGS, build_unet

    folder = tmp_path_factory.mktemp("grey-ddpm")
    torch.manual_seed(0)
    build_unet(DDPM_CPU).save_pretrained(folder / "unet", safe_serialization=True)
    DDIMScheduler(**SCHEDULER_KWARGS, clip_sample=True).save_pretrained(folder / "scheduler")
    return folder


def test_the_model_sees_the_grey_centre_and_its_output_returns_inside_the_border():
    from types import SimpleNamespace

    from bench.zoo.train_ddpm import to_model_space, to_suite_images

    unet = SimpleNamespace(config=SimpleNamespace(sample_size=28, in_channels=1))
    images = torch.rand((2, 3, 32, 32))
    x = to_model_space(images, unet)
    assert x.shape == (2, 1, 28, 28)
    assert torch.allclose(x, images[:, :, 2:30, 2:30].mean(1, keepdim=True) * 2 - 1)
    back = to_suite_images((x + 1) / 2, like=images)
    assert torch.equal(back[..., :2, :], images[..., :2, :]) and torch.equal(back[..., :, 30:], images[..., :, 30:])
    assert torch.allclose(back[:, 1, 2:30, 2:30], images[:, :, 2:30, 2:30].mean(1))
    black = to_suite_images((x + 1) / 2)
    assert black.shape == (2, 3, 32, 32) and float(black[..., :2, :].abs().max()) == 0


def test_the_denoiser_samples_denoises_and_scores_in_the_suites_format(grey_ddpm_dir):
    from defenses.ddpm import DDPMConfig, PixelDDPM

    model = PixelDDPM(DDPMConfig(model=str(grey_ddpm_dir), steps=2))
    samples = model.sample(3, seed=0)
    assert samples.shape == (3, 3, 32, 32) and torch.equal(samples[:, 0], samples[:, 2])
    images = torch.rand((2, 3, 32, 32))
    denoised = model.denoise(images, 0.5, seed=0)
    assert denoised.shape == images.shape and torch.equal(denoised[..., 0, :], images[..., 0, :])
    assert model.training_loss(images, torch.Generator().manual_seed(0)).shape == (2,)
