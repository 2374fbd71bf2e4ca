"""``bench train-denoiser OUT``: the ``ddpm`` recipe (``bench.zoo.train_ddpm.DDPM_CPU``) with your own
corrupted training set and Robustadv regulariser, trained into a folder that any grid can name
(``{name: ddpm, model: OUT}``). The zoo's track models are fixed recipes (``bench zoo train NAME``);
this is for the variants a study needs (another sigma or share of corrupted images, another radius
schedule or lambda). The folder gets ``unet/``, ``scheduler/`` and ``training.json`` (the config, the
training set's hash, the loss curve, the seconds); a killed training resumes from its checkpoint.

    bench train-denoiser runs/ddpm-c60 --percent 60 --sigma 0.05 --steps 3000
    bench train-denoiser runs/radv-r0.5 --percent 90 --sigma 0.05 --regulariser equivariant --radius-scale 0.5
    bench train-denoiser runs/ft --init-from ddpm-c90-s0.05 --percent 90 --sigma 0.05 --regulariser equivariant --steps 500

``--init-from`` fine-tunes (the paper's cheaper variant adds the regulariser only for the last epochs).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from bench.errors import BenchError, check_output_folder

TRAINING_FILE = "training.json"


def config_from(args: argparse.Namespace):
    from bench.corrupted_data import CorruptionConfig
    from bench.zoo.robustadv import RegulariserConfig
    from bench.zoo.train_ddpm import DDPM_CPU

    if args.steps < 1 or args.warmup_steps < 1:
        raise BenchError(f"--steps and --warmup-steps must be at least 1, got {args.steps} and {args.warmup_steps}")
    init_from = ""
    if args.init_from:
        from defenses.ddpm import resolve_denoiser_folder

        init_from = str(resolve_denoiser_folder(args.init_from))
    regulariser = RegulariserConfig(kind=args.regulariser, perturbation=args.perturbation, weight=args.weight,
                                    rho=args.rho, radius_scale=args.radius_scale, bias_min=args.bias_min / 255,
                                    bias_max=(args.bias_max if args.bias_max is not None else args.bias_min) / 255)
    return replace(DDPM_CPU, seed=args.seed, steps=args.steps, max_seconds=args.max_seconds, regulariser=regulariser,
                   corruption=CorruptionConfig(args.percent, args.sigma, args.corruption_seed), init_from=init_from,
                   warmup_steps=args.warmup_steps)


def cmd_train_denoiser(args: argparse.Namespace) -> int:
    from bench.store import atomic_write_json
    from bench.zoo.robustadv import check
    from bench.zoo.train_ddpm import SCHEDULER_KWARGS, train_ddpm_pixel

    check_output_folder(args.out, "OUT")
    config = config_from(args)
    from diffusers import DDPMScheduler

    check(config.regulariser, DDPMScheduler(**SCHEDULER_KWARGS).alphas_cumprod)
    output = Path(args.out).expanduser()
    info = train_ddpm_pixel(output, config, quiet=args.quiet, device=args.device)
    atomic_write_json(output / TRAINING_FILE, info)
    print(json.dumps({key: info[key] for key in ("steps_completed", "train_seconds", "training_data")}, indent=2))
    return 0


def add_train_denoiser_command(sub) -> None:
    parser = sub.add_parser("train-denoiser", help="train the ddpm recipe on a corrupted set and/or with Robustadv's "
                                                   "regulariser into a folder")
    parser.add_argument("out", help="the model folder to write (unet/, scheduler/, training.json)")
    parser.add_argument("--percent", type=float, default=0.0, help="share of training images corrupted, in %% [0, 100]")
    parser.add_argument("--sigma", type=float, default=0.0, help="std of their Gaussian noise, in [0, 1] pixels")
    parser.add_argument("--corruption-seed", type=int, default=0)
    parser.add_argument("--regulariser", default="none", help="none, equivariant or invariant (the ablation)")
    parser.add_argument("--perturbation", default="adversarial", help="adversarial (one FGSM step) or random")
    parser.add_argument("--weight", type=float, default=0.3, help="lambda")
    parser.add_argument("--rho", type=float, default=2.0, help="r(t) = scale (1 - abar_t)^(rho/2) + b")
    parser.add_argument("--radius-scale", type=float, default=1.0)
    parser.add_argument("--bias-min", type=float, default=8.0, help="b's lower end, in 1/255")
    parser.add_argument("--bias-max", type=float, default=None, help="b's upper end, in 1/255 (default: bias-min)")
    parser.add_argument("--steps", type=int, default=12136, help="training steps (the track's: 12,136)")
    parser.add_argument("--warmup-steps", type=int, default=500, help="learning-rate warm-up (the recipe's: 500)")
    parser.add_argument("--init-from", help="fine-tune: start from this denoiser (zoo name or folder); the optimiser "
                                            "and the EMA start afresh")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=0.0, help="stop and save after this long (0: no limit)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS)
    parser.set_defaults(func=cmd_train_denoiser)
