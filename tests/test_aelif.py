"""AELIF (issue 12, items 3 and 5): the token-state augmentation as the reference code draws it, the
hook inside a diffusers pipeline (a tiny saved SD 1.5 layout), the fine-tune pair aelif / aelif-none
through the suite's fine-tune cache, and the reference's LoRA form of that fine-tune."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench import zoo
from bench.errors import BenchError
from defenses.aelif import (
    AELIF,
    AELIFFineTune,
    AELIFFineTuneConfig,
    aelif_augment,
    aelif_encode_prompt,
    augmented_positions,
    derived_generator,
)


def states(batch=3, length=10, features=4, seed=0):
    return torch.randn(batch, length, features, generator=torch.Generator().manual_seed(seed)) + 3


def reference_positions(length: int, p: float, seed: int) -> list[int]:
    """The reference's draw written out: a randperm of the inner positions, shifted past the first."""
    count = int((length - 2) * p)
    return [1 + i for i in torch.randperm(length - 2, generator=torch.Generator().manual_seed(seed))[:count].tolist()]


@pytest.mark.parametrize("length,p,expected", [(77, 0.1, 7), (16, 0.1, 1), (16, 0.5, 7), (16, 1.0, 14), (3, 0.9, 0)])
def test_the_count_is_int_of_inner_positions_times_p(length, p, expected):
    assert augmented_positions(length, p) == expected


def test_mask_zeroes_the_drawn_inner_positions_of_every_sample_alike():
    x = states(length=12)
    out = aelif_augment(x, "mask", 0.5, torch.Generator().manual_seed(3))
    positions = reference_positions(12, 0.5, 3)
    assert len(positions) == 5 and 0 not in positions and 11 not in positions
    zeroed = [i for i in range(12) if (out[:, i] == 0).all()]
    assert zeroed == sorted(positions)
    kept = [i for i in range(12) if i not in positions]
    assert torch.equal(out[:, kept], x[:, kept])
    assert not torch.equal(out, aelif_augment(x, "mask", 0.5, torch.Generator().manual_seed(4)))


def test_noise_conv_multiplies_the_drawn_positions_by_normal_noise_drawn_after_them():
    x = states(length=9, features=5)
    generator = torch.Generator().manual_seed(11)
    out = aelif_augment(x, "noise_conv", 0.5, generator, mean=2.0, std=0.5)
    replay = torch.Generator().manual_seed(11)
    positions = (torch.randperm(7, generator=replay)[:3] + 1)
    noise = torch.randn(3, 3, 5, generator=replay) * 0.5 + 2.0
    expected = x.clone()
    expected[:, positions] = x[:, positions] * noise
    assert torch.allclose(out, expected, rtol=0, atol=0)
    assert torch.equal(generator.get_state(), replay.get_state())


def test_nothing_to_change_draws_nothing_and_leaves_the_states():
    x = states()
    generator = torch.Generator().manual_seed(0)
    before = generator.get_state()
    for augmentation, p in (("mask", 0.0), ("noise_conv", 0.1), ("none", 1.0)):
        assert torch.equal(aelif_augment(x, augmentation, p, generator), x)  # (10 - 2) * 0.1 < 1
    assert torch.equal(generator.get_state(), before)


def test_bad_augmentation_inputs_are_refused():
    with pytest.raises(ValueError, match="mask, noise_conv, none"):
        aelif_augment(states(), "dropout", 0.1, torch.Generator())
    with pytest.raises(ValueError, match="batch, tokens, features"):
        aelif_augment(torch.zeros(4, 5), "mask", 0.1, torch.Generator())
    with pytest.raises(ValueError, match="at least 3"):
        aelif_augment(torch.zeros(1, 2, 4), "mask", 0.5, torch.Generator())
    for params, message in (({"augmentation": "maks"}, "mask, noise_conv, none"), ({"p": 1.5}, r"\[0, 1\]"),
                            ({"steps": 0}, "at least 1"), ({"std": -1.0}, "0 or more"),
                            ({"lora_rank": -1}, "lora_rank=-1")):
        with pytest.raises(BenchError, match=message):
            AELIF.make_config(params)


def test_the_derived_generator_reads_the_loop_generator_without_advancing_it():
    loop = torch.Generator().manual_seed(5)
    before = loop.get_state()
    first = torch.rand(3, generator=derived_generator(loop))
    assert torch.equal(loop.get_state(), before)
    assert torch.equal(first, torch.rand(3, generator=derived_generator(loop)))
    torch.rand(1, generator=loop)
    assert not torch.equal(first, torch.rand(3, generator=derived_generator(loop)))


def test_the_hook_augments_a_real_sd_pipelines_encode_prompt_and_is_removed_after(tiny_sd_dir):
    from bench.t2i import generate, load_t2i_pipeline

    pipe = load_t2i_pipeline(str(tiny_sd_dir))
    plain_states = pipe.encode_prompt(["a bag"], "cpu", 1, True)
    with aelif_encode_prompt(pipe, "mask", 0.5, torch.Generator().manual_seed(0)) as hooked:
        masked, negative = hooked.encode_prompt(["a bag"], "cpu", 1, True)
    assert masked.shape == plain_states[0].shape == (1, 77, 32)
    zeroed = [i for i in range(77) if (masked[0, i] == 0).all()]
    assert zeroed == sorted(reference_positions(77, 0.5, 0))  # the prompt's states first, then the negative's
    assert sum(bool((negative[0, i] == 0).all()) for i in range(77)) == 37
    assert "encode_prompt" not in vars(pipe)

    baseline = generate(pipe, ["a bag", "a coat"], steps=2, guidance=3.0, seed=0)
    with aelif_encode_prompt(pipe, "mask", 0.0, torch.Generator().manual_seed(0)):
        assert torch.equal(generate(pipe, ["a bag", "a coat"], steps=2, guidance=3.0, seed=0), baseline)
    with aelif_encode_prompt(pipe, "noise_conv", 1.0, torch.Generator().manual_seed(0), mean=0.0, std=5.0):
        assert not torch.equal(generate(pipe, ["a bag", "a coat"], steps=2, guidance=3.0, seed=0), baseline)
    assert torch.equal(generate(pipe, ["a bag", "a coat"], steps=2, guidance=3.0, seed=0), baseline)


def tiny_aelif(tiny_sd_dir, **overrides) -> AELIF:
    params = {"model": str(tiny_sd_dir), "autoencoder": "", "steps": 3, "batch_size": 4, "train_n": 8,
              "sample_steps": 2, "guidance": 3.0, "p": 0.5, **overrides}
    return AELIF(AELIF.make_config(params))


def unet_bytes(folder) -> bytes:
    return (folder / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()


def test_aelif_and_aelif_none_differ_only_by_the_augmentation(tmp_path, tiny_sd_dir):
    from bench.finetune import finetune

    def run(**overrides):
        recipe, data = tiny_aelif(tiny_sd_dir, **overrides).finetune_request()
        return finetune(tmp_path / "run", recipe, data, seed=0)

    none, mask, noise = run(augmentation="none"), run(augmentation="mask"), run(augmentation="noise_conv", std=3.0)
    nothing_masked = run(augmentation="mask", p=0.0)
    assert len({none, mask, noise, nothing_masked}) == 4  # four keys, four fine-tunes
    assert unet_bytes(nothing_masked) == unet_bytes(none)  # same loop draws: only the augmentation differs
    assert len({unet_bytes(none), unet_bytes(mask), unet_bytes(noise)}) == 3
    assert run(augmentation="mask") == mask  # cached, not retrained

    defense = tiny_aelif(tiny_sd_dir, augmentation="mask")
    model = defense.with_finetune(mask)
    images = model.generate(["a bag", "a coat"], seed=0)
    assert images.shape == (2, 3, 16, 16) and 0 <= images.min() and images.max() <= 1
    assert torch.equal(images, defense.with_finetune(mask).generate(["a bag", "a coat"], seed=0))
    base = defense.weights()  # what the fine-tune starts from; the key in finetune.json names the rest
    assert base and all(Path(path).is_file() and str(tiny_sd_dir) in path for path in base)
    with pytest.raises(BenchError, match="prompt-robustness"):
        tiny_aelif(tiny_sd_dir).generate(["a bag"], seed=0)


def test_the_recipe_augments_the_states_the_unet_sees(tiny_sd_dir):
    recipe = AELIFFineTune(AELIFFineTuneConfig(model=str(tiny_sd_dir), autoencoder="", augmentation="mask", p=1.0))
    x = states(length=6)
    loop = torch.Generator().manual_seed(0)
    out = recipe.augment_states(x, loop)
    assert (out[:, 1:5] == 0).all() and torch.equal(out[:, [0, 5]], x[:, [0, 5]])


@pytest.mark.skipif(not zoo.is_zoo_model("ldm-t2i-v2"), reason="ldm-t2i-v2 weights not built")
def test_the_hook_augments_the_embedded_pipelines_minilm_states():
    from bench.t2i import load_t2i_pipeline

    pipe = load_t2i_pipeline("ldm-t2i-v2")
    plain, _ = pipe.encode_prompt(["a photo of a bag"], "cpu", 1, False)
    with aelif_encode_prompt(pipe, "mask", 0.5, torch.Generator().manual_seed(1)):
        masked, negative = pipe.encode_prompt(["a photo of a bag"], "cpu", 1, False)
    assert masked.shape == plain.shape == (1, 16, 384) and negative is None
    positions = reference_positions(16, 0.5, 1)
    assert [i for i in range(16) if (masked[0, i] == 0).all()] == sorted(positions)
    kept = [i for i in range(16) if i not in positions]
    assert torch.equal(masked[:, kept], plain[:, kept])


def test_a_lora_finetune_trains_only_the_lora_and_loads_back_as_trained(tmp_path, tiny_sd_dir):
    """Issue 12, item 5: AELIF's fine-tune as the reference ran it, a LoRA on the UNet. Only the LoRA
    trains; the folder holds its safetensors file and no UNet; it loads back as the base pipeline with
    the LoRA fused, generating what the trained model generates, and names the LoRA file in its weights."""
    from diffusers import UNet2DConditionModel

    from bench.assets import sha256_file
    from bench.finetune import CPU, finetune, identity_config
    from bench.t2i import FINETUNED, LORA_WEIGHTS, generate, load_t2i_pipeline

    kept = []

    class Keeping(AELIFFineTune):
        def setup(self, data, device=CPU):
            kept.append(super().setup(data, device))
            return kept[-1]

    defense = tiny_aelif(tiny_sd_dir, lora_rank=4, learning_rate=1e-2)
    recipe, data = defense.finetune_request()
    assert recipe.config.lora_rank == 4
    assert "lora_rank" not in identity_config(tiny_aelif(tiny_sd_dir).recipe().config)  # full: keyed as before
    folder = finetune(tmp_path / "run", Keeping(recipe.config), data, seed=0)
    unet, optimizer = kept[0].model.eval(), kept[0].optimizer

    trained = {name: p for name, p in unet.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in name for name in trained)
    assert {id(p) for group in optimizer.param_groups for p in group["params"]} == {id(p) for p in trained.values()}
    assert any(p.abs().sum() > 0 for name, p in trained.items() if "lora_B" in name)  # B starts at 0: it trained
    base = UNet2DConditionModel.from_pretrained(tiny_sd_dir / "unet", use_safetensors=True).state_dict()
    frozen = {name.replace(".base_layer", ""): value for name, value in unet.state_dict().items() if "lora_" not in name}
    assert frozen.keys() == base.keys() and all(torch.equal(value, base[name]) for name, value in frozen.items())

    assert (folder / LORA_WEIGHTS).is_file() and not (folder / "unet").exists()
    assert json.loads((folder / FINETUNED).read_text())["lora_rank"] == 4
    loaded = load_t2i_pipeline(str(folder))
    assert not any("lora" in name for name in loaded.unet.state_dict())  # fused: a plain UNet

    def with_unet(model):  # the loaded pipeline with another UNet: only the UNet differs
        pipe = load_t2i_pipeline(str(folder))
        pipe.unet = model.eval()
        return generate(pipe, ["a bag", "a coat"], steps=2, guidance=3.0, seed=0)

    images = generate(loaded, ["a bag", "a coat"], steps=2, guidance=3.0, seed=0)
    assert torch.allclose(images, with_unet(unet), rtol=0, atol=1e-5)
    base_unet = UNet2DConditionModel.from_pretrained(tiny_sd_dir / "unet", use_safetensors=True)
    assert not torch.allclose(images, with_unet(base_unet), rtol=0, atol=1e-3)
    weights = defense.with_finetune(folder).weights()
    assert weights[str(folder / LORA_WEIGHTS)] == sha256_file(folder / LORA_WEIGHTS)
