"""Fine-tune a latent text-to-image model inside a cell (poisoning, AELIF): the UNet learns the
training pairs' latents under its own noise-prediction loss, the autoencoder and the text encoder
stay frozen. One code path for the embedded ``ldm-t2i(-v2)`` and for a Stable Diffusion folder or
hub id: the base pipeline comes from ``bench.t2i.load_t2i_pipeline`` and prompts are encoded by its
own ``encode_prompt``.

``autoencoder`` replaces the pipeline's VAE, both for encoding the training images and in the saved
model, so a poisoning cell trains and generates through the defense's autoencoder (Nightshade's
threat model: the poisons go through the defended encoder). The result folder holds the fine-tuned
``unet/``, the ``scheduler/`` and ``finetuned.json`` naming the base and the autoencoder;
``load_t2i_pipeline(folder)`` assembles the pipeline from them, so ``defenses.t2i`` takes the folder
as its ``pipeline``.

``lora_rank > 0`` trains a LoRA of that rank on the UNet's attention projections instead of the whole
UNet, as diffusers' ``examples/text_to_image/train_text_to_image_lora.py`` does (the base UNet frozen,
alpha = rank, Gaussian init, only the LoRA weights optimised); the folder then holds the LoRA as
``pytorch_lora_weights.safetensors`` (diffusers' format, ``save_lora_weights``) and no ``unet/``, and
``finetuned.json`` records ``lora_rank``.

``augment_states(states, generator)`` sees the batch's token states after the text encoder and
before the UNet (identity here): the hook AELIF's embedding augmentation overrides.

It trains on the cell's device (``CellContext.finetune`` hands it over), in float32; a fine-tune on a
GPU is keyed apart from the CPU's (``bench.finetune.finetune_identity``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bench.assets import sha256_file
from bench.errors import BenchError
from bench.finetune import ADDED_LATER, CPU, FineTuneConfig, FineTuneRecipe, Training
from bench.t2i import FINETUNED, LORA_WEIGHTS, model_folders

LORA_TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]


@dataclass(frozen=True)
class LDMFineTuneConfig(FineTuneConfig):
    """``model``: the base text-to-image model (zoo name, SD folder or hub id); ``autoencoder``: the
    VAE that encodes the training images and decodes generations ("" keeps the pipeline's own);
    ``caption_dropout``: share of captions replaced by "" so classifier-free guidance keeps working;
    ``lora_rank``: 0 fine-tunes the whole UNet, more trains a LoRA of that rank."""

    model: str = "ldm-t2i-v2"
    autoencoder: str = "vae-kl"
    autoencoder_subfolder: str = ""
    learning_rate: float = 1e-4
    caption_dropout: float = 0.1
    clip: float = 1.0
    encode_batch: int = 250
    lora_rank: int = field(default=0, metadata=ADDED_LATER)

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.caption_dropout < 1 or self.learning_rate <= 0:
            raise ValueError("caption_dropout must lie in [0, 1) and learning_rate be positive")
        if self.lora_rank < 0:
            raise ValueError(f"lora_rank={self.lora_rank} must be 0 (the whole UNet) or more (a LoRA of that rank)")


def weight_files(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.rglob("*.safetensors"))}


class LDMFineTune(FineTuneRecipe):
    """Noise-prediction fine-tune of a text-to-image UNet on ``data = {"images": (N, 3, H, W) in
    [0, 1], "captions": N strings}`` (AdamW, gradient norm clipped, no EMA: fine-tunes are short)."""

    name = "ldm"
    version = "1"
    trains_on_device = True

    def base(self) -> dict[str, str]:
        files = {}
        for folder in model_folders(self.config.model):
            files.update({f"model/{k}": v for k, v in weight_files(folder).items()})
        if self.config.autoencoder:
            from defenses.vae import resolve_model_folder

            source, local = resolve_model_folder(self.config.autoencoder, self.config.autoencoder_subfolder)
            if local:
                folder = Path(source) / self.config.autoencoder_subfolder
                files.update({f"autoencoder/{k}": v for k, v in weight_files(folder).items()})
        if not files:  # a hub id: its name is what we know
            files[self.config.model] = "hub"
        return files

    def augment_states(self, states: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return states

    @torch.no_grad()
    def _encode(self, pipe, images: torch.Tensor) -> torch.Tensor:
        """The training latents, kept on the autoencoder's device for the steps."""
        vae = pipe.vae
        chunks = [vae.encode(chunk.to(vae.device, vae.dtype) * 2 - 1).latent_dist.mean.float()
                  for chunk in images.split(self.config.encode_batch)]
        return torch.cat(chunks) * float(vae.config.scaling_factor)

    def setup(self, data: dict[str, torch.Tensor | list[str]],
              device: torch.device = CPU) -> Training:
        """The training on ``device``: the pipeline, the latents and the token states live there; every
        random draw comes from the loop's CPU generator and is moved, so a step's randomness is the
        same on any device."""
        from diffusers import DDPMScheduler

        from bench.t2i import load_t2i_pipeline
        from defenses.vae import load_autoencoder

        images, captions = data.get("images"), data.get("captions")
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
            raise BenchError("ldm fine-tune: data['images'] must be a tensor (N, 3, H, W) in [0, 1]")
        if captions is None or len(captions) != len(images) or not len(images):
            raise BenchError("ldm fine-tune: data['captions'] needs one caption per image (and at least one image)")
        pipe = load_t2i_pipeline(self.config.model, device=device)
        if self.config.autoencoder:
            vae, _ = load_autoencoder(self.config.autoencoder, self.config.autoencoder_subfolder)
            pipe.vae = vae.to(device).eval().requires_grad_(False)
        latents = self._encode(pipe, images.float())
        texts = sorted(set(captions)) + [""]
        with torch.no_grad():
            states = torch.cat([pipe.encode_prompt(texts[i:i + 64], device, 1, False)[0]
                                for i in range(0, len(texts), 64)])
        caption_index = torch.tensor([texts.index(c) for c in captions])
        unconditional = len(texts) - 1
        rank = self.config.lora_rank
        unet = pipe.unet.train().requires_grad_(not rank)
        if rank:
            from peft import LoraConfig

            unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                                        target_modules=LORA_TARGETS))
        noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        optimizer = torch.optim.AdamW([p for p in unet.parameters() if p.requires_grad], lr=self.config.learning_rate,
                                      weight_decay=1e-2)
        batch = self.config.batch_size

        def step(indices: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
            clean = latents[indices]
            dropped = torch.rand(len(indices), generator=generator) < self.config.caption_dropout
            context = self.augment_states(states[torch.where(dropped, unconditional, caption_index[indices])],
                                          generator)
            noise = torch.randn(clean.shape, generator=generator).to(device)
            timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(indices),),
                                      generator=generator).to(device)
            noisy = noise_scheduler.add_noise(clean, noise, timesteps)
            return {"loss": torch.nn.functional.mse_loss(unet(noisy, timesteps, context).sample, noise)}

        def save(output: Path) -> None:
            if rank:
                from diffusers import StableDiffusionPipeline
                from diffusers.utils import convert_state_dict_to_diffusers
                from peft.utils import get_peft_model_state_dict

                layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
                StableDiffusionPipeline.save_lora_weights(output, unet_lora_layers=layers, weight_name=LORA_WEIGHTS,
                                                          safe_serialization=True)
            else:
                unet.save_pretrained(output / "unet", safe_serialization=True)
            pipe.scheduler.save_pretrained(output / "scheduler")
            (output / FINETUNED).write_text(json.dumps(
                {"base": self.config.model, "autoencoder": self.config.autoencoder,
                 "autoencoder_subfolder": self.config.autoencoder_subfolder, "recipe": self.name,
                 "training_pairs": len(images), "batch_size": batch, **({"lora_rank": rank} if rank else {})},
                indent=1))

        return Training(unet, optimizer, step, len(images), save, clip=self.config.clip)
