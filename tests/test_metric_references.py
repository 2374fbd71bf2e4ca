"""Every metric pinned to an independent computation on fixed inputs, to 1e-4 relative: PSNR by its
formula, SSIM by scikit-image, LPIPS by the ``lpips`` package's own forward, FID by scipy's sqrtm,
the FID Inception's features by stored reference values, KID by the unbiased MMD^2 formula, and the
CLIP metrics by numpy / scipy on the model's raw embeddings."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import linalg

from bench.data import FASHION_MNIST_CLASSES, caption, load_fashion_mnist
from bench.metrics.clip_fd import ClipFD
from bench.metrics.clip_score import ClipScore
from bench.metrics.clip_sim import ClipSim
from bench.metrics.clip_w1 import ClipW1
from bench.metrics.fid import FID
from bench.metrics.inception import inception_features
from bench.metrics.kid import KID
from bench.metrics.lpips import LPIPS, lpips_network
from bench.metrics.psnr import PSNR
from bench.metrics.ssim import SSIM
from bench.metrics.zero_shot import ZeroShot

REL = 1e-4
INCEPTION_REFERENCE = Path(__file__).parent / "data" / "inception_reference.json"


def fixed_pair(n=4, size=32, noise=0.08, seed=0):
    """Fashion-MNIST test images and a seeded noisy copy: fixed, realistic inputs."""
    images = load_fashion_mnist("test", n).images.double()
    rng = np.random.default_rng(seed)
    noisy = (images + torch.from_numpy(rng.normal(0, noise, images.shape))).clamp(0, 1)
    return noisy, images


def test_psnr_is_its_formula():
    images, references = fixed_pair()
    mse = ((images - references) ** 2).mean(dim=(1, 2, 3)).numpy()
    expected = 10 * np.log10(1.0 / mse)
    measured = PSNR().per_sample(images.float(), references.float()).double().numpy()
    np.testing.assert_allclose(measured, expected, rtol=REL)


def test_ssim_is_scikit_images():
    from skimage.metrics import structural_similarity

    images, references = fixed_pair()
    # Wang et al. 2004 as torchmetrics computes it: Gaussian window sigma 1.5 (11 wide), K1 0.01,
    # K2 0.03, population covariance, the map averaged over the WHOLE image, its borders filtered
    # over a mirror padding (numpy/torch "reflect"). skimage always crops the 5-pixel border (as
    # Wang's MATLAB code does), so it is handed the mirror-padded images and its full map is cropped
    # back to the original pixels: the same numbers, computed by skimage.
    pad = 5
    expected = []
    for a, b in zip(images.numpy(), references.numpy(), strict=True):
        padded = [np.pad(x, ((0, 0), (pad, pad), (pad, pad)), mode="reflect") for x in (a, b)]
        _, full = structural_similarity(*padded, data_range=1.0, channel_axis=0, gaussian_weights=True, sigma=1.5,
                                        use_sample_covariance=False, K1=0.01, K2=0.03, full=True)
        expected.append(full[:, pad:-pad, pad:-pad].mean())
    measured = SSIM().per_sample(images.float(), references.float()).double().numpy()
    np.testing.assert_allclose(measured, expected, rtol=REL)


def test_lpips_is_the_lpips_packages_forward_on_the_same_weights():
    import lpips

    images, references = fixed_pair()
    images, references = images.float(), references.float()
    reference = lpips.LPIPS(pretrained=False, net="alex", pnet_rand=True, verbose=False)
    # the package's own linear heads, our converted backbone: the heads we load must equal its heads too
    heads = torch.load(os.path.join(os.path.dirname(lpips.__file__), "weights/v0.1/alex.pth"), weights_only=True,
                       map_location="cpu")
    ours = lpips_network("alex").state_dict()
    for key, value in heads.items():
        assert torch.equal(ours[key], value), key
    backbone = {k: v for k, v in ours.items() if k.startswith("net.")}
    reference.load_state_dict({**backbone, **heads}, strict=False)
    with torch.no_grad():
        expected = reference.eval()(images * 2 - 1, references * 2 - 1).flatten().double().numpy()
    measured = LPIPS().per_sample(images, references).double().numpy()
    assert (expected > 1e-3).all()
    np.testing.assert_allclose(measured, expected, rtol=REL)


def scipy_frechet(a, b):
    mu_a, mu_b = a.mean(0), b.mean(0)
    sigma_a, sigma_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(sigma_a @ sigma_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sigma_a) + np.trace(sigma_b) - 2 * np.trace(covmean))


@pytest.fixture(scope="module")
def inception_pair():
    images, references = fixed_pair(n=12)
    return inception_features(images.float()).numpy(), inception_features(references.float()).numpy()


def test_fid_is_the_frechet_formula_with_scipy_sqrtm(inception_pair):
    a, b = inception_pair
    expected = scipy_frechet(a, b)
    fid = FID()
    assert fid.from_features(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(expected, rel=REL)
    assert fid.statistic(a, b) == pytest.approx(expected, rel=REL)
    rng = np.random.default_rng(0)  # more samples than dimensions too: full-rank covariances
    x, y = rng.normal(size=(80, 16)), rng.normal(0.2, 1.1, size=(70, 16))
    assert fid.from_features(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(scipy_frechet(x, y), rel=REL)
    assert fid.statistic(x, y) == pytest.approx(scipy_frechet(x, y), rel=REL)


def test_inception_features_of_a_fixed_image_match_the_stored_reference():
    reference = json.loads(INCEPTION_REFERENCE.read_text())
    image = load_fashion_mnist("test", 1).images
    features = inception_features(image)[0].numpy()
    np.testing.assert_allclose(features[:16], reference["first_16"], rtol=REL, atol=1e-6)
    assert np.linalg.norm(features) == pytest.approx(reference["norm"], rel=REL)
    assert features.sum() == pytest.approx(reference["sum"], rel=REL)


def unbiased_kid(x, y):
    """Bińkowski et al. 2018: unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3."""
    d = x.shape[1]
    kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
    m, n = len(x), len(y)
    return ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
            - 2 * kxy.sum() / (m * n))


def test_kid_is_the_unbiased_mmd_formula(inception_pair):
    a, b = inception_pair
    kid = KID()
    expected = unbiased_kid(a, b)
    assert kid.from_features(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(expected, rel=REL)
    assert kid.statistic(a, b) == pytest.approx(expected, rel=REL)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 8)), rng.normal(0.5, 1.0, size=(40, 8))
    assert kid.statistic(x, y) == pytest.approx(unbiased_kid(x, y), rel=REL)


@pytest.fixture(scope="module")
def clip_inputs():
    data = load_fashion_mnist("test", 24)
    images, references = fixed_pair(n=24, noise=0.15)
    metric = ClipSim().prepare(torch.device("cpu"))
    model = metric.clip_model
    with torch.no_grad():
        raw = model.encode_image(images.float(), normalize=False).double().numpy()
        raw_references = model.encode_image(references.float(), normalize=False).double().numpy()
    return data, images.float(), references.float(), model, raw, raw_references


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_clip_sim_is_the_cosine_of_raw_embeddings(clip_inputs):
    _, images, references, _, raw, raw_references = clip_inputs
    expected = (unit(raw) * unit(raw_references)).sum(-1)
    np.testing.assert_allclose(ClipSim().per_sample(images, references).double().numpy(), expected, rtol=REL)


def test_clip_w1_is_the_mean_gap_of_sorted_coordinates(clip_inputs):
    _, images, references, _, raw, raw_references = clip_inputs
    # 1-D W1 between two equal-size empirical distributions: mean |sorted a - sorted b|
    expected = np.abs(np.sort(unit(raw), axis=1) - np.sort(unit(raw_references), axis=1)).mean(1)
    np.testing.assert_allclose(ClipW1().per_sample(images, references).double().numpy(), expected, rtol=REL)


def test_clip_fd_is_the_frechet_formula_on_normalised_embeddings(clip_inputs):
    _, images, references, _, raw, raw_references = clip_inputs
    metric = ClipFD()
    value = metric.from_features(metric.features(images), metric.features(references))
    assert value == pytest.approx(scipy_frechet(unit(raw), unit(raw_references)), rel=REL)


def test_clip_score_is_100_times_the_clamped_cosine_with_the_caption(clip_inputs):
    data, images, _, model, raw, _ = clip_inputs
    wrong = [caption((int(c) + 3) % 10) for c in data.labels]
    for captions in (list(data.captions), wrong):
        with torch.no_grad():
            text = model.encode_text(captions, normalize=False).double().numpy()
        expected = 100 * np.maximum((unit(raw) * unit(text)).sum(-1), 0)
        np.testing.assert_allclose(ClipScore().per_sample_text(images, captions).double().numpy(), expected,
                                   rtol=REL, atol=1e-6)


def test_zero_shot_is_the_argmax_of_cosines_with_the_class_prompts(clip_inputs):
    data, images, _, model, raw, _ = clip_inputs
    with torch.no_grad():
        text = model.encode_text([f"a photo of a {c}" for c in FASHION_MNIST_CLASSES], normalize=False)
    predicted = (unit(raw) @ unit(text.double().numpy()).T).argmax(1)
    expected = (predicted == data.labels.numpy()).astype(float)
    measured = ZeroShot().per_sample_labels(images, data.labels, FASHION_MNIST_CLASSES).numpy()
    np.testing.assert_array_equal(measured, expected)
    assert 0 < expected.mean() < 1  # the labels matter: some right, some wrong on these noisy images
