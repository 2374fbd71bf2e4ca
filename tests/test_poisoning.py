"""The poisoning scenario (bench/scenarios/poisoning.py) on tiny seeded models: poisons enter the
training set substituted or added, a purifier purifies every training image, the clean fine-tune is
the shared reference and tau is calibrated on it, a warm re-run reads the same numbers, and bad
input (a count above a concept's images, a pair with C = A, an unknown class) is refused before
anything is written."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from bench.errors import BenchError
from bench.runner import Runner, RunOptions
from bench.scenario_api import encode_texts
from bench.scenarios.poisoning import Poisoning, PoisoningConfig, concept_pair


def grid(tiny_vae_dir, tiny_sd_dir, **changes) -> dict:
    scenario = {"name": "poisoning", "model": str(tiny_sd_dir), "steps": 3, "batch_size": 4, "generations": 6,
                "other_generations": 1, "sampler_steps": 2}
    return {"data": {"dataset": "fashion-mnist", "split": "train", "n": 60}, "metrics": ["zero-shot"],
            "defenses": [{"name": "vae", "model": str(tiny_vae_dir)}], "scenarios": [scenario],
            "attacks": [{"name": "nightshade", "source": "trouser", "target": "bag", "steps": 2, "pool": 20},
                        {"name": "dirty-label", "source": 1, "target": 8}],
            "count": [3], **changes}


def run(tmp_path, spec: dict, name: str = "run"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    runner = Runner(tmp_path / name, RunOptions(quiet=True))
    return runner, runner.run_grid(path)


@pytest.fixture(scope="module")
def ran(tmp_path_factory, tiny_vae_dir, tiny_sd_dir):
    folder = tmp_path_factory.mktemp("poisoning")
    return folder, run(folder, grid(tiny_vae_dir, tiny_sd_dir))


def test_a_cell_reports_success_against_the_shared_clean_reference(ran):
    folder, (runner, summaries) = ran
    nightshade, dirty = summaries
    for summary in summaries:
        metrics = summary["metrics"]
        assert metrics["poisons"]["value"] == 3 and metrics["attack_success"]["n"] == 6
        for column in ("attack_success", "not_source", "is_target", "reference_attack_success", "zero-shot",
                       "collateral_accuracy", "reference_collateral_accuracy"):
            assert 0 <= metrics[column]["low"] <= metrics[column]["value"] <= metrics[column]["high"] <= 1
        assert not metrics["attack_success"]["higher_is_better"] and metrics["collateral_accuracy"]["higher_is_better"]
    assert 0 < nightshade["metrics"]["poison_latent_closed"]["value"] < 1  # moved toward the anchor, not onto it
    assert "poison_latent_closed" not in dirty["metrics"]
    # one clean reference shared by both cells, one fine-tune per poisoned training set
    records = [json.loads(p.read_text()) for p in (folder / "run" / "finetunes").glob("*/finetune.json")]
    assert len(records) == 3 and len({(r["data"]["images"], r["data"]["captions"]) for r in records}) == 3
    for summary in summaries:
        samples = np.genfromtxt(runner.run.cell(summary["key"]).folder / "samples.csv", delimiter=",", names=True)
        similarity = samples["reference_source_similarity"]
        tau = summary["metrics"]["tau"]["value"]
        assert tau == pytest.approx(np.quantile(similarity, 0.05))
        assert summary["metrics"]["reference_attack_success"]["value"] == pytest.approx((similarity < tau).mean())


def test_a_warm_rerun_reads_the_same_numbers(ran, tiny_vae_dir, tiny_sd_dir):
    folder, (_, first) = ran
    _, again = run(folder, grid(tiny_vae_dir, tiny_sd_dir))
    assert [s["metrics"] for s in again] == [s["metrics"] for s in first]


class Captured:
    def __init__(self, defense):
        self.defense, self.device, self.data = defense, torch.device("cpu"), None
        self.options = SimpleNamespace(torch_dtype=torch.float32)

    def finetune(self, recipe, data):
        self.data, self.recipe = data, recipe
        return "folder"


def poison_of(count: int, images: torch.Tensor) -> dict:
    return {"indices": torch.arange(count) * 2, "images": images[:count] * 0 + 0.5,
            "captions": encode_texts(["a photo of a bag"] * count)}


@pytest.mark.parametrize("mode", ["substitute", "add"])
def test_poisons_are_substituted_or_added(mode, images):
    context = SimpleNamespace(data=SimpleNamespace(images=images, captions=("a", "b", "c", "d")))
    scenario = Poisoning(PoisoningConfig(mode=mode))
    training = scenario._training_set(context, poison_of(2, images))
    if mode == "substitute":
        assert len(training["images"]) == 4 and training["captions"] == ["a photo of a bag", "b",
                                                                          "a photo of a bag", "d"]
        assert (training["images"][[0, 2]] == 0.5).all() and torch.equal(training["images"][1], images[1])
    else:
        assert len(training["images"]) == 6 and training["captions"][4:] == ["a photo of a bag"] * 2
        assert torch.equal(training["images"][:4], images)


def test_a_purifier_purifies_every_training_image(tiny_vae_dir, images):
    from bench.plugins import DEFENSES

    jpeg = DEFENSES.get("jpeg")
    defense = jpeg(jpeg.make_config({"model": str(tiny_vae_dir)}))
    context = Captured(defense)
    Poisoning(PoisoningConfig())._finetune(context, {"images": images, "captions": ["x"] * 4})
    with torch.no_grad():
        expected = (defense.purify(images).clamp(0, 1) * 255).round() / 255
    assert torch.equal(context.data["images"], expected) and not torch.equal(expected, images)
    assert context.recipe.config.autoencoder == str(tiny_vae_dir) and context.recipe.config.autoencoder_subfolder == ""


def test_bad_input_is_refused_before_anything_is_written(tmp_path, tiny_vae_dir, tiny_sd_dir):
    too_many = grid(tiny_vae_dir, tiny_sd_dir, count=[40])
    with pytest.raises(BenchError, match="count 40 exceeds the 9 training images of 'trouser'"):
        run(tmp_path, too_many, "too-many")
    assert not (tmp_path / "too-many").exists()
    same = grid(tiny_vae_dir, tiny_sd_dir, attacks=[{"name": "dirty-label", "source": 8, "target": 8}])
    with pytest.raises(BenchError, match="toward itself"):
        run(tmp_path, same, "same")
    assert not (tmp_path / "same").exists()
    with pytest.raises(BenchError, match="did you mean 'ankle boot'"):
        run(tmp_path, grid(tiny_vae_dir, tiny_sd_dir, attacks=[{"name": "nightshade", "target": "ankle bot"}]), "x")
    with pytest.raises(BenchError, match="outside"):
        run(tmp_path, grid(tiny_vae_dir, tiny_sd_dir, attacks=["nightshade"], eps=[1.5]), "y")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_concept_pair_reads_names_and_indices():
    assert concept_pair(SimpleNamespace(name="a", config=SimpleNamespace(source="Trouser", target="bag"))) == (1, 8)
    assert concept_pair(SimpleNamespace(name="a", config=SimpleNamespace(source=1, target=8))) == (1, 8)
    with pytest.raises(BenchError, match="did you mean"):
        concept_pair(SimpleNamespace(name="a", config=SimpleNamespace(source="trousr", target=8)))


def test_a_transfer_poison_is_crafted_once_and_measured_on_each_defense(tmp_path, tiny_vae_dir, tiny_sd_dir):
    vae = {"name": "vae", "model": str(tiny_vae_dir)}
    spec = grid(tiny_vae_dir, tiny_sd_dir, threat_models=["transfer"], transfer_source=vae,
                defenses=[vae, {"name": "jpeg", "model": str(tiny_vae_dir)}],
                attacks=[{"name": "nightshade", "source": "trouser", "target": "bag", "steps": 2, "pool": 20}])
    _, (plain, jpeg) = run(tmp_path, spec)
    assert len(list((tmp_path / "run" / "shared").glob("poison-*.safetensors"))) == 1
    closed = [s["metrics"]["poison_latent_closed"]["value"] for s in (plain, jpeg)]
    assert closed[0] > 0 and closed[0] != closed[1]
