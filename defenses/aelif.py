"""AELIF: embedding-level augmentation of the text conditioning during fine-tuning (Martirosyan et al.,
"Evaluating Robustness in Latent Diffusion Models via Embedding Level Augmentation", arXiv:2506.07706;
reference code github.com/Borismartirosyan/aelif_augmentation, ``custom_sdxl_pipeline.py`` /
``custom_sd3_pipeline.py``: ``mask_embeddings_per_sample``, ``elementwise_multiply_embeddings_with_noise``).

The augmentation acts on the padded token-state sequence (B, L, D) after the text encoder and before
the UNet. Of the L - 2 positions strictly between the first and the last, ``int((L - 2) * p)`` are
drawn without replacement (one ``randperm`` from a CPU generator, the same positions for every
sample of the batch, as the reference draws them); ``mask`` multiplies their states by 0,
``noise_conv`` multiplies them element-wise by noise from N(mean, std^2) (drawn after the positions,
shape (B, k, D)). ``p`` with no position to change leaves the states untouched and draws nothing.
``aelif_encode_prompt(pipe, ...)`` applies it inside any diffusers text-to-image pipeline whose
``__call__`` encodes through ``encode_prompt`` (SD 1.5, the embedded ``ldm-t2i(-v2)``, SDXL, SD3):
the prompt states, then the negative ones, augmented in that order from one generator, as the
reference's ``encode_prompt`` does (the wrapper is ``bench.t2i.conditioned_encode_prompt``, which the
``aelif-probe`` attack, the augmentation as a probe at inference, goes through too). Where a pipeline
concatenates two encoders' states (SDXL along features, SD3 along tokens) the reference augments each
encoder's states separately; this hook augments the concatenation once.

Defense ``aelif`` (kind ``text-to-image``) is ``ldm-t2i-v2`` (``model``) fine-tuned with the
augmentation by ``bench.ldm_finetune.LDMFineTune`` (``steps``, ``batch_size``, ``learning_rate``;
``lora_rank`` > 0 trains a LoRA of that rank instead of the whole UNet) on the first ``train_n``
Fashion-MNIST training images, each with a training caption of its class drawn with seed 0
(``bench.zoo.captions``); the reference fine-tuned DreamBooth-LoRA on SDXL for 700
steps at lr 1e-4 with ``--aelif mask --aelif_percentage 0.1``. ``aelif-none`` is the same fine-tune
(data, steps, seed, noise, timesteps, caption dropout) with ``augmentation: none``, so the comparison
isolates the augmentation: the augmentation's draws come from a generator seeded by the training
loop's generator state, which they never advance, so both fine-tunes see the same loop draws and
resume alike after a kill.

How it plugs into the runner: a fine-tune needs the run's store and the cell's seed, which only a
cell has, so the defense does not train itself. It states its fine-tune (``finetune_request``:
the recipe and its training data) and turns the resulting folder into a generator
(``with_finetune``); a scenario that evaluates text-to-image models asks for it through
``CellContext.finetune`` (``bench.scenarios.prompt_robustness.evaluated_model``), so the fine-tune
is keyed, cached, shared by every cell of the run and resumable like any other. Called directly,
``generate`` and ``edit`` refuse with one line naming that scenario.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.base import TextToImage
from bench.errors import BenchError
from bench.ldm_finetune import LDMFineTune, LDMFineTuneConfig

AUGMENTATIONS = ("mask", "noise_conv", "none")


def augmented_positions(length: int, p: float) -> int:
    """How many of the ``length - 2`` inner positions the augmentation changes: int((L - 2) * p)."""
    if length < 3:
        raise ValueError(f"AELIF needs at least 3 token positions (first, one inner, last), got {length}")
    if not 0 <= p <= 1:
        raise ValueError(f"p={p} must lie in [0, 1]")
    return min(int((length - 2) * p), length - 2)


def aelif_augment(states: torch.Tensor, augmentation: str, p: float, generator: torch.Generator,
                  mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """The states (B, L, D) with AELIF's ``mask`` or ``noise_conv`` applied (a new tensor)."""
    if augmentation not in AUGMENTATIONS:
        raise ValueError(f"augmentation {augmentation!r}: use one of {', '.join(AUGMENTATIONS)}")
    if states.ndim != 3:
        raise ValueError(f"AELIF augments token states (batch, tokens, features), got shape {tuple(states.shape)}")
    if generator.device.type != "cpu":
        raise ValueError("AELIF draws its positions from a CPU generator")
    batch, length, features = states.shape
    count = augmented_positions(length, p)
    if augmentation == "none" or count == 0:
        return states.clone()
    positions = (torch.randperm(length - 2, generator=generator)[:count] + 1).to(states.device)
    factor = torch.ones(batch, length, features, dtype=states.dtype, device=states.device)
    if augmentation == "mask":
        factor[:, positions, :] = 0
    else:
        noise = torch.randn(batch, count, features, generator=generator) * std + mean
        factor[:, positions, :] = noise.to(states.device, states.dtype)
    return states * factor


def aelif_encode_prompt(pipe: Any, augmentation: str, p: float, generator: torch.Generator, mean: float = 0.0,
                        std: float = 1.0) -> contextlib.AbstractContextManager:
    """Within the block, ``pipe`` generates from AELIF-augmented prompt (then negative prompt) states
    (``bench.t2i.conditioned_encode_prompt``, the wrapper the ``aelif-probe`` attack's hook goes
    through too)."""
    from bench.t2i import conditioned_encode_prompt

    return conditioned_encode_prompt(pipe, lambda states: aelif_augment(states, augmentation, p, generator, mean, std))


def derived_generator(generator: torch.Generator) -> torch.Generator:
    """A CPU generator seeded by ``generator``'s state, which is read, never advanced."""
    digest = hashlib.sha256(generator.get_state().numpy().tobytes()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


@dataclass(frozen=True)
class AELIFFineTuneConfig(LDMFineTuneConfig):
    augmentation: str = "mask"
    p: float = 0.1
    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(f"augmentation {self.augmentation!r}: use one of {', '.join(AUGMENTATIONS)}")
        if not 0 <= self.p <= 1 or self.std < 0:
            raise ValueError(f"p={self.p} must lie in [0, 1] and std={self.std} be 0 or more")


class AELIFFineTune(LDMFineTune):
    """``LDMFineTune`` whose token states go through ``aelif_augment`` at every step."""

    name = "aelif"
    version = "1"

    def augment_states(self, states: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        config = self.config
        return aelif_augment(states, config.augmentation, config.p, derived_generator(generator), config.mean,
                             config.std)


@dataclass(frozen=True)
class AELIFConfig:
    """``augmentation`` (mask | noise_conv | none), ``p``, ``mean``, ``std``: AELIF's ``--aelif``,
    ``--aelif_percentage``, ``--mean_aelif``, ``--std_aelif``. The fine-tune: ``steps``, ``batch_size``,
    ``learning_rate`` on ``train_n`` training pairs from ``model`` through ``autoencoder`` ("": the
    pipeline's own VAE); the pairs are Fashion-MNIST's training split with drawn captions, or, with
    ``train_data``, a folder of images with ``captions.json`` (e.g. a DreamBooth subject, "a photo of
    sks dog"). ``lora_rank``: 0 fine-tunes the whole UNet, more trains a LoRA of that rank on its
    attention projections (the reference's DreamBooth-LoRA: rank 4, lr 1e-4). Generation: DDIM
    ``sample_steps`` at classifier-free ``guidance``."""

    augmentation: str = "mask"
    p: float = 0.1
    mean: float = 0.0
    std: float = 1.0
    model: str = "ldm-t2i-v2"
    autoencoder: str = "vae-kl"
    steps: int = 300
    batch_size: int = 32
    learning_rate: float = 1e-4
    train_n: int = 1024
    train_data: str = ""
    lora_rank: int = 0
    sample_steps: int = 25
    guidance: float = 7.5

    def __post_init__(self):
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(f"augmentation {self.augmentation!r}: use one of {', '.join(AUGMENTATIONS)}")
        if not 0 <= self.p <= 1:
            raise ValueError(f"p={self.p} must lie in [0, 1] (the share of inner token positions augmented)")
        if self.std < 0:
            raise ValueError(f"std={self.std} must be 0 or more")
        if min(self.steps, self.batch_size, self.train_n, self.sample_steps) < 1 or self.learning_rate <= 0:
            raise ValueError("steps, batch_size, train_n and sample_steps must be at least 1, learning_rate positive")
        if self.lora_rank < 0:
            raise ValueError(f"lora_rank={self.lora_rank} must be 0 (the whole UNet) or more (a LoRA of that rank)")


class AELIF(TextToImage):
    name = "aelif"
    Config = AELIFConfig

    def __init__(self, config: AELIFConfig | None = None):
        super().__init__(config)
        self.device, self.dtype = torch.device("cpu"), torch.float32
        self._finetuned: dict[str, TextToImage] = {}

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> AELIF:
        self.device, self.dtype = torch.device(device), dtype
        for model in self._finetuned.values():
            model.to(self.device, dtype)
        return self

    def prepare(self, device: torch.device) -> AELIF:
        """Refuse a missing base model or training folder before a run writes anything."""
        from bench import zoo
        from bench.t2i import EMBEDDED_MODELS, load_t2i_pipeline

        if self.config.model in EMBEDDED_MODELS:
            if not zoo.is_zoo_model(self.config.model):
                raise BenchError(f"{self.name}: zoo model {self.config.model} is not built; run `bench zoo train "
                                 f"{self.config.model}`")
        else:
            load_t2i_pipeline(self.config.model)
        if self.config.train_data:
            self.training_data()
        return self

    def recipe(self) -> AELIFFineTune:
        c = self.config
        return AELIFFineTune(AELIFFineTuneConfig(
            steps=c.steps, batch_size=c.batch_size, model=c.model, autoencoder=c.autoencoder,
            learning_rate=c.learning_rate, lora_rank=c.lora_rank, augmentation=c.augmentation, p=c.p, mean=c.mean,
            std=c.std))

    def training_data(self) -> dict[str, torch.Tensor | list[str]]:
        from bench.data import load_fashion_mnist, load_folder
        from bench.zoo.captions import draw_captions

        if self.config.train_data:
            folder = load_folder(self.config.train_data, self.config.train_n)
            if not all(folder.captions):
                raise BenchError(f"{self.name}: {self.config.train_data} has no captions.json; write one "
                                 '({"file.png": "a photo of sks dog", ...})')
            return {"images": folder.images, "captions": list(folder.captions)}
        train = load_fashion_mnist("train", self.config.train_n)
        return {"images": train.images, "captions": draw_captions(train.labels, "train", seed=0)}

    def finetune_request(self) -> tuple[AELIFFineTune, dict[str, torch.Tensor | list[str]]]:
        return self.recipe(), self.training_data()

    def with_finetune(self, folder: Path) -> TextToImage:
        """The fine-tuned model in ``folder`` as the suite's ``t2i`` model (loaded once per folder)."""
        key = str(folder)
        if key not in self._finetuned:
            from defenses.t2i import StableDiffusionModel, T2IConfig

            config = T2IConfig(pipeline=key, steps=self.config.sample_steps, guidance=self.config.guidance)
            self._finetuned[key] = StableDiffusionModel(config).to(self.device, self.dtype)
        return self._finetuned[key]

    def weights(self) -> dict[str, str]:
        """The committed weight files the model is fine-tuned from (base model and autoencoder). The
        fine-tuned UNet is a function of the fine-tune's key (recipe, config, seed, these files, the
        training data, the suite version: ``RUN_DIR/finetunes/<key>/finetune.json``) and lives in the
        run's store, so results and leaderboard entries name what reproduces it, not a run-local file."""
        from bench.assets import sha256_file
        from bench.t2i import model_folders
        from defenses.vae import resolve_model_folder

        folders = model_folders(self.config.model)
        if self.config.autoencoder:
            source, local = resolve_model_folder(self.config.autoencoder, "")
            folders += [Path(source)] if local else []
        return {str(p): sha256_file(p) for folder in folders for p in sorted(folder.rglob("*.safetensors"))}

    def generate(self, prompts: list[str], seed: int) -> torch.Tensor:
        raise BenchError(f"{self.name}: this model is fine-tuned inside a cell; evaluate it with scenario "
                         "prompt-robustness (which asks for the fine-tune)")

    def edit(self, images: torch.Tensor, prompts: list[str], seed: int, strength: float | None = None) -> torch.Tensor:
        return self.generate(prompts, seed)
