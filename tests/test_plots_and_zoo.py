"""``bench plot`` on a small finished run, and the zoo's sample grids and quality bars on tiny settings."""

import pytest
import yaml
from PIL import Image

from bench import zoo
from bench.errors import BenchError
from bench.runner import Runner, RunOptions


def test_plot_writes_damage_curves_and_examples(tmp_path, tiny_vae_dir):
    from bench.plots import plot_run

    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({
        "batch_size": 4, "data": {"n": 4}, "metrics": ["psnr", "lpips"],
        "defenses": [{"name": "vae", "model": str(tiny_vae_dir), "label": "tiny"},
                     {"name": "jpeg", "model": str(tiny_vae_dir)}],
        "attacks": ["none", {"name": "photoguard", "steps": 2}], "eps": [0.02, 0.06],
        "threat_models": ["transfer", "adaptive"], "transfer_source": {"name": "vae", "model": str(tiny_vae_dir)}}))
    Runner(tmp_path / "run", RunOptions(quiet=True)).run_grid(grid)
    written = plot_run(tmp_path / "run", tmp_path / "plots", ["psnr"])
    assert sorted(p.name for p in written) == ["damage-vs-eps-psnr.png", "examples.png"]
    for path in written:
        with Image.open(path) as image:
            assert image.size[0] > 200 and image.size[1] > 100


def test_plot_draws_a_poisoning_metric_against_the_poison_count(tmp_path, tiny_vae_dir, tiny_sd_dir):
    from bench.plots import count_points, plot_run

    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({
        "data": {"dataset": "fashion-mnist", "split": "train", "n": 40}, "metrics": ["zero-shot"],
        "scenarios": [{"name": "poisoning", "model": str(tiny_sd_dir), "steps": 2, "batch_size": 4, "generations": 4,
                       "other_generations": 1, "sampler_steps": 2}],
        "defenses": [{"name": "vae", "model": str(tiny_vae_dir)}],
        "attacks": [{"name": "dirty-label", "source": 1, "target": 8}], "count": [1, 3]}))
    summaries = Runner(tmp_path / "run", RunOptions(quiet=True)).run_grid(grid)
    [(key, points)] = count_points(summaries, "attack_success")["dirty-label"].items()
    assert key[0] == "vae" and [count for count, _ in points] == [0, 1, 3]
    by_count = {s["metrics"]["poisons"]["value"]: s["metrics"] for s in summaries}
    assert points[0][1]["value"] == by_count[1]["reference_attack_success"]["value"]
    assert [v["value"] for _, v in points[1:]] == [by_count[c]["attack_success"]["value"] for c in (1, 3)]
    written = plot_run(tmp_path / "run", tmp_path / "plots", ["attack_success"])
    assert [p.name for p in written] == ["damage-vs-count-attack_success.png"]  # one eps: no eps curve
    with Image.open(written[0]) as image:
        assert image.size[0] > 200 and image.size[1] > 100
    assert count_points(summaries[:1], "attack_success") == {}  # a single count is no curve


def test_plot_of_an_empty_folder_names_the_fix(tmp_path):
    from bench.plots import plot_run

    with pytest.raises(BenchError, match="bench run GRID"):
        plot_run(tmp_path)


@pytest.mark.parametrize("name", ["vae-kl", "clip-proxy"])
def test_zoo_show_writes_one_labelled_row_per_class(name, tmp_path):
    from bench.zoo.show import show

    path = show(name, tmp_path / f"{name}.png", per_class=4)
    with Image.open(path) as image:
        assert image.size[1] == 10 * 34


def test_zoo_show_draws_a_denoiser_folder_and_refuses_anything_else(tiny_ddpm_dir, tmp_path, monkeypatch):
    from bench.zoo import show as show_module

    monkeypatch.setattr(show_module, "_by_predicted_class", lambda images, k: [("all", images[:k])] * 10)
    path = show_module.show(str(tiny_ddpm_dir), tmp_path / "d.png", per_class=2)
    with Image.open(path) as image:
        assert image.size[1] == 10 * 34
    with pytest.raises(BenchError, match="neither in the model zoo"):
        show_module.show(str(tmp_path), tmp_path / "x.png")


@pytest.mark.slow
def test_zoo_eval_of_ldm_t2i_classifies_its_generations():
    from bench.zoo import evaluate

    result = evaluate.evaluate("ldm-t2i", 10)
    assert result["generations"] == 10 and 0 <= result["clip_proxy_accuracy"]["value"] <= 1
    assert set(result) >= {"fid", "kid", "clip_proxy_accuracy_on_test_images"}


def test_every_zoo_model_has_a_quality_bar_and_a_recipe():
    from bench.zoo.builders import RECIPES
    from bench.zoo.evaluate import EVALUATORS

    assert set(zoo.manifest()) <= set(EVALUATORS) == set(RECIPES)  # a recipe may await its training


def test_a_debiased_ema_of_constant_weights_is_those_weights():
    import torch

    from bench.training import EMA

    ema = EMA(torch.nn.Linear(3, 2), 0.9, debias=True)
    target = torch.nn.Linear(3, 2)
    torch.nn.init.constant_(target.weight, 0.5)
    torch.nn.init.constant_(target.bias, 0.5)
    for step in range(50):
        ema.update(target, step)
    for value in ema.result(50).state_dict().values():
        assert torch.allclose(value, torch.full_like(value, 0.5), atol=1e-5)



def test_ddpm_training_continues_from_an_earlier_folder(tmp_path, monkeypatch):
    import dataclasses
    import types

    import torch

    from bench.zoo import train_ddpm

    monkeypatch.setattr(train_ddpm, "load_fashion_mnist",
                        lambda split: types.SimpleNamespace(images=torch.rand(4, 3, 32, 32)))
    tiny = train_ddpm.DDPMTrainConfig(steps=0, block_out_channels=(32, 32, 32), layers_per_block=1)
    earlier = train_ddpm.build_unet(dataclasses.replace(tiny, seed=5))
    earlier.save_pretrained(tmp_path / "earlier" / "unet", safe_serialization=True)

    train_ddpm.train_ddpm_pixel(tmp_path / "fresh", tiny, quiet=True)
    info = train_ddpm.train_ddpm_pixel(tmp_path / "continued",
                                       dataclasses.replace(tiny, init_from=str(tmp_path / "earlier")), quiet=True)

    assert info["init_from"] == str(tmp_path / "earlier")
    expected = earlier.state_dict()
    continued = train_ddpm.load_unet(tmp_path / "continued").state_dict()
    fresh = train_ddpm.load_unet(tmp_path / "fresh").state_dict()
    assert all(torch.equal(continued[name], value) for name, value in expected.items())
    assert not all(torch.equal(fresh[name], value) for name, value in expected.items())


def test_a_resumed_ddpm_training_records_the_time_of_every_leg(tmp_path, monkeypatch):
    """The training loop carries the seconds of earlier legs in its checkpoint; the recorded
    train_seconds must be that total, not the last process's wall time."""
    import dataclasses
    import types

    import torch

    from bench.training import TrainingLoop
    from bench.zoo import train_ddpm

    monkeypatch.setattr(train_ddpm, "load_fashion_mnist",
                        lambda split: types.SimpleNamespace(images=torch.rand(4, 3, 32, 32)))
    run = TrainingLoop.run
    monkeypatch.setattr(TrainingLoop, "run", lambda self, step: dataclasses.replace(run(self, step), seconds=10_138.4))
    tiny = train_ddpm.DDPMTrainConfig(steps=0, block_out_channels=(32, 32, 32), layers_per_block=1)
    assert train_ddpm.train_ddpm_pixel(tmp_path / "model", tiny, quiet=True)["train_seconds"] == 10_138


def test_scale_curves_draw_each_defense_against_the_scale_with_the_unperturbed_point(tmp_path):
    from bench.plots import scale_curves

    def summary(defense, attack, scale, accuracy):
        return {"defense": defense, "attack": attack, "budget": {"scale": scale},
                "metrics": {"zero-shot": {"value": accuracy, "low": accuracy - 0.1, "high": accuracy + 0.1,
                                          "higher_is_better": True}}}

    summaries = [summary("ve-vae", "sampling-noise", 0.0, 0.9), summary("ve-vae", "sampling-noise", 0.2, 0.7),
                 summary("ve-vae", "sampling-noise", 0.4, 0.5), summary("ve-vae", "sampling-pgd", 0.2, 0.8),
                 summary("ve-vae", "sampling-pgd", 0.4, 0.6)]
    out = scale_curves(summaries, "zero-shot", tmp_path / "curve.png")
    assert out is not None and out.stat().st_size > 0
    assert scale_curves(summaries[:2], "zero-shot", tmp_path / "none.png") is None  # one scale: no curve
