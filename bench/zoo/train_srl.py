"""Train the zoo's ``srl-vae``: Smooth Robust Latent VAE (Lee et al. 2025, "Enhancing Variational
Autoencoders with Smooth Robust Latent Encoding", ``../shared/papers/srl-vae.txt``) applied to
``vae-kl`` as a post-training step.

Per batch, the inner maximisation of eq. 5 (L-inf PGD on ``MSE + lambda * LPIPS`` of the
reconstruction, the suite's ``pgd-encoder`` attack run against the encoder being trained) gives
``x_adv``; the encoder then minimises eq. 6,

    alpha * L_orig(x) + MSE(D(E(x_adv)), x) + lambda * LPIPS(D(E(x_adv)), x),
    L_orig(x) = ||mu - mu_0||^2 + ||log sigma^2 - log sigma_0^2||^2        (eq. 7)

against the frozen original encoder (mu_0, sigma_0). Only the encoder (and its ``quant_conv``) is
trained; the decoder stays frozen so the latent diffusion model built on ``vae-kl`` still fits.
Defaults are the paper's Table 5: batch 20, 5,000 steps, AdamW lr 1e-4, eps 8/255, 10 PGD steps of
0.02, alpha 0.01. The paper names LPIPS on VGG and does not state lambda; 1.0 is used, as in the
attack. ``E`` is the posterior mean, as in the attack. ``||.||^2`` sums over latent elements and is
averaged over the batch, as the paper writes it; MSE is the mean over pixels in [0, 1].

``init_from`` continues an earlier run: the encoder starts from that file's (or folder's)
``encoder.*`` / ``quant_conv.*`` weights, while the originality reference and the decoder remain
``base``; the optimiser state starts afresh. ``max_seconds`` stops early; ``steps_completed`` says
where. The loop is ``bench.training.TrainingLoop``; ``checkpoint_every`` saves a checkpoint that a
killed training of the same config resumes from (``bench.training``).
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from bench.data import load_fashion_mnist
from bench.metrics.lpips import lpips_distance
from bench.training import TrainingLoop
from bench.zoo.training import checkpoint_folder, publish_folder


@dataclass(frozen=True)
class SRLTrainConfig:
    seed: int = 0
    base: str = "vae-kl"
    steps: int = 5000
    batch_size: int = 20
    learning_rate: float = 1e-4
    eps: float = 8 / 255
    pgd_steps: int = 10
    pgd_step_size: float = 0.02
    alpha: float = 0.01
    lpips_weight: float = 1.0
    lpips_net: str = "vgg"
    train_images: int = 0
    log_every: int = 250
    max_seconds: float = 0.0
    init_from: str = ""
    checkpoint_every: int = 0


class _EncoderUnderTraining:
    """The encode/decode interface the PGD attack expects, over the VAE being trained."""

    def __init__(self, vae):
        self.vae = vae

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(images * 2 - 1).latent_dist.mean

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return ((self.vae.decode(latents).sample + 1) / 2).clamp(0, 1)


def load_encoder_weights(vae, source: Path) -> None:
    """Load the ``encoder.*`` and ``quant_conv.*`` tensors of a safetensors file or diffusers folder."""
    from safetensors.torch import load_file

    path = source / "diffusion_pytorch_model.safetensors" if source.is_dir() else source
    weights = {k: v for k, v in load_file(str(path)).items() if k.startswith(("encoder.", "quant_conv."))}
    expected = {k for k in vae.state_dict() if k.startswith(("encoder.", "quant_conv."))}
    if set(weights) != expected:
        raise ValueError(f"{path} does not hold exactly the encoder of a {type(vae).__name__} like the base")
    vae.load_state_dict(weights, strict=False)


def originality_loss(posterior, original) -> torch.Tensor:
    """Eq. 7 per image: squared L2 distance of the means plus of the log-variances."""
    mean_term = (posterior.mean - original.mean).pow(2).flatten(1).sum(1)
    logvar_term = (posterior.logvar - original.logvar).pow(2).flatten(1).sum(1)
    return mean_term + logvar_term


def train_srl_vae(output: Path, config: SRLTrainConfig = SRLTrainConfig(), quiet: bool = False,
                  device: str = "cpu") -> dict:
    from attacks.pgd_encoder import PGDEncoder
    from defenses.vae import load_autoencoder

    torch.manual_seed(config.seed)
    start = time.time()
    train = load_fashion_mnist("train", config.train_images or None).images
    vae, _ = load_autoencoder(config.base)
    vae.to(device).train()
    original = copy.deepcopy(vae.encoder).requires_grad_(False).eval()
    original_quant = copy.deepcopy(vae.quant_conv).requires_grad_(False).eval()
    if config.init_from:
        load_encoder_weights(vae, Path(config.init_from))
    vae.decoder.requires_grad_(False)
    vae.post_quant_conv.requires_grad_(False)
    trainable = [*vae.encoder.parameters(), *vae.quant_conv.parameters()]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate)
    attack = PGDEncoder(PGDEncoder.make_config({"eps": config.eps, "steps": config.pgd_steps,
                                                "step_size": config.pgd_step_size,
                                                "lpips_weight": config.lpips_weight, "lpips_net": config.lpips_net}))
    model = _EncoderUnderTraining(vae)

    def step(indices: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

        x = train[indices].to(device)
        with torch.enable_grad():
            x_adv = attack.perturb(model, x, generator).detach()
        posterior = vae.encode(x * 2 - 1).latent_dist
        with torch.no_grad():
            reference = DiagonalGaussianDistribution(original_quant(original(x * 2 - 1)))
        orig = originality_loss(posterior, reference).mean()
        reconstruction = model.decode(model.encode(x_adv))
        mse = (reconstruction - x).pow(2).mean()
        perceptual = lpips_distance(reconstruction, x, config.lpips_net).mean()
        loss = config.alpha * orig + mse + config.lpips_weight * perceptual
        return {"loss": loss, "originality": orig, "mse_adv": mse, "lpips_adv": perceptual}

    def progress(completed: int, mean: list[float], seconds: float) -> None:
        if not quiet:
            print(f"srl alpha={config.alpha} step {completed}/{config.steps} loss {mean[0]:.4f} "
                  f"orig {mean[1]:.3f} mse {mean[2]:.5f} lpips {mean[3]:.4f} {seconds:.0f}s", flush=True)

    checkpoint = checkpoint_folder(output, config) if config.checkpoint_every else None
    result = TrainingLoop(vae, optimizer, config.steps, config.seed, len(train), config.batch_size,
                          log_every=config.log_every, max_seconds=config.max_seconds, started=start, on_log=progress,
                          checkpoint=checkpoint, checkpoint_every=config.checkpoint_every).run(step)

    vae.eval().to("cpu")

    def write(folder: Path) -> None:
        vae.save_pretrained(folder, safe_serialization=True)
        config_file = folder / "config.json"
        saved = json.loads(config_file.read_text())
        saved.pop("_name_or_path", None)  # the machine-specific folder it was loaded from
        config_file.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")

    publish_folder(output, write)
    info = asdict(config)
    if checkpoint is not None:
        shutil.rmtree(checkpoint, ignore_errors=True)
    info.update(loss_curve_columns=["step", "loss", "originality", "mse_adv", "lpips_adv"], loss_curve=result.curve,
                steps_completed=result.steps_completed, trained_parameters=sum(p.numel() for p in trainable), device=str(device),
                train_seconds=round(result.seconds))  # the loop's time over every leg, resumed ones included
    return info
