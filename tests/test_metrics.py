import os

import numpy as np
import pytest
import torch
from scipy import linalg

from bench.metrics.fid import FID, frechet_distance
from bench.metrics.kid import KID
from bench.metrics.lpips import lpips_distance, lpips_distance_to, lpips_features, lpips_network
from bench.metrics.psnr import PSNR
from bench.metrics.ssim import SSIM


def scipy_frechet(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    sigma_a, sigma_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(sigma_a @ sigma_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sigma_a) + np.trace(sigma_b) - 2 * np.trace(covmean))


def test_fid_equals_a_direct_frechet_computation():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 64))
    b = rng.normal(0.3, 1.2, size=(50, 64))
    direct = scipy_frechet(a, b)
    assert FID().from_features(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(direct, rel=1e-6)
    assert frechet_distance(a, b) == pytest.approx(direct, rel=1e-6)
    assert FID.torchmetrics_value(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(direct, rel=1e-6)


@pytest.mark.parametrize("sizes", [(8, 100), (100, 8), (70, 90)])
def test_the_low_rank_fid_equals_torchmetrics_on_either_side_of_the_dimension(sizes):
    rng = np.random.default_rng(1)
    a = torch.from_numpy(rng.normal(size=(sizes[0], 64)))
    b = torch.from_numpy(rng.normal(0.2, 0.9, size=(sizes[1], 64)))
    assert FID().from_features(a, b) == pytest.approx(FID.torchmetrics_value(a, b), rel=1e-6)


def test_fid_on_real_inception_features_matches_scipy(images):
    fid = FID()
    rng = torch.Generator().manual_seed(0)
    noisy = (images + 0.2 * torch.rand(images.shape, generator=rng)).clamp(0, 1)
    a, b = fid.features(images).numpy(), fid.features(noisy).numpy()
    assert a.shape == (4, 2048)
    direct = scipy_frechet(a, b)
    assert fid.from_features(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(direct, rel=1e-4)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(0)
    same = KID.statistic(rng.normal(size=(60, 32)), rng.normal(size=(60, 32)))
    shifted = KID.statistic(rng.normal(size=(60, 32)), rng.normal(1.0, 1.0, size=(60, 32)))
    assert abs(same) < 0.05 < shifted


def test_lpips_equals_the_lpips_package_with_its_own_heads():
    import lpips

    torch.manual_seed(0)
    a = torch.rand(3, 3, 32, 32)
    b = (a + 0.1 * torch.randn_like(a)).clamp(0, 1)
    reference = lpips.LPIPS(pretrained=False, net="alex", pnet_rand=True, verbose=False)
    heads_path = os.path.join(os.path.dirname(lpips.__file__), "weights/v0.1/alex.pth")
    heads = torch.load(heads_path, weights_only=True, map_location="cpu")
    backbone = {k: v for k, v in lpips_network("alex").state_dict().items() if k.startswith("net.")}
    reference.load_state_dict({**backbone, **heads}, strict=False)
    expected = reference.eval()(a, b, normalize=True).flatten()
    assert torch.allclose(lpips_distance(a, b), expected, atol=1e-6)
    assert lpips_distance(a, a).abs().max() < 1e-6


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_to_cached_reference_features_equals_lpips_with_its_gradient(net):
    torch.manual_seed(0)
    clean = torch.rand(3, 3, 32, 32)
    images = (clean + 0.1 * torch.randn_like(clean)).clamp(0, 1).requires_grad_(True)
    expected = lpips_distance(images, clean, net)
    (expected_grad,) = torch.autograd.grad(expected.sum(), images)
    with torch.no_grad():
        features = lpips_features(clean, net)
    cached = lpips_distance_to(images, features, net)
    (cached_grad,) = torch.autograd.grad(cached.sum(), images)
    assert cached.shape == expected.shape == (3,)
    assert torch.allclose(cached, expected, rtol=1e-6, atol=1e-9)
    assert torch.allclose(cached_grad, expected_grad, rtol=1e-5, atol=1e-9)


def test_lpips_backbone_is_the_real_imagenet_network():
    """A random AlexNet gives LPIPS on a different scale; the real one has known first-layer stats."""
    weight = lpips_network("alex").state_dict()["net.slice1.0.weight"]
    assert weight.shape == (64, 3, 11, 11)
    assert weight.abs().mean().item() == pytest.approx(0.0776, abs=0.001)  # random init: ~0.026


def test_psnr_and_ssim_per_sample():
    torch.manual_seed(0)
    a = torch.rand(2, 3, 32, 32)
    b = a.clone()
    b[1] = (b[1] + 0.05).clamp(0, 1)
    psnr, ssim = PSNR().per_sample(b, a), SSIM().per_sample(b, a)
    assert psnr.shape == ssim.shape == (2,)
    assert torch.isinf(psnr[0]) and 20 < psnr[1] < 40
    assert ssim[0] == pytest.approx(1.0) and ssim[1] < 1
