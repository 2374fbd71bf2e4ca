"""A diffusers ``AutoencoderKL`` as the model under test: the zoo's ``vae-kl`` or any real VAE.

The same class loads the embedded zoo model (by zoo name), a local diffusers folder, or a hub id such
as ``stabilityai/sd-vae-ft-mse`` from the Hugging Face cache, so one code path serves both worlds.
Only safetensors weights are loaded unless ``trust_pickle`` is set explicitly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.assets import sha256_file
from bench.base import Defense
from bench.errors import BenchError


@dataclass(frozen=True)
class VAEConfig:
    model: str = "vae-kl"
    subfolder: str = ""
    latent: str = "mean"
    trust_pickle: bool = False

    def __post_init__(self):
        if self.latent not in ("mean", "sample"):
            raise ValueError(f"latent={self.latent!r}; use 'mean' (PhotoGuard, Nightshade) or 'sample'")


AUTOENCODER_CLASS = "diffusers.AutoencoderKL"


def resolve_model_folder(model: str, subfolder: str = "") -> tuple[Path | str, bool]:
    """A zoo name, a local folder or a hub id -> (where to load from, whether it is local)."""
    from bench import zoo

    if zoo.is_zoo_model(model):
        if not subfolder and zoo.manifest()[model].get("class", AUTOENCODER_CLASS) != AUTOENCODER_CLASS:
            autoencoders = ", ".join(name for name, entry in zoo.manifest().items()
                                     if entry.get("class") == AUTOENCODER_CLASS)
            raise BenchError(f"zoo model {model!r} is a {zoo.manifest()[model]['class']}, not an autoencoder; "
                             f"use one of the zoo's autoencoders: {autoencoders}")
        return zoo.model_dir(model), True
    local = Path(model).expanduser()
    if local.exists():
        if not (local / subfolder / "config.json").exists():
            raise BenchError(f"{local / subfolder} has no config.json; point model: at a diffusers "
                             "folder saved with save_pretrained")
        return local, True
    if model.count("/") != 1 or model.startswith((".", "/")):
        raise BenchError(f"model {model!r} is neither a zoo model (`bench zoo ls`), a local folder, nor a "
                         "hub id like 'stabilityai/sd-vae-ft-mse'; fix the model: entry")
    return model, False


def load_autoencoder(model: str, subfolder: str = "", trust_pickle: bool = False):
    from diffusers import AutoencoderKL

    from bench.leaderboard.safety import refuse_pickle

    refuse_pickle(trust_pickle, f"model {model!r}")  # verify mode: safetensors only
    source, local = resolve_model_folder(model, subfolder)
    folder = Path(source) / subfolder if local else None
    if folder is not None and not trust_pickle and not any(folder.glob("*.safetensors")):
        raise BenchError(f"{folder} holds no safetensors weights; convert them to safetensors or pass "
                         "trust_pickle: true if you trust the pickled file")
    kwargs = {"subfolder": subfolder or None, "use_safetensors": None if trust_pickle else True}
    if not local:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        vae = AutoencoderKL.from_pretrained(str(source), **kwargs)
        missing = next((name for name, p in vae.named_parameters() if p.is_meta), None)
        if missing is not None:
            raise ValueError(f"the weights have no {missing} (and maybe more) that config.json asks for")
        return vae, folder
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:  # a config or weights that do not fit
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if local:  # a folder on disk: downloading cannot help, its layout or files are wrong
            raise BenchError(f"cannot load AutoencoderKL from the folder {folder} ({first_line[:160]}); it must be "
                             "a diffusers AutoencoderKL saved with save_pretrained: config.json beside "
                             "diffusion_pytorch_model.safetensors (check the file names and that neither is "
                             "truncated)") from None
        raise BenchError(f"cannot load AutoencoderKL {model!r} ({first_line[:160]}); download it with "
                         f"`huggingface-cli download {model}` or pass a local diffusers folder") from None


class AutoencoderKLDefense(Defense):
    """Images in [0, 1] -> latent mean (or a posterior sample) -> decoded images in [0, 1]."""

    name = "vae"
    Config = VAEConfig

    def __init__(self, config: VAEConfig | None = None):
        super().__init__(config)
        self.vae, self._folder = load_autoencoder(self.config.model, self.config.subfolder,
                                                  self.config.trust_pickle)
        self.vae.eval().requires_grad_(False)
        self.device = torch.device("cpu")
        self.dtype = torch.float32

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> AutoencoderKLDefense:
        self.device, self.dtype = torch.device(device), dtype
        self.vae.to(device=self.device)
        if dtype != next(self.vae.parameters()).dtype:
            self.vae.to(dtype=dtype)
        return self

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    def check_images(self, images: torch.Tensor) -> None:
        factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        if images.shape[-1] % factor or images.shape[-2] % factor:
            raise BenchError(f"{self.config.model} downsamples by {factor}, so image sides must be multiples of "
                             f"{factor}; the images are {images.shape[-1]}x{images.shape[-2]}: resize or crop them")

    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        self.check_images(images)
        posterior = self.vae.encode((images * 2 - 1).to(self.device, self.dtype)).latent_dist
        if self.config.latent == "sample":
            return posterior.sample(generator=generator)
        return posterior.mean

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        decoded = self.vae.decode(latents.to(self.device, self.dtype)).sample
        return ((decoded.float() + 1) / 2).clamp(0, 1)

    def weights(self) -> dict[str, str]:
        if self._folder is None:
            return {}
        return {str(p): sha256_file(p) for p in sorted(self._folder.glob("*.safetensors"))}

    def view_identity(self) -> dict:
        return {"autoencoder": {"model": self.config.model, "subfolder": self.config.subfolder,
                                "latent": self.config.latent}}
