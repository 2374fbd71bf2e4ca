"""Every registered plugin, as lazy ``module:Class`` entries (listing them imports nothing heavy)."""

from __future__ import annotations

from bench.registry import Registry

ATTACKS: Registry = Registry("attack", "bench.base:Attack")
DEFENSES: Registry = Registry("defense", "bench.base:Defense")
METRICS: Registry = Registry("metric", "bench.base:Metric")
SCENARIOS: Registry = Registry("scenario", "bench.base:Scenario")

ATTACKS.register("none", "attacks.none:NoAttack", "the clean images (the fidelity row)")
ATTACKS.register("noise", "attacks.noise:UniformNoise", "uniform noise in the L-inf ball (control)")
ATTACKS.register("pgd-encoder", "attacks.pgd_encoder:PGDEncoder",
                 "SRL-VAE eq. 5: PGD maximising MSE + lambda*LPIPS of the reconstruction")

DEFENSES.register("vae", "defenses.vae:AutoencoderKLDefense",
                  "any diffusers AutoencoderKL: zoo name, local folder or hub id (model: ...)")
DEFENSES.register("vae-kl", "defenses.vae:AutoencoderKLDefense",
                  "the zoo's baseline AutoencoderKL trained on Fashion-MNIST", preset={"model": "vae-kl"})
DEFENSES.register("srl-vae", "defenses.vae:AutoencoderKLDefense",
                  "SRL-VAE (alpha 0.01): vae-kl's encoder adversarially fine-tuned", preset={"model": "srl-vae"})
DEFENSES.register("srl-vae-a0.1", "defenses.vae:AutoencoderKLDefense",
                  "SRL-VAE with originality weight alpha 0.1 (Table 4 sweep)", preset={"model": "srl-vae-a0.1"})
DEFENSES.register("srl-vae-a0.001", "defenses.vae:AutoencoderKLDefense",
                  "SRL-VAE with originality weight alpha 0.001 (Table 4 sweep)", preset={"model": "srl-vae-a0.001"})

METRICS.register("psnr", "bench.metrics.psnr:PSNR", "peak signal-to-noise ratio, dB (torchmetrics)")
METRICS.register("ssim", "bench.metrics.ssim:SSIM", "structural similarity (torchmetrics)")
METRICS.register("lpips", "bench.metrics.lpips:LPIPS", "LPIPS v0.1, real AlexNet/VGG weights")
METRICS.register("fid", "bench.metrics.fid:FID", "Frechet Inception Distance, real FID Inception")
METRICS.register("kid", "bench.metrics.kid:KID", "Kernel Inception Distance, real FID Inception")
METRICS.register("clip-score", "bench.metrics.clip_score:ClipScore", "image-caption CLIP cosine x 100, clamped at 0")
METRICS.register("clip-sim", "bench.metrics.clip_sim:ClipSim", "cosine of the CLIP image embeddings of a pair")
METRICS.register("clip-w1", "bench.metrics.clip_w1:ClipW1",
                 "AELIF: 1-D W1 between the coordinate values of a pair's CLIP embeddings")
METRICS.register("clip-fd", "bench.metrics.clip_fd:ClipFD", "Frechet distance of two sets of CLIP embeddings")
METRICS.register("zero-shot", "bench.metrics.zero_shot:ZeroShot", "CLIP zero-shot accuracy against class names")

SCENARIOS.register("reconstruction", "bench.scenarios.reconstruction:Reconstruction",
                   "attacked images through the autoencoder: fidelity to x and to D(E(x)), latent shift")

REGISTRIES = {"attacks": ATTACKS, "defenses": DEFENSES, "metrics": METRICS, "scenarios": SCENARIOS}
