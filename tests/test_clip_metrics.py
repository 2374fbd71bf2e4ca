import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance

from bench.data import FASHION_MNIST_CLASSES, caption, load_fashion_mnist
from bench.errors import BenchError
from bench.metrics.clip_fd import ClipFD
from bench.metrics.clip_score import ClipScore
from bench.metrics.clip_sim import ClipSim
from bench.metrics.clip_w1 import ClipW1
from bench.metrics.fid import frechet_distance
from bench.metrics.zero_shot import ZeroShot
from bench.plugins import METRICS


class FlattenModel:
    """Stands in for an image-text model: an image's embedding is its pixel values."""

    def encode_image(self, images, normalize=True):
        return images.flatten(1)


class HandBuiltW1(ClipW1):
    clip_model = FlattenModel()


@pytest.fixture(scope="module")
def data():
    return load_fashion_mnist("test", 200)


def test_clip_w1_is_scipys_1d_wasserstein_over_coordinates():
    a = torch.tensor([0.0, 1.0, 3.0]).view(1, 3, 1, 1)
    b = torch.tensor([5.0, 1.0, 2.0]).view(1, 3, 1, 1)
    value = HandBuiltW1().per_sample(a, b)
    assert value.shape == (1,)
    assert value.item() == pytest.approx(wasserstein_distance([0, 1, 3], [5, 1, 2]))
    assert value.item() == pytest.approx(4 / 3)
    assert HandBuiltW1().per_sample(b, b[:, [2, 0, 1]]).item() == 0


def test_clip_w1_on_the_proxy_matches_scipy_and_is_zero_for_identical_images(data):
    metric = ClipW1().prepare(torch.device("cpu"))
    images, references = data.images[:4], data.images[4:8]
    embeddings, reference_embeddings = metric.embed(images).double(), metric.embed(references).double()
    expected = [wasserstein_distance(x.numpy(), y.numpy()) for x, y in zip(embeddings, reference_embeddings,
                                                                            strict=True)]
    assert np.allclose(metric.per_sample(images, references).numpy(), expected)
    assert np.allclose(metric.per_sample(images, images).numpy(), 0)


def test_clip_sim_of_an_image_with_itself_is_one(data):
    metric = ClipSim().prepare(torch.device("cpu"))
    same = metric.per_sample(data.images[:8], data.images[:8])
    assert torch.allclose(same, torch.ones(8), atol=1e-5)
    other = metric.per_sample(data.images[:8], data.images[8:16])
    assert (other < 1 - 1e-3).all()


def test_clip_fd_is_frechet_distance_of_embeddings_and_zero_for_identical_sets(data):
    metric = ClipFD().prepare(torch.device("cpu"))
    assert metric.feature_space == "clip:clip-proxy"
    features = metric.features(data.images)
    shifted = metric.features(data.images * 0.5)
    value = metric.from_features(features, shifted)
    assert value == pytest.approx(frechet_distance(features.double().numpy(), shifted.double().numpy()))
    assert metric.statistic(features.double().numpy(), shifted.double().numpy()) == pytest.approx(value)
    identical = metric.from_features(features, features.clone())
    assert abs(identical) < 1e-3 * value


def test_clip_score_is_in_range_and_prefers_the_right_caption(data):
    metric = ClipScore().prepare(torch.device("cpu"))
    right = metric.per_sample_text(data.images, data.captions)
    wrong = metric.per_sample_text(data.images, [caption((int(c) + 1) % 10) for c in data.labels])
    assert right.shape == (200,)
    assert ((right >= 0) & (right <= 100)).all() and ((wrong >= 0) & (wrong <= 100)).all()
    assert right.mean() > wrong.mean()
    with pytest.raises(BenchError, match="caption"):
        metric.per_sample_text(data.images[:2], ("", ""))


def test_zero_shot_metric_gives_per_sample_correctness(data):
    metric = ZeroShot().prepare(torch.device("cpu"))
    correct = metric.per_sample_labels(data.images, data.labels, FASHION_MNIST_CLASSES)
    assert set(correct.tolist()) <= {0.0, 1.0}
    assert correct.mean() >= 0.80
    with pytest.raises(BenchError, match="needs a label"):
        metric.per_sample_labels(data.images[:2], torch.tensor([-1, -1]), FASHION_MNIST_CLASSES)


@pytest.mark.parametrize("name,kind,higher", [("clip-score", "text", True), ("clip-sim", "paired", True),
                                              ("clip-w1", "paired", False), ("clip-fd", "set", False),
                                              ("zero-shot", "label", True)])
def test_registered_clip_metrics_take_a_model(name, kind, higher):
    cls = METRICS.get(name)
    assert (cls.name, cls.kind, cls.higher_is_better) == (name, kind, higher)
    assert cls.make_config({"model": "open_clip:ViT-B-32/laion2b_s34b_b79k"}).model.startswith("open_clip:")
    with pytest.raises(BenchError, match="did you mean 'model'"):
        cls.make_config({"modle": "clip-proxy"})
