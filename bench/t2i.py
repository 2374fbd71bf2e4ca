"""Text-to-image and img2img as genuine diffusers Stable Diffusion pipelines, for the embedded
``ldm-t2i`` and for real Stable Diffusion 1.5 alike.

``ldm-t2i`` is assembled from its parts: the zoo's ``vae-kl``, the zoo's UNet and DDIM scheduler,
and the frozen MiniLM text encoder from its installed package (never a committed copy). A hub id such
as ``runwayml/stable-diffusion-v1-5`` or a local folder in SD 1.5 layout loads with
``from_pretrained``, offline, safetensors only unless ``trust_pickle``. Every pipeline samples with
DDIM; ``generate`` and ``edit`` take and return images (N, 3, H, W) in [0, 1] and are deterministic
for a seed.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from bench.errors import BenchError

EMBEDDED_MODEL = "ldm-t2i"
TOKENIZER_LDMS = ("ldm-vae-kl-b1e-2", "ldm-vae-kl-b1", "ldm-vae-kl-b8", "ldm-ve-vae")  # issue 13
EMBEDDED_MODELS = (EMBEDDED_MODEL, "ldm-t2i-v2", *TOKENIZER_LDMS)  # zoo UNets conditioned on the MiniLM, assembled alike
KINDS = ("txt2img", "img2img")
DEFAULT_STEPS = 50
DEFAULT_GUIDANCE = 7.5
DEFAULT_STRENGTH = 0.5
PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth")
FINETUNED = "finetuned.json"  # marks a folder bench.ldm_finetune wrote: a fine-tuned UNet on a base model
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"  # a LoRA fine-tune's weights (diffusers' file name)


def _pipeline_class(kind: str):
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

    if kind not in KINDS:
        raise BenchError(f"unknown pipeline kind {kind!r}; use one of {', '.join(KINDS)}")
    return StableDiffusionPipeline if kind == "txt2img" else StableDiffusionImg2ImgPipeline


def embedded_autoencoder(name: str) -> str:
    """The zoo autoencoder whose latents the embedded model ``name`` denoises (its manifest's first
    requirement)."""
    from bench import zoo

    return zoo.manifest().get(name, {}).get("requires", ["vae-kl"])[0]


def _embedded_components(name: str, given: dict | None = None) -> dict:
    """The embedded model's components; those in ``given`` (UNet, scheduler, autoencoder) take the
    place of its own, which are then not loaded."""
    from diffusers import DDIMScheduler, UNet2DConditionModel

    from bench import zoo
    from bench.text_encoder import load_text_encoder
    from defenses.vae import load_autoencoder

    folder = zoo.model_dir(name)
    tokenizer, text_encoder = load_text_encoder()
    text_encoder = copy.deepcopy(text_encoder)
    # ldm-t2i was trained on token states computed with the attention mask; BERT has no such config
    # flag, so without it the pipeline would encode prompts unmasked.
    text_encoder.config.use_attention_mask = True
    given = given or {}
    vae = given["vae"] if "vae" in given else load_autoencoder(embedded_autoencoder(name))[0]
    unet = given["unet"] if "unet" in given else UNet2DConditionModel.from_pretrained(folder / "unet",
                                                                                      use_safetensors=True)
    scheduler = given["scheduler"] if "scheduler" in given else DDIMScheduler.from_pretrained(folder / "scheduler")
    return {"vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "unet": unet,
            "scheduler": scheduler, **given}


def _check_local_folder(folder: Path, trust_pickle: bool) -> None:
    if not (folder / "model_index.json").exists():
        raise BenchError(f"{folder} has no model_index.json; point at a diffusers pipeline folder in "
                         "Stable Diffusion 1.5 layout (saved with save_pretrained)")
    if trust_pickle:
        return
    for part in ("unet", "vae", "text_encoder"):
        files = [p for p in (folder / part).glob("*") if p.is_file()]
        pickled = [p for p in files if p.suffix in PICKLE_SUFFIXES]
        if pickled and not any(p.suffix == ".safetensors" for p in files):
            raise BenchError(f"{folder / part} holds only pickled weights ({pickled[0].name}); convert them "
                             "to safetensors or pass trust_pickle=True if you trust the file")


def _load_pretrained(model: str, pipeline_class, dtype: torch.dtype, trust_pickle: bool, **given):
    """``from_pretrained`` of a hub id or local folder; components in ``given`` are used as they are,
    not loaded."""
    from bench.leaderboard.safety import refuse_pickle

    refuse_pickle(trust_pickle, f"pipeline {model!r}")  # verify mode: safetensors only
    local = Path(model).expanduser()
    if local.exists():
        _check_local_folder(local, trust_pickle)
    elif model.count("/") != 1 or model.startswith((".", "/")):
        raise BenchError(f"model {model!r} is neither {EMBEDDED_MODEL!r}, a local pipeline folder, nor a hub "
                         "id like 'runwayml/stable-diffusion-v1-5'; fix the model name")
    else:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return pipeline_class.from_pretrained(
            str(local) if local.exists() else model, safety_checker=None, feature_extractor=None,
            requires_safety_checker=False, use_safetensors=None if trust_pickle else True, dtype=dtype, **given)
    except (OSError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BenchError(f"cannot load pipeline {model!r} ({first_line[:160]}); download it with "
                         f"`huggingface-cli download {model}` or pass a local folder in SD 1.5 layout") from None


def load_t2i_pipeline(model: str = EMBEDDED_MODEL, kind: str = "txt2img", device: str | torch.device = "cpu",
                      dtype: torch.dtype = torch.float32, trust_pickle: bool = False):
    """A diffusers ``StableDiffusionPipeline`` (``kind="txt2img"``) or ``StableDiffusionImg2ImgPipeline``
    with a DDIM scheduler, no safety checker, frozen, its progress bar off. ``model`` may also be a
    folder ``bench.ldm_finetune`` wrote (a fine-tuned UNet on a base model)."""
    from diffusers import DDIMScheduler

    pipeline_class = _pipeline_class(kind)
    if model in EMBEDDED_MODELS or is_finetuned_folder(model):
        components = base_components(model)
        components = {k: v for k, v in components.items() if k in ("vae", "text_encoder", "tokenizer", "unet",
                                                                     "scheduler")}
        pipe = pipeline_class(**components, safety_checker=None, feature_extractor=None,
                              requires_safety_checker=False)
    else:
        pipe = _load_pretrained(model, pipeline_class, dtype, trust_pickle)
    if not isinstance(pipe.scheduler, DDIMScheduler):  # no clipping, as the SD pipelines' constructor enforces
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=False)
    for part in (pipe.unet, pipe.vae, pipe.text_encoder):
        part.eval().requires_grad_(False)
    pipe.set_progress_bar_config(disable=True)
    pipe = pipe.to(torch.device(device))
    return pipe if pipe.unet.dtype == dtype else pipe.to(dtype=dtype)


def model_folders(model: str) -> list[Path]:
    from bench import zoo

    if model in EMBEDDED_MODELS:
        return [zoo.model_dir(model)]
    local = Path(model).expanduser()
    return [local] if local.exists() else []


def base_components(model: str, given: dict | None = None) -> dict:
    """The pipeline components of ``model`` (embedded, fine-tuned folder, hub id or SD folder), with
    those in ``given`` in place of its own: a replaced part is never loaded."""
    given = given or {}
    if model in EMBEDDED_MODELS:
        return _embedded_components(model, given)
    if is_finetuned_folder(model):
        return load_finetuned_components(Path(model).expanduser(), given)[1]
    return dict(_load_pretrained(model, _pipeline_class("txt2img"), torch.float32, False, **given).components)


def load_finetuned_components(folder: Path, given: dict | None = None) -> tuple[str, dict]:
    """The base pipeline's name and components with the fine-tuned UNet and the recorded autoencoder
    (the base's own UNet and autoencoder are not loaded); ``given`` parts take the place of these. A
    LoRA fine-tune (``lora_rank`` recorded) is the base's UNet with the folder's LoRA fused in."""
    from diffusers import DDIMScheduler, UNet2DConditionModel

    from defenses.vae import load_autoencoder

    record = json.loads((folder / FINETUNED).read_text())
    own = dict(given or {})
    lora = bool(record.get("lora_rank")) and "unet" not in own
    if "unet" not in own and not lora:
        own["unet"] = UNet2DConditionModel.from_pretrained(folder / "unet", use_safetensors=True)
    if "scheduler" not in own:
        own["scheduler"] = DDIMScheduler.from_pretrained(folder / "scheduler")
    if record.get("autoencoder") and "vae" not in own:
        own["vae"], _ = load_autoencoder(record["autoencoder"], record.get("autoencoder_subfolder", ""))
    components = base_components(record["base"], own)
    if lora:
        fuse_lora(components["unet"], folder / LORA_WEIGHTS)
    return record["base"], components


def fuse_lora(unet, file: Path) -> None:
    """Merge the LoRA in ``file`` into ``unet``'s weights and drop the adapter layers, so the pipeline
    holds a plain UNet (the base's module names, no extra matmuls per step). The file is read with
    safetensors alone: a LoRA fine-tune never loads a pickle."""
    from safetensors.torch import load_file

    if not file.is_file():
        raise BenchError(f"{file.parent} records a LoRA fine-tune but holds no {file.name}; rerun the fine-tune")
    unet.load_lora_adapter(load_file(file), prefix="unet")
    unet.fuse_lora()
    unet.unload_lora()


def is_finetuned_folder(model: str) -> bool:
    return (Path(model).expanduser() / FINETUNED).is_file()


def finetuned_weight_folders(folder: Path) -> list[Path]:
    """The folders whose weights make up a fine-tuned model: its own, its base's and its autoencoder's."""
    from defenses.vae import resolve_model_folder

    record = json.loads((folder / FINETUNED).read_text())
    folders = [folder, *model_folders(record["base"])]
    autoencoder = record.get("autoencoder") or (embedded_autoencoder(record["base"]) if record["base"] in EMBEDDED_MODELS else "")
    if autoencoder:
        subfolder = record.get("autoencoder_subfolder", "") if record.get("autoencoder") else ""
        source, local = resolve_model_folder(autoencoder, subfolder)
        folders += [Path(source) / subfolder] if local else []
    return folders


def _prompts(prompts: str | list[str] | tuple[str, ...]) -> list[str]:
    return [prompts] if isinstance(prompts, str) else list(prompts)


@contextlib.contextmanager
def conditioned_encode_prompt(pipe, condition: Callable[[torch.Tensor], torch.Tensor]) -> Iterator:
    """Within the block, ``pipe.encode_prompt`` returns its prompt states, then its negative
    (unconditional) prompt states where it encodes them (classifier-free guidance), each passed through
    ``condition`` in that order, as AELIF's reference ``encode_prompt`` augments both from one
    generator. Works for any diffusers text-to-image pipeline whose ``__call__`` encodes through
    ``encode_prompt`` (SD 1.5, the embedded models, SDXL, SD3; for SDXL and SD3 the first two outputs
    are the concatenated states of their encoders). Pooled states (SDXL, SD3) pass unchanged."""
    original = pipe.encode_prompt
    had_own = "encode_prompt" in vars(pipe)

    def encode_prompt(*args, **kwargs):
        encoded = list(original(*args, **kwargs))
        for i in (0, 1):
            if i < len(encoded) and isinstance(encoded[i], torch.Tensor):
                encoded[i] = condition(encoded[i])
        return tuple(encoded)

    pipe.encode_prompt = encode_prompt
    try:
        yield pipe
    finally:
        if had_own:
            pipe.encode_prompt = original
        else:
            del pipe.encode_prompt


@torch.no_grad()
def generate(pipe, prompts: str | list[str], steps: int = DEFAULT_STEPS, guidance: float = DEFAULT_GUIDANCE,
             seed: int = 0, perturb: Callable | None = None, condition: Callable | None = None) -> torch.Tensor:
    """Text-to-image: (N, 3, H, W) in [0, 1] at the UNet's native size, one image per prompt.
    ``perturb(latents, position, steps, SamplerStep)`` (a ``SamplingAttack.hook``) may replace the
    input x_t of each step after the first (``trajectory_callback``). ``condition(states) -> states``
    (a ``ConditioningAttack.hook``) is applied to the prompt states and then to the negative prompt
    states the pipeline encodes (``conditioned_encode_prompt``); the sampler's own generator is
    untouched, so the generation starts from the same initial latents as without it."""
    generator = torch.Generator().manual_seed(seed)
    hooks = {} if perturb is None else {"callback_on_step_end": trajectory_callback(perturb, guidance),
                                        "callback_on_step_end_tensor_inputs": ["latents", "prompt_embeds"]}
    with conditioned_encode_prompt(pipe, condition) if condition is not None else contextlib.nullcontext(pipe):
        images = pipe(prompt=_prompts(prompts), num_inference_steps=steps, guidance_scale=guidance,
                      generator=generator, output_type="pt", **hooks).images
    return images.float().cpu().clamp(0, 1)


def trajectory_callback(perturb: Callable, guidance: float) -> Callable:
    """A diffusers ``callback_on_step_end`` that hands the latents step ``i`` produced, which are the
    input x_t of step ``i + 1``, to ``perturb`` with that step's ``SamplerStep``: a differentiable
    predictor of the guided noise the UNet will estimate (the pipeline's own prompt states and
    guidance) and the noise std sqrt(1 - alpha_bar_t) of its timestep."""
    from bench.base import SamplerStep

    def callback(pipe, i: int, timestep, tensors: dict) -> dict:
        timesteps = pipe.scheduler.timesteps
        if i + 1 >= len(timesteps):
            return {}
        following, states = timesteps[i + 1], tensors["prompt_embeds"]
        guided = pipe.do_classifier_free_guidance

        def predict_noise(latents: torch.Tensor) -> torch.Tensor:
            inputs = pipe.scheduler.scale_model_input(torch.cat([latents] * 2) if guided else latents, following)
            noise = pipe.unet(inputs, following, encoder_hidden_states=states).sample
            if not guided:
                return noise
            unconditional, conditional = noise.chunk(2)
            return unconditional + guidance * (conditional - unconditional)

        noise_std = float((1 - pipe.scheduler.alphas_cumprod[int(following)]).sqrt())
        return {"latents": perturb(tensors["latents"], i + 1, len(timesteps), SamplerStep(predict_noise, noise_std))}

    return callback


@torch.no_grad()
def edit(pipe, images: torch.Tensor, prompts: str | list[str], strength: float = DEFAULT_STRENGTH,
         steps: int = DEFAULT_STEPS, guidance: float = DEFAULT_GUIDANCE, seed: int = 0) -> torch.Tensor:
    """SD img2img: noise the encoded images to ``strength`` of the schedule (so about strength x steps
    denoising steps run) and denoise them toward the prompts; images in and out (N, 3, H, W) in [0, 1]."""
    prompts = _prompts(prompts)
    if images.ndim != 4 or images.shape[1] != 3 or len(images) != len(prompts):
        raise BenchError(f"edit: need images (N, 3, H, W) and N prompts, got {tuple(images.shape)} and "
                         f"{len(prompts)} prompts")
    if images.min() < 0 or images.max() > 1:
        raise BenchError("edit: images must lie in [0, 1]; divide 8-bit images by 255")
    if not 0 < strength <= 1:
        raise BenchError(f"edit: strength={strength} must lie in (0, 1]")
    generator = torch.Generator().manual_seed(seed)
    edited = pipe(prompt=prompts, image=images.float(), strength=strength, num_inference_steps=steps,
                  guidance_scale=guidance, generator=generator, output_type="pt").images
    return edited.float().cpu().clamp(0, 1)

