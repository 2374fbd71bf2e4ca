"""Issue 13's sampling surface on tiny seeded models: the sampling attacks perturb x_t of the steps
their config selects (Gaussian noise; PGD inside the L-inf ball of its scale, more harmful than noise
of the same size), the sampling-perturbation scenario measures generations and the decoder-side check,
resumes after a kill, and bad scales are refused with one line."""

from __future__ import annotations

import pytest
import torch
import yaml

from bench.errors import BenchError
from bench.plugins import ATTACKS, DEFENSES
from bench.runner import Runner, RunOptions


def attack(name: str, **params):
    cls = ATTACKS.get(name)
    return cls(cls.make_config(params))


@pytest.mark.parametrize("params", [{"scale": -0.1}, {"scale": float("nan")}, {"scale": float("inf")},
                                    {"start": 0.6, "stop": 0.5}, {"stop": 1.5}])
@pytest.mark.parametrize("name", ["sampling-noise", "sampling-pgd"])
def test_a_bad_scale_or_step_range_is_refused(name, params):
    with pytest.raises(BenchError, match="scale|start"):
        attack(name, **params)
    with pytest.raises(BenchError, match="objective"):
        attack("sampling-pgd", objective="x")


def test_only_the_selected_steps_are_perturbed():
    hook = attack("sampling-noise", scale=1.0, start=0.5).hook(seed=0)
    latents = torch.zeros(2, 4, 8, 8)  # noise needs no SamplerStep: None stands in
    moved = [position for position in range(10) if not torch.equal(hook(latents, position, 10, None), latents)]
    assert moved == [5, 6, 7, 8, 9]
    assert torch.equal(attack("sampling-noise", scale=0.0).hook(0)(latents, 3, 10, None), latents)


def test_noise_has_the_scale_as_its_std_and_is_seeded():
    latents = torch.zeros(64, 4, 8, 8)
    first = attack("sampling-noise", scale=0.3).hook(seed=1)(latents, 1, 10, None)
    assert first.std().item() == pytest.approx(0.3, rel=0.05)
    assert torch.equal(first, attack("sampling-noise", scale=0.3).hook(seed=1)(latents, 1, 10, None))


@pytest.mark.parametrize("objective", ["loss", "deviation"])
def test_pgd_stays_in_its_ball_and_beats_noise_of_the_same_size_on_its_objective(objective):
    from bench.base import SamplerStep

    torch.manual_seed(0)
    weight = torch.randn(16, 16)

    def predict(x):  # a smooth nonlinear denoiser stand-in
        return torch.tanh(x.flatten(1) @ weight).view_as(x) * 3

    step = SamplerStep(predict, noise_std=0.5)
    shift = 2.0 if objective == "loss" else 0.0
    latents = torch.randn(8, 1, 4, 4)
    reference = predict(latents)

    def loss(delta):
        return (predict(latents + delta) - reference - shift * delta).pow(2).sum()

    for iterations in (1, 5):
        pgd = attack("sampling-pgd", scale=0.1, iterations=iterations, objective=objective)
        adversarial = pgd.hook(0)(latents, 1, 10, step)
        assert (adversarial - latents).abs().max() <= 0.1 + 1e-6
        if iterations == 1:  # a full sign step: the RMS of sampling-noise at the same scale
            assert torch.allclose((adversarial - latents).abs(), torch.full_like(latents, 0.1))
        signs = torch.randint(0, 2, latents.shape, generator=torch.Generator().manual_seed(1)) * 0.2 - 0.1
        assert loss(adversarial - latents) > 1.5 * loss(signs)


def test_an_equivariant_denoiser_has_no_loss_to_attack():
    """A denoiser that attributes any shift d of x_t to noise (d / sigma_t of it) has zero loss everywhere:
    the one-step attack's gradient is 0 and x_t stays; the deviation objective still moves it by scale."""
    from bench.base import SamplerStep

    latents, clean_noise = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    step = SamplerStep(lambda x: clean_noise + (x - latents) / 0.5, noise_std=0.5)
    unmoved = attack("sampling-pgd", scale=0.1).hook(0)(latents, 1, 10, step)
    assert torch.equal(unmoved, latents)
    moved = attack("sampling-pgd", scale=0.1, objective="deviation").hook(0)(latents, 1, 10, step)
    assert torch.allclose((moved - latents).abs(), torch.full_like(latents, 0.1))


def grid(tmp_path, tiny_sd_dir, **extra):
    spec = {"name": "sampling-test", "seed": 0, "batch_size": 4, "data": {"n": 8},
            "scenario": "sampling-perturbation", "metrics": ["zero-shot", "zero-shot-unsure", "clip-score", "kid"],
            "defenses": [{"name": "t2i", "pipeline": str(tiny_sd_dir), "steps": 4, "guidance": 3.0}],
            "attacks": [{"name": "sampling-noise"}, {"name": "sampling-pgd"}], "scale": [0.0, 2.0], **extra}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_the_scenario_measures_generations_and_the_decoder_check_and_resumes(tmp_path, tiny_sd_dir, kill_after_saving,
                                                                              cells_by_scale):
    path = grid(tmp_path, tiny_sd_dir)
    Runner(tmp_path / "straight", RunOptions(quiet=True)).run_grid(path)
    cells = cells_by_scale(tmp_path / "straight")
    assert len(cells) == 4
    clean_noise, clean_pgd = cells[("sampling-noise", 0.0)][1], cells[("sampling-pgd", 0.0)][1]
    assert clean_noise.equals(clean_pgd)  # scale 0 is the unperturbed generation for either attack
    noisy = cells[("sampling-noise", 2.0)][1]
    assert not noisy["latent_noise_psnr"].equals(clean_noise["latent_noise_psnr"])  # the tiny VAE decodes noise anyway
    assert (noisy["latent_noise_lpips"] >= 0).all() and set(noisy["zero-shot-unsure"]) <= {0.0, 1.0}
    summary = cells[("sampling-pgd", 2.0)][0]
    assert "kid" in summary["metrics"] and summary["metrics"]["zero-shot-unsure"]["higher_is_better"] is False
    # every row carries the unperturbed generation's scores: at scale 0 they are its own
    assert clean_noise["zero-shot"].equals(clean_noise["unperturbed_zero-shot"])
    assert noisy["unperturbed_clip-score"].equals(clean_noise["clip-score"])
    assert cells[("sampling-noise", 0.0)][0]["metrics"]["clip-score_ratio"]["value"] == pytest.approx(1)
    ratio = cells[("sampling-noise", 2.0)][0]["metrics"]["clip-score_ratio"]
    assert ratio["value"] == pytest.approx(noisy["clip-score"].mean() / noisy["unperturbed_clip-score"].mean())

    kill_after_saving(1)
    with pytest.raises(KeyboardInterrupt):
        Runner(tmp_path / "killed", RunOptions(quiet=True)).run_grid(path)
    kill_after_saving(None)
    Runner(tmp_path / "killed", RunOptions(quiet=True)).run_grid(path)
    resumed = cells_by_scale(tmp_path / "killed")
    for key, (summary, samples) in cells.items():
        assert resumed[key][1].equals(samples) and resumed[key][0]["metrics"] == summary["metrics"]


def test_generation_with_a_perturbation_differs_and_without_it_does_not(tiny_sd_dir):
    model = DEFENSES.get("t2i")(DEFENSES.get("t2i").make_config({"pipeline": str(tiny_sd_dir), "steps": 4}))
    prompts = ["a photo of a bag", "a photo of a coat"]
    plain = model.generate(prompts, seed=3)
    assert torch.equal(plain, model.generate(prompts, seed=3, perturb=attack("sampling-noise", scale=0.0).hook(3)))
    assert not torch.equal(plain, model.generate(prompts, seed=3, perturb=attack("sampling-pgd", scale=0.5).hook(3)))


@pytest.mark.parametrize("scale", [-0.5, ".nan"])
def test_the_cli_refuses_a_bad_scale_axis_in_one_line(tmp_path, tiny_sd_dir, capsys, scale):
    from bench.cli import main

    path = grid(tmp_path, tiny_sd_dir)
    path.write_text(path.read_text().replace("- 2.0", f"- {scale}"))
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "scale" in err[0]
    assert not (tmp_path / "run").exists()


def test_the_decoder_check_columns_are_read_as_their_metrics():
    from bench.columns import metric_base

    assert metric_base("latent_noise_lpips") == "lpips" and metric_base("latent_noise_psnr") == "psnr"
    assert metric_base("unperturbed_zero-shot") == "zero-shot"
