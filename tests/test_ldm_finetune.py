"""The text-to-image fine-tune (poisoning, AELIF): it trains the UNet through the suite's cached loop,
the folder it writes loads as a pipeline that generates deterministically, the autoencoder it names
is the one that encodes the training images, and its token-state hook sees every batch; a LoRA
fine-tune (``lora_rank``) keys apart from it, while a full one keys as it did before LoRA existed."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from bench.errors import BenchError
from bench.finetune import finetune, finetune_identity, finetune_key
from bench.ldm_finetune import LDMFineTune, LDMFineTuneConfig
from bench.t2i import FINETUNED, LORA_WEIGHTS, generate, is_finetuned_folder, load_t2i_pipeline


def pairs(count: int = 4, size: int = 16) -> dict:
    generator = torch.Generator().manual_seed(0)
    return {"images": torch.rand(count, 3, size, size, generator=generator),
            "captions": ["abc", "bcd"] * (count // 2)}


def unet_bytes(folder) -> bytes:
    return (folder / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, tiny_sd_dir):
    config = LDMFineTuneConfig(model=str(tiny_sd_dir), autoencoder="", steps=3, batch_size=2, learning_rate=1e-2,
                               checkpoint_every=0)
    return finetune(tmp_path_factory.mktemp("run"), LDMFineTune(config), pairs(), seed=3)


def test_the_finetuned_folder_loads_and_generates_deterministically(finetuned, tiny_sd_dir):
    assert is_finetuned_folder(str(finetuned))
    assert json.loads((finetuned / FINETUNED).read_text())["base"] == str(tiny_sd_dir)
    assert unet_bytes(finetuned) != unet_bytes(tiny_sd_dir)
    pipe = load_t2i_pipeline(str(finetuned))
    first, second = (generate(pipe, ["abc"], steps=2, seed=5) for _ in range(2))
    assert first.shape == (1, 3, 16, 16) and torch.equal(first, second)
    base = generate(load_t2i_pipeline(str(tiny_sd_dir)), ["abc"], steps=2, seed=5)
    assert not torch.allclose(first, base)


def test_a_finetuned_folder_loads_only_its_own_unet(finetuned, monkeypatch):
    """The base's UNet is never loaded to be thrown away: ``from_pretrained`` is handed the fine-tuned one."""
    from diffusers import UNet2DConditionModel

    loaded = []
    original = UNet2DConditionModel.from_pretrained.__func__
    monkeypatch.setattr(UNet2DConditionModel, "from_pretrained",
                        classmethod(lambda cls, *args, **kwargs: loaded.append(args) or original(cls, *args, **kwargs)))
    pipe = load_t2i_pipeline(str(finetuned))
    assert loaded == [(finetuned / "unet",)]
    trained = load_file(finetuned / "unet" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(value, trained[name]) for name, value in pipe.unet.state_dict().items())


def test_the_loss_curve_is_recorded_and_finite(finetuned):
    record = json.loads((finetuned.parent / "finetune.json").read_text())
    assert record["recipe"] == "ldm" and record["loss_curve"]
    assert all(torch.isfinite(torch.tensor(row[1:])).all() for row in record["loss_curve"])


def test_the_named_autoencoder_trains_and_decodes(tmp_path, tiny_sd_dir):
    from conftest import build_tiny_vae

    other = tmp_path / "other-vae"
    build_tiny_vae(seed=1).save_pretrained(other, safe_serialization=True)
    config = LDMFineTuneConfig(model=str(tiny_sd_dir), autoencoder=str(other), steps=2, batch_size=2,
                               checkpoint_every=0)
    recipe = LDMFineTune(config)
    assert any(key.startswith("autoencoder/") for key in recipe.base())
    folder = finetune(tmp_path / "run", recipe, pairs(), seed=0)
    from diffusers import AutoencoderKL

    loaded = []
    original = AutoencoderKL.from_pretrained.__func__
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AutoencoderKL, "from_pretrained",
                      classmethod(lambda cls, *args, **kwargs: loaded.append(args) or original(cls, *args, **kwargs)))
        pipe = load_t2i_pipeline(str(folder))
    assert loaded == [(str(other),)]  # the named autoencoder only, never the base's own
    expected = build_tiny_vae(seed=1).state_dict()
    assert all(torch.equal(value, expected[name]) for name, value in pipe.vae.state_dict().items())
    own = LDMFineTune(LDMFineTuneConfig(model=str(tiny_sd_dir), autoencoder="", steps=2, batch_size=2,
                                        checkpoint_every=0))
    assert unet_bytes(folder) != unet_bytes(finetune(tmp_path / "run", own, pairs(), seed=0))


def test_the_state_hook_sees_every_batch(tmp_path, tiny_sd_dir):
    seen = []

    class Recording(LDMFineTune):
        def augment_states(self, states, generator):
            seen.append(tuple(states.shape))
            return states * 0

    config = LDMFineTuneConfig(model=str(tiny_sd_dir), autoencoder="", steps=2, batch_size=2, checkpoint_every=0)
    finetune(tmp_path, Recording(config), pairs(), seed=0)
    assert len(seen) == 2 and all(shape[0] == 2 and shape[2] == 32 for shape in seen)


@pytest.mark.parametrize("data, message", [
    ({"images": torch.rand(2, 1, 16, 16), "captions": ["a", "b"]}, "(N, 3, H, W)"),
    ({"images": torch.rand(2, 3, 16, 16), "captions": ["a"]}, "one caption per image"),
])
def test_bad_training_data_is_refused_in_one_line(tmp_path, tiny_sd_dir, data, message):
    recipe = LDMFineTune(LDMFineTuneConfig(model=str(tiny_sd_dir), autoencoder="", steps=1, batch_size=1))
    with pytest.raises(BenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        finetune(tmp_path, recipe, data, seed=0)


def test_an_autoencoder_in_a_subfolder_is_named_by_its_subfolder(tmp_path, tiny_sd_dir):
    config = LDMFineTuneConfig(model=str(tiny_sd_dir), autoencoder=str(tiny_sd_dir), autoencoder_subfolder="vae",
                               steps=1, batch_size=2, checkpoint_every=0)
    recipe = LDMFineTune(config)
    assert any(key.startswith("autoencoder/") and "safetensors" in key for key in recipe.base())
    folder = finetune(tmp_path, recipe, pairs(), seed=0)
    assert json.loads((folder / FINETUNED).read_text())["autoencoder_subfolder"] == "vae"
    from defenses.t2i import StableDiffusionModel, T2IConfig

    weights = StableDiffusionModel(T2IConfig(pipeline=str(folder), steps=2)).weights()
    assert any(path.endswith("vae/diffusion_pytorch_model.safetensors") for path in weights)


@pytest.mark.parametrize("lora_rank", [0, 2])
def test_the_training_lives_on_the_device_it_is_given(tiny_sd_dir, lora_rank):
    """The meta device stands in for a GPU on a CPU-only machine: every weight the step trains, and the
    loss, must be on the device setup was given, not on the CPU (a LoRA's layers included)."""
    recipe = LDMFineTune(LDMFineTuneConfig(model=str(tiny_sd_dir), autoencoder="", steps=1, batch_size=2,
                                           lora_rank=lora_rank))
    training = recipe.setup(pairs(), torch.device("meta"))
    assert {p.device.type for p in training.model.parameters()} == {"meta"}
    assert {p.device.type for group in training.optimizer.param_groups for p in group["params"]} == {"meta"}
    loss = training.step(torch.tensor([0, 3]), torch.Generator().manual_seed(0))["loss"]
    assert loss.device.type == "meta"


def test_the_cell_device_reaches_the_finetune_and_a_bad_one_is_refused(tmp_path, tiny_sd_dir, monkeypatch):
    from types import SimpleNamespace

    from bench.finetune import finetune_identity, finetune_key
    from bench.scenario_api import CellContext, RunOptions

    seen = []
    monkeypatch.setattr(LDMFineTune, "setup", lambda self, data, device: seen.append(device) or 1 / 0)
    recipe = LDMFineTune(LDMFineTuneConfig(model=str(tiny_sd_dir), autoencoder="", steps=1, batch_size=1))
    with pytest.raises(ZeroDivisionError):
        finetune(tmp_path, recipe, pairs(), seed=0, device="cpu")
    assert seen == [torch.device("cpu")]
    with pytest.raises(BenchError, match="is not a device"):
        finetune(tmp_path / "bad", recipe, pairs(), seed=0, device="gpu0")
    assert not (tmp_path / "bad").exists()
    cpu, gpu = (finetune_key(finetune_identity(recipe, pairs(), 0, torch.device(d))) for d in ("cpu", "cuda"))
    assert cpu == finetune_key(finetune_identity(recipe, pairs(), 0)) != gpu  # CPU keys as before devices
    handed = []
    monkeypatch.setattr("bench.scenario_api.finetune", lambda *args, **kwargs: handed.append(kwargs["device"]))
    context = SimpleNamespace(run=SimpleNamespace(folder=tmp_path), cell=SimpleNamespace(seed=0),
                              options=RunOptions(quiet=True), device=torch.device("meta"))
    CellContext.finetune(context, recipe, pairs())
    assert handed == [torch.device("meta")]


def test_a_full_finetune_keys_as_before_lora_existed_and_a_lora_keys_apart(tiny_sd_dir):
    """lora_rank 0 stays out of the fine-tune's identity, so fine-tunes cached (and results committed)
    before the field existed keep their keys; each rank is another fine-tune."""
    def config(**extra):
        return LDMFineTuneConfig(model=str(tiny_sd_dir), autoencoder="", steps=2, batch_size=2, **extra)

    before_lora = {"steps": 2, "batch_size": 2, "log_every": 10, "checkpoint_every": 25, "model": str(tiny_sd_dir),
                   "autoencoder": "", "autoencoder_subfolder": "", "learning_rate": 1e-4, "caption_dropout": 0.1,
                   "clip": 1.0, "encode_batch": 250}
    assert finetune_identity(LDMFineTune(config()), pairs(), 0)["config"] == before_lora
    assert finetune_identity(LDMFineTune(config(lora_rank=4)), pairs(), 0)["config"] == {**before_lora, "lora_rank": 4}
    keys = {finetune_key(finetune_identity(LDMFineTune(config(lora_rank=rank)), pairs(), 0)) for rank in (0, 4, 8)}
    assert len(keys) == 3
    assert config(lora_rank=0) == config() and dataclasses.replace(config(), lora_rank=4) == config(lora_rank=4)
    with pytest.raises(ValueError, match="lora_rank=-1"):
        config(lora_rank=-1)


def test_a_lora_folder_without_its_safetensors_file_is_refused_in_one_line(tmp_path, tiny_sd_dir):
    """The LoRA loads from its safetensors file only: a folder holding another file under another
    suffix (a pickle, say) is refused, not loaded."""
    config = LDMFineTuneConfig(model=str(tiny_sd_dir), autoencoder="", steps=1, batch_size=2, checkpoint_every=0,
                               lora_rank=2)
    folder = finetune(tmp_path / "run", LDMFineTune(config), pairs(), seed=0)
    assert load_t2i_pipeline(str(folder)).unet is not None
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / LORA_WEIGHTS).rename(broken / "pytorch_lora_weights.bin")
    with pytest.raises(BenchError, match=f"holds no {LORA_WEIGHTS}") as error:
        load_t2i_pipeline(str(broken))
    assert "\n" not in str(error.value)
