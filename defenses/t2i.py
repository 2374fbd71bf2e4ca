"""A Stable Diffusion pipeline as a defended model of kind ``text-to-image``: the embedded ``ldm-t2i``,
a hub id or a local folder in SD 1.5 layout (``bench.t2i``). ``generate`` and ``edit`` (img2img at
``strength``) run the diffusers pipelines themselves with DDIM ``steps`` and classifier-free
``guidance``; deterministic for a seed. The model a fine-tune (AELIF, poisoning) produces plugs in
here by its folder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.assets import sha256_file
from bench.base import TextToImage, check_unit_interval
from bench.t2i import DEFAULT_GUIDANCE, DEFAULT_STEPS, DEFAULT_STRENGTH, EMBEDDED_MODEL, EMBEDDED_MODELS


@dataclass(frozen=True)
class T2IConfig:
    pipeline: str = EMBEDDED_MODEL
    steps: int = DEFAULT_STEPS
    guidance: float = DEFAULT_GUIDANCE
    strength: float = DEFAULT_STRENGTH
    trust_pickle: bool = False

    def __post_init__(self):
        check_unit_interval("t2i", "strength", self.strength)
        if self.steps < 1:
            raise ValueError(f"steps={self.steps}; use at least 1")


class StableDiffusionModel(TextToImage):
    name = "t2i"
    Config = T2IConfig

    def __init__(self, config: T2IConfig | None = None):
        from diffusers import StableDiffusionImg2ImgPipeline

        from bench.t2i import load_t2i_pipeline

        super().__init__(config)
        self.pipe = load_t2i_pipeline(self.config.pipeline, trust_pickle=self.config.trust_pickle)
        self.img2img = StableDiffusionImg2ImgPipeline(**self.pipe.components)
        self.img2img.set_progress_bar_config(disable=True)

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> StableDiffusionModel:
        self.pipe = self.pipe.to(device=torch.device(device), dtype=dtype)
        self.img2img = self.img2img.to(device=torch.device(device), dtype=dtype)
        return self

    def weights(self) -> dict[str, str]:
        from bench import zoo
        from bench.t2i import embedded_autoencoder, finetuned_weight_folders, is_finetuned_folder

        if self.config.pipeline in EMBEDDED_MODELS:
            folders = [zoo.model_dir(self.config.pipeline), zoo.model_dir(embedded_autoencoder(self.config.pipeline))]
        elif is_finetuned_folder(self.config.pipeline):
            folders = finetuned_weight_folders(Path(self.config.pipeline).expanduser())
        else:
            folders = [Path(self.config.pipeline).expanduser()] if Path(self.config.pipeline).expanduser().exists() else []
        return {str(p): sha256_file(p) for folder in folders for p in sorted(folder.rglob("*.safetensors"))}

    def generate(self, prompts: list[str], seed: int, perturb: Callable | None = None,
                 condition: Callable | None = None) -> torch.Tensor:
        """``perturb``: a ``SamplingAttack.hook`` applied to the sampling trajectory; ``condition``: a
        ``ConditioningAttack.hook`` applied to the prompt states, then to the negative (unconditional)
        prompt states of classifier-free guidance, from one generator: at inference as AELIF's reference
        ``encode_prompt`` augments them (``bench.t2i.generate``)."""
        from bench.t2i import generate

        return generate(self.pipe, list(prompts), steps=self.config.steps, guidance=self.config.guidance, seed=seed,
                        perturb=perturb, condition=condition)

    @torch.no_grad()
    def decode_perturbed_latents(self, images: torch.Tensor, scale: float, seed: int) -> torch.Tensor:
        """D(mu + scale * n): the autoencoder's posterior means of ``images`` in [0, 1], in the diffusion
        model's scaled latent units, with Gaussian noise of std ``scale`` added, decoded to [0, 1] (the
        VE-loss paper's decoder-side check)."""
        vae = self.pipe.vae
        parameter = next(vae.parameters())
        factor = float(vae.config.scaling_factor)
        means = vae.encode(images.to(parameter.device, parameter.dtype) * 2 - 1).latent_dist.mean * factor
        noise = torch.randn(means.shape, generator=torch.Generator().manual_seed(seed)).to(means.device, means.dtype)
        return ((vae.decode((means + scale * noise) / factor).sample + 1) / 2).float().cpu().clamp(0, 1)

    def edit(self, images: torch.Tensor, prompts: list[str], seed: int, strength: float | None = None) -> torch.Tensor:
        from bench.t2i import edit

        return edit(self.img2img, images.clamp(0, 1), list(prompts), strength=strength or self.config.strength,
                    steps=self.config.steps, guidance=self.config.guidance, seed=seed)
