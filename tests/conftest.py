import json
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


CHARACTERS = "abcdefghijklmnopqrstuvwxyz"


def build_tiny_sd_pipeline(folder, safe_serialization=True):
    """A tiny pipeline in Stable Diffusion 1.5 layout, with a CLIP tokenizer built from a hand-written vocab."""
    from diffusers import PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for character in CHARACTERS:
        vocab[character] = len(vocab)
        vocab[character + "</w>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=37,
                                                num_attention_heads=4, num_hidden_layers=2, bos_token_id=0,
                                                eos_token_id=1, pad_token_id=1, max_position_embeddings=77))
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                attention_head_dim=2, norm_num_groups=32)
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True,
                              steps_offset=1)
    pipe = StableDiffusionPipeline(vae=build_tiny_vae(), text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(folder / "pipeline", safe_serialization=safe_serialization)
    return folder / "pipeline"


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory):
    """A tiny Stable Diffusion 1.5-layout pipeline saved with save_pretrained."""
    return build_tiny_sd_pipeline(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="session")
def tiny_editor(tiny_sd_dir, tiny_defense):
    """The tiny pipeline's denoiser around the tiny VAE defense: what diffusion attacks target."""
    from bench.editing import EditConfig, Editor, shared_pipeline

    config = EditConfig(pipeline=str(tiny_sd_dir), steps=4)
    return Editor(tiny_defense, shared_pipeline(str(tiny_sd_dir), "cpu", torch.float32, False), config)


@pytest.fixture(scope="session")
def tiny_ddpm_dir(tmp_path_factory):
    """A tiny, seeded pixel DDPM in ddpm-pixel's layout (unet/ + scheduler/)."""
    from diffusers import DDIMScheduler, UNet2DModel

    from bench.zoo.train_ddpm import SCHEDULER_KWARGS

    folder = tmp_path_factory.mktemp("tiny-ddpm")
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=32, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(32, 32),
                       down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2, norm_num_groups=32)
    unet.save_pretrained(folder / "unet", safe_serialization=True)
    DDIMScheduler(**SCHEDULER_KWARGS, clip_sample=True).save_pretrained(folder / "scheduler")
    return folder


@pytest.fixture
def kill_after_saving(monkeypatch):
    """``kill_after_saving(n)``: from then on ``CellStore.save_batch`` raises KeyboardInterrupt (a kill
    between two batches) once n batches are saved; ``kill_after_saving(None)`` restores it."""
    from bench.store import CellStore

    original = CellStore.save_batch

    def arm(batches: int | None) -> None:
        if batches is None:
            monkeypatch.setattr(CellStore, "save_batch", original)
            return
        saved = []

        def dying(self, index, tensors):
            if len(saved) == batches:
                raise KeyboardInterrupt
            original(self, index, tensors)
            saved.append(index)

        monkeypatch.setattr(CellStore, "save_batch", dying)
    return arm


@pytest.fixture
def cells_by_scale():
    """``cells_by_scale(run_dir)``: every finished cell of a run as {(attack label, scale): (summary, samples)}."""
    import json

    import pandas as pd

    def read(run_dir):
        out = {}
        for folder in (run_dir / "cells").glob("*/"):
            summary = json.loads((folder / "summary.json").read_text())
            key = (summary["attack"], (summary["budget"] or {}).get("scale"))
            out[key] = (summary, pd.read_csv(folder / "samples.csv"))
        return out
    return read
