"""Every registered plugin, as lazy ``module:Class`` entries (listing them imports nothing heavy)."""

from __future__ import annotations

from bench.registry import Registry

ATTACKS: Registry = Registry("attack", "bench.base:Attack")
DEFENSES: Registry = Registry("defense", "bench.base:Model")
METRICS: Registry = Registry("metric", "bench.base:Metric")
SCENARIOS: Registry = Registry("scenario", "bench.base:Scenario")

ATTACKS.register("none", "attacks.none:NoAttack", "the clean images (the fidelity row)")
ATTACKS.register("noise", "attacks.noise:UniformNoise", "uniform noise in the L-inf ball (control)")
ATTACKS.register("pgd-encoder", "attacks.pgd_encoder:PGDEncoder",
                 "SRL-VAE eq. 5: PGD maximising MSE + lambda*LPIPS of the reconstruction")
ATTACKS.register("photoguard", "attacks.photoguard:PhotoGuard",
                 "PhotoGuard encoder attack: PGD pulling E(x') toward a target latent (zero)")
ATTACKS.register("photoguard-diffusion", "attacks.photoguard:PhotoGuard",
                 "PhotoGuard diffusion attack: PGD through a few img2img denoising steps",
                 preset={"variant": "diffusion", "eps": 0.05, "step_size": 0.003, "steps": 200})
ATTACKS.register("mist", "attacks.mist:Mist", "MIST: textural + semantic (AdvDM) losses, fused by default")
ATTACKS.register("glaze-like", "attacks.glaze_like:GlazeLike",
                 "open Glaze approximation: latent pulled to a style-shifted target under an LPIPS penalty")
ATTACKS.register("typo", "attacks.typo:Typo", "prompts: seeded character substitutions (control; rate / edits)")
ATTACKS.register("typos", "attacks.typos:Typos",
                 "prompts: seeded typos (swap/delete/insert/substitute/duplicate/case) on content words; edits / rate")
ATTACKS.register("typos-adaptive", "attacks.typos_adaptive:AdaptiveTypos",
                 "prompts: typos chosen by greedy/beam search maximising the MiniLM token-state shift")
ATTACKS.register("dirty-label", "attacks.dirty_label:DirtyLabel",
                 "training data: target-class images captioned as the source class (control; count / ratio)")
ATTACKS.register("nightshade", "attacks.nightshade:Nightshade",
                 "training data: Nightshade (release opt.py): source images pulled to an anchor's latent; count / eps")

ATTACKS.register("sampling-noise", "attacks.sampling_noise:SamplingNoise",
                 "sampling: Gaussian noise of std scale added to x_t at each attacked sampler step (VE-loss)")
ATTACKS.register("aelif-probe", "attacks.aelif_probe:AELIFProbe",
                 "conditioning: AELIF's mask / noise_conv on the prompt's token states at inference; p")
ATTACKS.register("sampling-pgd", "attacks.sampling_pgd:SamplingPGD",
                 "sampling: L-inf sign step / PGD on x_t maximising the denoiser's loss at the perturbed x_t")
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
DEFENSES.register("jpeg", "defenses.jpeg:JPEGPurifier", "JPEG (quality 75) before the wrapped VAE (model: vae-kl)")
DEFENSES.register("gaussian-noise", "defenses.gaussian_noise:GaussianNoisePurifier",
                  "Gaussian noise (sigma 0.05) before the wrapped VAE")
DEFENSES.register("rescale", "defenses.rescale:RescalePurifier", "down- and up-scaling by 2 (bicubic) before the wrapped VAE")
DEFENSES.register("impress", "defenses.impress:ImpressPurifier",
                  "IMPRESS consistency purification (x ~ D(E(x)) under an LPIPS bound) before the wrapped VAE")
DEFENSES.register("ddpm", "defenses.ddpm:PixelDDPM",
                  "denoiser: a pixel DDPM (zoo ddpm-pixel or a folder in its layout): training loss, DDIM sampler")
DEFENSES.register("t2i", "defenses.t2i:StableDiffusionModel",
                  "text-to-image: a Stable Diffusion pipeline (ldm-t2i, a hub id or a folder): generate, img2img edit")
DEFENSES.register("aelif", "defenses.aelif:AELIF",
                  "text-to-image: ldm-t2i-v2 fine-tuned with AELIF's token-state mask / noise_conv (in the cell)")
DEFENSES.register("aelif-none", "defenses.aelif:AELIF",
                  "text-to-image: aelif's fine-tune (data, steps, seed) without the augmentation: its baseline",
                  preset={"augmentation": "none"})

METRICS.register("psnr", "bench.metrics.psnr:PSNR", "peak signal-to-noise ratio, dB (torchmetrics)")
METRICS.register("ssim", "bench.metrics.ssim:SSIM", "structural similarity (torchmetrics)")
METRICS.register("lpips", "bench.metrics.lpips:LPIPS", "LPIPS v0.1, real AlexNet/VGG weights")
METRICS.register("fid", "bench.metrics.fid:FID", "Frechet Inception Distance, real FID Inception")
METRICS.register("kid", "bench.metrics.kid:KID", "Kernel Inception Distance, real FID Inception")
METRICS.register("clip-score", "bench.metrics.clip_score:ClipScore", "image-caption CLIP cosine x 100, clamped at 0")
METRICS.register("clip-sim", "bench.metrics.clip_sim:ClipSim", "cosine of the CLIP image embeddings of a pair")
METRICS.register("clip-w1", "bench.metrics.clip_w1:ClipW1",
                 "AELIF: 1-D W1 between the coordinate values of a pair's CLIP embeddings")
METRICS.register("clip-w1-raw", "bench.metrics.clip_w1_raw:ClipW1Raw",
                 "AELIF's W1 exactly as its code: clip-w1 on unnormalised CLIP image embeddings")
METRICS.register("clip-w1-nd", "bench.metrics.clip_w1_nd:ClipW1ND",
                 "AELIF: scipy wasserstein_distance_nd between two sets of CLIP image embeddings")
METRICS.register("clip-w1-nd-prompt", "bench.metrics.clip_w1_nd_prompt:ClipW1NDPrompt",
                 "AELIF: clip-w1-nd per prompt across seeds (as its reference code), mean over prompts")
METRICS.register("clip-fd", "bench.metrics.clip_fd:ClipFD", "Frechet distance of two sets of CLIP embeddings")
METRICS.register("zero-shot", "bench.metrics.zero_shot:ZeroShot", "CLIP zero-shot accuracy against class names")
METRICS.register("zero-shot-unsure", "bench.metrics.zero_shot_unsure:ZeroShotUnsure",
                 "decoding failure: the CLIP zero-shot top-class probability is below a threshold (0.5)")

SCENARIOS.register("reconstruction", "bench.scenarios.reconstruction:Reconstruction",
                   "attacked images through the autoencoder: fidelity to x and to D(E(x)), latent shift")
SCENARIOS.register("img2img-edit", "bench.scenarios.img2img_edit:Img2ImgEdit",
                   "clean and protected images edited alike (SD img2img, strength 0.5): do the edits differ?")
SCENARIOS.register("poisoning", "bench.scenarios.poisoning:Poisoning",
                   "text-to-image fine-tuned on clean + poisoned pairs through the defense's autoencoder: attack success")
SCENARIOS.register("toy", "bench.scenarios.toy:ToyClassifier",
                   "every attack surface through a nearest-class-mean classifier (plumbing checks, not a benchmark)")
SCENARIOS.register("prompt-robustness", "bench.scenarios.prompt_robustness:PromptRobustness",
                   "clean and perturbed prompts generated with the same seed: W1, CLIP similarity, accuracy ratio")
SCENARIOS.register("sampling-perturbation", "bench.scenarios.sampling_perturbation:SamplingPerturbation",
                   "text-to-image generation under a perturbed sampling trajectory: FID, accuracy, decoding failure")
SCENARIOS.register("corrupted-training", "bench.scenarios.corrupted_training:CorruptedTraining",
                   "a denoiser's samples against clean images: FID, KID, class mix (models trained on corrupted data)")
SCENARIOS.register("sampling-attack", "bench.scenarios.sampling_attack:SamplingAttackScenario",
                   "a pixel denoiser sampling under a perturbed trajectory: FID, class mix, change from its unperturbed twin")

REGISTRIES = {"attacks": ATTACKS, "defenses": DEFENSES, "metrics": METRICS, "scenarios": SCENARIOS}
