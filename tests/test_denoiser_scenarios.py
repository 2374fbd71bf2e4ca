"""Issue 14's scenarios on tiny seeded pixel denoisers: the DDIM loop that a sampling attack hooks into
draws what diffusers' pipeline draws, shows the attack x_t in [0, 1] pixel units, and the scenarios
``corrupted-training`` and ``sampling-attack`` measure samples, resume, and refuse what they cannot do."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from diffusers import DDIMScheduler

from bench.errors import BenchError
from bench.plugins import ATTACKS
from bench.runner import Runner, RunOptions
from bench.zoo.train_ddpm import SCHEDULER_KWARGS, ddim_loop, load_ddpm_pipeline, sample


def attack(name: str, **params):
    cls = ATTACKS.get(name)
    return cls(cls.make_config(params))


def test_the_hookable_loop_draws_what_the_diffusers_pipeline_draws(tiny_ddpm_dir):
    pipe = load_ddpm_pipeline(tiny_ddpm_dir)
    expected = pipe(batch_size=3, generator=torch.Generator().manual_seed(7), num_inference_steps=5, eta=0.0,
                    use_clipped_model_output=True, output_type="pt").images
    ours = ddim_loop(pipe.unet, pipe.scheduler, 3, torch.Generator().manual_seed(7), 5)
    assert torch.allclose(ours, expected, atol=1e-6)


def test_the_attack_sees_x_t_in_pixel_units(tiny_ddpm_dir):
    pipe = load_ddpm_pipeline(tiny_ddpm_dir)
    seen = []

    def record(half, position, steps, step):
        seen.append((half.clone(), position, steps, step))
        return half

    ddim_loop(pipe.unet, pipe.scheduler, 2, torch.Generator().manual_seed(0), 4, record)
    plain = []
    ddim_loop(pipe.unet, pipe.scheduler, 2, torch.Generator().manual_seed(0), 4,
              lambda x, position, steps, step: plain.append(x.clone()) or x)
    assert [position for _, position, _, _ in seen] == [0, 1, 2, 3] and seen[0][2] == 4
    half, _, _, step = seen[2]
    t = pipe.scheduler.timesteps[2]
    assert step.noise_std == pytest.approx(float((1 - pipe.scheduler.alphas_cumprod[t]).sqrt()) / 2)
    with torch.no_grad():
        assert torch.allclose(step.predict_noise(half), pipe.unet(half * 2, t).sample, atol=1e-5)
    assert torch.allclose(seen[0][0], torch.randn((2, 3, 32, 32), generator=torch.Generator().manual_seed(0)) / 2)


class ExactOneImage(torch.nn.Module):
    """The exact noise predictor of a one-image distribution: equivariant (a shift d of x_t is read as
    d / sqrt(1 - abar_t) more noise), so the loss objective of ``sampling-pgd`` has nothing to climb,
    in the right units only."""

    def __init__(self):
        super().__init__()
        self.register_buffer("image", torch.linspace(-1, 1, 3 * 8 * 8).view(3, 8, 8))
        self.register_buffer("alphas", DDIMScheduler(**SCHEDULER_KWARGS).alphas_cumprod)
        self.config = type("Config", (), {"in_channels": 3, "sample_size": 8})()

    @property
    def device(self):
        return self.image.device

    @property
    def dtype(self):
        return self.image.dtype

    def forward(self, x, t):
        a = self.alphas[int(t)]
        return type("Out", (), {"sample": (x - a.sqrt() * self.image) / (1 - a).sqrt()})()


def test_the_pixel_unit_view_reads_a_shift_as_noise_for_an_equivariant_denoiser():
    """An exact predictor reads a shift d of x_t as d / noise_std more noise, so the loss objective of
    ``sampling-pgd`` (which assumes that ratio) is 0 wherever the attack moves, in consistent units only."""
    model, scheduler = ExactOneImage(), DDIMScheduler(**SCHEDULER_KWARGS, clip_sample=True)
    residuals, moves = [], []

    def hook(x, position, steps, step):
        out = attack("sampling-pgd", scale=0.05).perturb_latents(x, step, torch.Generator().manual_seed(position))
        with torch.no_grad():
            shift = step.predict_noise(out) - step.predict_noise(x)
        residuals.append((shift - (out - x) / step.noise_std).abs().max().item())
        moves.append((out - x).abs().max().item())
        return out

    ddim_loop(model, scheduler, 2, torch.Generator().manual_seed(0), 6, hook)
    assert len(residuals) == 6 and max(residuals) < 1e-3 and min(moves) > 0.049


def grid(tmp_path, folder, scenario, attacks, **extra):
    spec = {"name": f"{scenario}-test", "seed": 0, "batch_size": 3, "data": {"n": 6}, "scenario": scenario,
            "metrics": ["kid"], "defenses": [{"name": "ddpm", "model": str(folder), "steps": 3}],
            "attacks": attacks, **extra}
    path = tmp_path / f"{scenario}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_corrupted_training_measures_samples_and_refuses_an_attack(tmp_path, tiny_ddpm_dir, cells_by_scale):
    path = grid(tmp_path, tiny_ddpm_dir, "corrupted-training", ["none"])
    Runner(tmp_path / "run", RunOptions(quiet=True)).run_grid(path)
    (summary, samples), = cells_by_scale(tmp_path / "run").values()
    metrics = summary["metrics"]
    assert {"kid", "largest_class_share", "class_entropy"} <= set(metrics) and "predicted_class" not in metrics
    shares = samples["predicted_class"].value_counts(normalize=True)
    assert metrics["largest_class_share"]["value"] == pytest.approx(shares.max())
    assert metrics["largest_class_share"]["higher_is_better"] is False and metrics["class_entropy"]["higher_is_better"]
    assert 0 <= metrics["class_entropy"]["value"] <= 1 and len(samples) == 6
    bad = grid(tmp_path, tiny_ddpm_dir, "corrupted-training", [{"name": "noise", "eps": 0.03}])
    with pytest.raises(BenchError, match="attack must be none"):
        Runner(tmp_path / "bad", RunOptions(quiet=True)).run_grid(bad)
    assert not (tmp_path / "bad" / "cells").exists() or not any((tmp_path / "bad" / "cells").iterdir())


def test_the_sampling_attack_changes_samples_only_above_scale_zero_and_resumes(tmp_path, tiny_ddpm_dir,
                                                                             kill_after_saving, cells_by_scale):
    path = grid(tmp_path, tiny_ddpm_dir, "sampling-attack", ["sampling-noise", {"name": "sampling-pgd", "iterations": 2}],
                scale=[0.0, 0.2])
    Runner(tmp_path / "straight", RunOptions(quiet=True)).run_grid(path)
    cells = cells_by_scale(tmp_path / "straight")
    assert len(cells) == 4
    for name in ("sampling-noise", "sampling-pgd"):
        assert (cells[(name, 0.0)][1]["lpips_to_unperturbed"] == 0).all()
        assert (cells[(name, 0.2)][1]["lpips_to_unperturbed"] > 0).all()
        assert cells[(name, 0.2)][0]["metrics"]["lpips_to_unperturbed"]["higher_is_better"] is False
    assert cells[("sampling-noise", 0.0)][1].equals(cells[("sampling-pgd", 0.0)][1])
    clean, attacked = cells[("sampling-noise", 0.0)][0]["metrics"], cells[("sampling-pgd", 0.2)][0]["metrics"]
    assert clean["kid"]["value"] == pytest.approx(clean["unperturbed_kid"]["value"])
    assert attacked["unperturbed_kid"] == clean["unperturbed_kid"] and attacked["kid"] != clean["kid"]

    kill_after_saving(1)
    with pytest.raises(KeyboardInterrupt):
        Runner(tmp_path / "killed", RunOptions(quiet=True)).run_grid(path)
    kill_after_saving(None)
    Runner(tmp_path / "killed", RunOptions(quiet=True)).run_grid(path)
    for key, (summary, samples) in cells_by_scale(tmp_path / "killed").items():
        assert samples.equals(cells[key][1]) and summary["metrics"] == cells[key][0]["metrics"]


def test_the_denoiser_sample_takes_a_hook_and_stays_deterministic(tiny_ddpm_dir):
    pipe = load_ddpm_pipeline(tiny_ddpm_dir)
    first = sample(pipe, 2, steps=3, seed=1)
    assert torch.equal(first, sample(pipe, 2, steps=3, seed=1))
    assert not torch.equal(first, sample(pipe, 2, steps=3, seed=1, perturb=attack("sampling-noise", scale=0.1).hook(0)))


def test_train_denoiser_writes_a_folder_that_records_its_corrupted_set(tmp_path):
    from bench.cli import main
    from bench.scenarios.corrupted_training import training_data_text
    from defenses.ddpm import DDPMConfig, PixelDDPM

    out = tmp_path / "model"
    assert main(["--quiet", "train-denoiser", str(out), "--percent", "50", "--sigma", "0.1", "--steps", "2",
                 "--regulariser", "equivariant", "--perturbation", "random"]) == 0
    record = json.loads((out / "training.json").read_text())
    assert record["training_data"]["corrupted"] == 27500 and record["steps_completed"] == 2
    assert record["regulariser"]["kind"] == "equivariant" and record["corruption"]["sigma"] == 0.1
    text = training_data_text(PixelDDPM(DDPMConfig(model=str(out), steps=2)))
    assert text.startswith("27500 of 55000 noised, sigma 0.1") and record["training_data"]["sha256"][:16] in text
    tuned = tmp_path / "tuned"
    assert main(["--quiet", "train-denoiser", str(tuned), "--init-from", str(out), "--steps", "1",
                 "--warmup-steps", "1"]) == 0
    assert json.loads((tuned / "training.json").read_text())["init_from"] == str(out.resolve())


@pytest.mark.parametrize("arguments, message", [(["--percent", "101"], "percent=101"),
                                                (["--init-from", "no-such-model"], "neither a zoo model"),
                                                (["--sigma", "-1"], "sigma=-1"),
                                                (["--regulariser", "equivariant", "--radius-scale", "-1"], "negative"),
                                                (["--perturbation", "pgd"], "perturbation 'pgd'")])
def test_train_denoiser_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path, capsys, arguments, message):
    from bench.cli import main

    assert main(["train-denoiser", str(tmp_path / "model"), *arguments]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "model").exists()
