import json

import pytest
import torch
from safetensors.torch import save_file

from bench.clip_model import load_image_text_model, zero_shot_correct
from bench.data import FASHION_MNIST_CLASSES, caption, load_fashion_mnist
from bench.errors import BenchError
from bench.zoo.clip_proxy import ImageTower, load_image_tower, save_image_tower

TINY_OPEN_CLIP = {"embed_dim": 16,
                  "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
                  "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


@pytest.fixture(scope="module")
def proxy():
    return load_image_text_model("clip-proxy")


def test_shipped_clip_proxy_classifies_test_images_zero_shot(proxy):
    data = load_fashion_mnist("test", 200)
    accuracy = zero_shot_correct(proxy, data.images, data.labels, FASHION_MNIST_CLASSES).mean()
    assert accuracy >= 0.80


def test_encoders_give_normalised_384d_embeddings(proxy):
    images = load_fashion_mnist("test", 4).images
    assert proxy.encode_image(images).shape == (4, 384)
    assert torch.allclose(proxy.encode_image(images).norm(dim=-1), torch.ones(4), atol=1e-5)
    assert not torch.allclose(proxy.encode_image(images, normalize=False).norm(dim=-1), torch.ones(4))
    texts = proxy.encode_text([caption(i) for i in range(10)])
    assert texts.shape == (10, 384)
    assert torch.allclose(texts.norm(dim=-1), torch.ones(10), atol=1e-5)
    assert 0 < float(proxy.logit_scale) <= torch.log(torch.tensor(100.0))


def test_encode_image_is_differentiable_and_resizes(proxy):
    images = load_fashion_mnist("test", 2).images.requires_grad_(True)
    proxy.encode_image(images).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert proxy.encode_image(torch.rand(2, 3, 64, 64)).shape == (2, 384)


def test_image_tower_round_trips_through_safetensors(tmp_path):
    torch.manual_seed(0)
    tower = ImageTower((8, 16), 384).eval()
    tower.logit_scale.data.fill_(3.0)
    save_image_tower(tower, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_image_tower(tmp_path)
    images = torch.rand(3, 3, 32, 32)
    assert torch.equal(loaded(images), tower(images))
    assert float(loaded.logit_scale) == 3.0


def test_unknown_or_non_clip_models_are_refused():
    for name in ("clip-proxyy", "vae-kl", "open_clip:ViT-B-32"):
        with pytest.raises(BenchError, match="open_clip:MODEL_NAME/PRETRAINED"):
            load_image_text_model(name)


@pytest.fixture(scope="module")
def tiny_open_clip(tmp_path_factory):
    """A tiny open_clip ViT/text transformer from a custom config, saved as safetensors and as a pickle."""
    import open_clip

    folder = tmp_path_factory.mktemp("tiny-open-clip")
    (folder / "bench-tiny-clip.json").write_text(json.dumps(TINY_OPEN_CLIP))
    open_clip.add_model_config(folder / "bench-tiny-clip.json")
    torch.manual_seed(0)
    model = open_clip.create_model("bench-tiny-clip")
    model.logit_scale.data.fill_(1.5)
    state = {key: value.contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(folder / "tiny.safetensors"))
    torch.save(state, folder / "tiny.pt")
    return folder, state


def test_open_clip_adapter_loads_a_safetensors_checkpoint(tiny_open_clip):
    folder, state = tiny_open_clip
    adapter = load_image_text_model(f"open_clip:bench-tiny-clip/{folder / 'tiny.safetensors'}")
    loaded = adapter.model.state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in state.items())
    assert float(adapter.logit_scale) == 1.5
    images = torch.rand(3, 3, 28, 28)
    embeddings = adapter.encode_image(images)
    assert embeddings.shape == (3, 16)
    assert torch.allclose(embeddings.norm(dim=-1), torch.ones(3), atol=1e-5)
    resized = torch.nn.functional.interpolate(images, size=(32, 32), mode="bicubic", antialias=True).clamp(0, 1)
    expected = adapter.model.encode_image((resized - adapter.mean) / adapter.std, normalize=True)
    assert torch.allclose(embeddings, expected, atol=1e-6)
    texts = adapter.encode_text(["a photo of a bag", "a photo of a sandal"])
    assert texts.shape == (2, 16)
    assert torch.allclose(texts.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert not torch.allclose(texts[0], texts[1])


def test_pickled_checkpoint_is_refused_unless_trusted(tiny_open_clip):
    folder, state = tiny_open_clip
    with pytest.raises(BenchError, match="pickled checkpoint.*trust_pickle=True"):
        load_image_text_model(f"open_clip:bench-tiny-clip/{folder / 'tiny.pt'}")
    trusted = load_image_text_model(f"open_clip:bench-tiny-clip/{folder / 'tiny.pt'}", trust_pickle=True)
    assert torch.equal(trusted.model.state_dict()["logit_scale"], state["logit_scale"])


def test_missing_open_clip_weights_fail_with_one_line_naming_the_fix(tiny_open_clip, tmp_path):
    with pytest.raises(BenchError, match="does not exist") as missing:
        load_image_text_model(f"open_clip:bench-tiny-clip/{tmp_path / 'absent.safetensors'}")
    with pytest.raises(BenchError, match="local checkpoint") as untagged:
        load_image_text_model("open_clip:bench-tiny-clip/no-such-tag")
    with pytest.raises(BenchError, match="open_clip knows no model"):
        load_image_text_model("open_clip:no-such-model/laion2b_s34b_b79k")
    assert "\n" not in str(missing.value) and "\n" not in str(untagged.value)
