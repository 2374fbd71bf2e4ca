import json

import pytest
import torch

from bench import zoo
from bench.data import caption
from bench.errors import BenchError
from bench.t2i import edit, generate, load_t2i_pipeline

CHARACTERS = "abcdefghijklmnopqrstuvwxyz"


def build_tiny_sd_pipeline(folder, safe_serialization=True):
    """A tiny pipeline in Stable Diffusion 1.5 layout, with a CLIP tokenizer built from a hand-written vocab."""
    from conftest import build_tiny_vae
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


@pytest.fixture(scope="module")
def tiny_sd_dir(tmp_path_factory):
    return build_tiny_sd_pipeline(tmp_path_factory.mktemp("tiny-sd"))


def test_a_local_sd_folder_generates_deterministically(tiny_sd_dir):
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    pipe = load_t2i_pipeline(str(tiny_sd_dir))
    assert isinstance(pipe, StableDiffusionPipeline) and isinstance(pipe.scheduler, DDIMScheduler)
    prompts = ["a bag", "a coat"]
    images = generate(pipe, prompts, steps=2, guidance=3.0, seed=0)
    assert images.shape == (2, 3, 16, 16)
    assert 0 <= images.min() and images.max() <= 1
    assert torch.equal(images, generate(pipe, prompts, steps=2, guidance=3.0, seed=0))
    assert not torch.equal(images, generate(pipe, prompts, steps=2, guidance=3.0, seed=1))


def test_a_local_sd_folder_edits_images_deterministically(tiny_sd_dir):
    from diffusers import StableDiffusionImg2ImgPipeline

    pipe = load_t2i_pipeline(str(tiny_sd_dir), kind="img2img")
    assert isinstance(pipe, StableDiffusionImg2ImgPipeline)
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    edited = edit(pipe, images, ["a bag", "a coat"], strength=0.5, steps=2, guidance=3.0, seed=0)
    assert edited.shape == (2, 3, 16, 16)
    assert 0 <= edited.min() and edited.max() <= 1
    assert torch.equal(edited, edit(pipe, images, ["a bag", "a coat"], strength=0.5, steps=2, guidance=3.0))
    with pytest.raises(BenchError, match="N prompts"):
        edit(pipe, images, ["a bag"], steps=2)


def test_pickled_weights_are_refused_unless_trusted(tmp_path):
    folder = build_tiny_sd_pipeline(tmp_path, safe_serialization=False)
    with pytest.raises(BenchError, match="only pickled weights"):
        load_t2i_pipeline(str(folder))
    assert load_t2i_pipeline(str(folder), trust_pickle=True).unet is not None


def test_an_absent_model_gives_one_line_naming_the_fix(tmp_path):
    with pytest.raises(BenchError, match="huggingface-cli download nobody/no-such-pipeline"):
        load_t2i_pipeline("nobody/no-such-pipeline")
    with pytest.raises(BenchError, match="model_index.json"):
        load_t2i_pipeline(str(tmp_path))
    with pytest.raises(BenchError, match="unknown pipeline kind"):
        load_t2i_pipeline(str(tmp_path), kind="inpaint")


@pytest.mark.skipif(not zoo.is_zoo_model("ldm-t2i"), reason="ldm-t2i weights not built")
def test_the_zoo_ldm_t2i_pipeline_generates_and_edits_32px_images():
    prompt = caption(8)
    images = generate(load_t2i_pipeline("ldm-t2i"), [prompt], steps=2, seed=0)
    assert images.shape == (1, 3, 32, 32) and 0 <= images.min() and images.max() <= 1
    edited = edit(load_t2i_pipeline("ldm-t2i", kind="img2img"), images, [prompt], strength=0.5, steps=2)
    assert edited.shape == (1, 3, 32, 32)
