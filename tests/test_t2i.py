import pytest
import torch
from conftest import build_tiny_sd_pipeline

from bench import zoo
from bench.data import caption
from bench.errors import BenchError
from bench.t2i import edit, generate, load_t2i_pipeline


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


def test_a_finetune_folder_holding_the_base_unet_generates_what_the_base_generates(tmp_path, tiny_sd_dir):
    """Base and fine-tuned pipelines sample alike, so a fine-tune's effect is its UNet's alone. The tiny
    base has a PNDM scheduler, converted to DDIM on load: its clipping must match what the folder's
    saved DDIM scheduler gets from the pipeline constructor (no clipping)."""
    import json
    import shutil

    from bench.t2i import FINETUNED

    base = load_t2i_pipeline(str(tiny_sd_dir))
    folder = tmp_path / "finetune"
    shutil.copytree(tiny_sd_dir / "unet", folder / "unet")
    base.scheduler.save_pretrained(folder / "scheduler")
    (folder / FINETUNED).write_text(json.dumps({"base": str(tiny_sd_dir), "autoencoder": ""}))
    prompts = ["a bag", "a coat"]
    assert torch.equal(generate(load_t2i_pipeline(str(folder)), prompts, steps=2, guidance=3.0, seed=0),
                       generate(base, prompts, steps=2, guidance=3.0, seed=0))


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
