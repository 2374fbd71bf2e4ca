"""AELIF at inference (issue 12): the ``conditioning`` attack surface and its ``aelif-probe`` attack, the
reference's robustness probe. The hook augments the prompt states (then the negative ones) inside a
real diffusers pipeline (the tiny saved SD 1.5 layout): p 0 is exactly the clean generation, p > 0
changes it, the hook is a function of the seed; the prompt-robustness scenario runs it end to end from
the clean prompt; bad configs are one ``error:`` line, exit 2."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from bench.base import ConditioningAttack
from bench.cli import main
from bench.errors import BenchError
from bench.plugins import ATTACKS
from bench.runner import Runner, RunOptions
from defenses.aelif import aelif_augment

PROMPTS = ["a bag", "a coat"]


def probe(**params) -> ConditioningAttack:
    cls = ATTACKS.get("aelif-probe")
    return cls(cls.make_config(params))


def tiny_model(tiny_sd_dir):
    from defenses.t2i import StableDiffusionModel, T2IConfig

    return StableDiffusionModel(T2IConfig(pipeline=str(tiny_sd_dir), steps=2, guidance=3.0))


def test_the_probe_is_a_model_free_conditioning_attack_with_p_as_its_budget():
    attack = probe(p=0.25)
    assert isinstance(attack, ConditioningAttack) and attack.surface == "conditioning"
    assert attack.budgets == ("p",) and attack.budget() == {"p": 0.25}
    assert not attack.uses_model and attack.differentiates() is None
    assert (attack.config.augmentation, attack.config.mean, attack.config.std) == ("mask", 0.0, 1.0)


def test_the_hook_is_aelif_augment_from_one_generator_seeded_per_batch():
    states = torch.randn(2, 12, 4, generator=torch.Generator().manual_seed(0)) + 3
    attack = probe(augmentation="noise_conv", p=0.5, mean=1.0, std=2.0)
    hook = attack.hook(7)
    first, second = hook(states), hook(states)  # the prompt's states, then the negative ones: one generator
    replay = torch.Generator().manual_seed(7)
    assert torch.equal(first, aelif_augment(states, "noise_conv", 0.5, replay, 1.0, 2.0))
    assert torch.equal(second, aelif_augment(states, "noise_conv", 0.5, replay, 1.0, 2.0))
    assert not torch.equal(first, second)
    again = attack.hook(7)
    assert torch.equal(again(states), first) and torch.equal(again(states), second)  # a function of the seed
    assert not torch.equal(attack.hook(8)(states), first)
    assert torch.equal(probe(p=0.0).hook(7)(states), states)


def test_p_0_is_the_clean_generation_and_p_above_0_changes_it(tiny_sd_dir):
    model = tiny_model(tiny_sd_dir)
    clean = model.generate(PROMPTS, seed=3)
    assert torch.equal(model.generate(PROMPTS, seed=3, condition=probe(p=0.0).hook(3)), clean)
    for augmentation in ("mask", "noise_conv"):
        attack = probe(augmentation=augmentation, p=0.5, std=5.0)
        perturbed = model.generate(PROMPTS, seed=3, condition=attack.hook(3))
        assert (perturbed - clean).abs().max() > 1e-4, augmentation
        assert torch.equal(model.generate(PROMPTS, seed=3, condition=attack.hook(3)), perturbed)  # deterministic
        assert not torch.equal(model.generate(PROMPTS, seed=3, condition=attack.hook(4)), perturbed)
    assert torch.equal(model.generate(PROMPTS, seed=3), clean)  # the hook is removed after the call
    assert "encode_prompt" not in vars(model.pipe)


def test_the_hook_sees_the_prompt_states_then_the_negative_ones(tiny_sd_dir):
    model = tiny_model(tiny_sd_dir)
    seen = []

    def condition(states):
        seen.append(states.clone())
        return states

    clean = model.generate(PROMPTS, seed=0)
    assert torch.equal(model.generate(PROMPTS, seed=0, condition=condition), clean)  # identity: unchanged
    prompt, negative = model.pipe.encode_prompt(PROMPTS, "cpu", 1, True)
    assert len(seen) == 2 and torch.equal(seen[0], prompt) and torch.equal(seen[1], negative)


def write_grid(tmp_path, tiny_sd_dir, **extra):
    spec = {"name": "aelif-probe-test", "seed": 0, "batch_size": 4, "data": {"n": 8},
            "scenario": "prompt-robustness", "metrics": ["clip-w1-raw", "clip-sim", "zero-shot", "clip-w1-nd"],
            "defenses": [{"name": "aelif", "model": str(tiny_sd_dir), "autoencoder": "", "steps": 2,
                          "batch_size": 4, "train_n": 8, "sample_steps": 2, "guidance": 3.0, "p": 0.5}],
            "attacks": [{"name": "aelif-probe", "augmentation": "noise_conv", "std": 5.0}], "p": [0.0, 0.5],
            **extra}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_the_scenario_generates_the_clean_prompt_with_perturbed_states(tmp_path, tiny_sd_dir):
    from bench.data import DataSpec, load
    from bench.grid import load_grid
    from bench.store import RunStore

    grid = write_grid(tmp_path, tiny_sd_dir)
    _, grid_cells = load_grid(grid)
    assert [c.budget for c in grid_cells] == [{"p": 0.0}, {"p": 0.5}]  # the p axis: one cell each
    Runner(tmp_path / "run", RunOptions(quiet=True)).run_grid(grid)
    captions = list(load(DataSpec(n=8)).captions)
    results = {}
    for folder in (tmp_path / "run" / "cells").glob("*/"):
        summary = json.loads((folder / "summary.json").read_text())
        results[summary["budget"]["p"]] = summary, pd.read_csv(folder / "samples.csv")
    assert sorted(results) == [0.0, 0.5]

    for _, samples in results.values():
        assert samples["prompt"].tolist() == captions  # the clean prompt, as written
        assert (samples["prompt_edits"] == 0).all() and (samples["prompt_edit_rate"] == 0).all()
    summary, samples = results[0.0]  # nothing augmented: the clean generation itself
    assert np.allclose(samples["clip-w1-raw"], 0) and np.allclose(samples["clip-sim"], 1, atol=1e-5)
    assert summary["metrics"]["clip-w1-nd"]["value"] == pytest.approx(0, abs=1e-6)
    summary, samples = results[0.5]
    assert (samples["clip-w1-raw"] > 0).all() and summary["metrics"]["clip-w1-nd"]["value"] > 0

    # the stored generation is the fine-tuned model's, from the clean prompts, seed and hook of the batch
    from bench.finetune import finetune
    from defenses.aelif import AELIF

    params = {k: v for k, v in yaml.safe_load(grid.read_text())["defenses"][0].items() if k != "name"}
    defense = AELIF(AELIF.make_config(params))
    recipe, data = defense.finetune_request()
    finetunes = set((tmp_path / "run" / "finetunes").glob("*/"))
    model = defense.with_finetune(finetune(tmp_path / "run", recipe, data, seed=0))
    assert set((tmp_path / "run" / "finetunes").glob("*/")) == finetunes  # the run's fine-tune, not a new one
    attack, seed = probe(augmentation="noise_conv", p=0.5, std=5.0), 0 * 1_000_003 + 1
    expected = model.generate(captions[4:8], seed=seed, condition=attack.hook(seed))
    stored = RunStore(tmp_path / "run").cell(summary["key"]).load_batch(1)["generated"]
    assert torch.allclose(stored, expected, rtol=0, atol=1e-6)

BAD = [({"attacks": [{"name": "aelif-probe", "p": 1.5}], "p": None}, "aelif-probe: p=1.5 is outside [0, 1]"),
       ({"p": [1.5]}, "p 1.5 must be a number in [0, 1]"),
       ({"p": [-0.1]}, "p -0.1 must be a number in [0, 1]"),
       ({"attacks": [{"name": "aelif-probe", "augmentation": "dropout"}]}, "use one of mask, noise_conv"),
       ({"attacks": [{"name": "aelif-probe", "augmentation": "none"}]}, "use one of mask, noise_conv"),
       ({"attacks": [{"name": "aelif-probe", "augmentation": "noise_conv", "std": -1.0}]}, "std=-1.0 must be 0 or more"),
       ({"scenario": "toy", "defenses": ["vae-kl"], "metrics": []}, "perturbs conditioning")]


@pytest.mark.parametrize("changes, fragment", BAD, ids=[fragment for _, fragment in BAD])
def test_bad_probe_configs_are_one_error_line_and_exit_2(changes, fragment, tmp_path, tiny_sd_dir, capsys):
    out = tmp_path / "run"
    code = main(["--quiet", "run", str(write_grid(tmp_path, tiny_sd_dir, **changes)), "--out", str(out)])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and fragment in errors[0], errors
    assert not out.exists()


def test_a_model_without_a_condition_hook_is_refused(tiny_editor):
    from types import SimpleNamespace

    from bench.scenarios.prompt_robustness import check_takes_condition

    context = SimpleNamespace(attack=probe(), cell=SimpleNamespace(defense=SimpleNamespace(name="editor")))
    with pytest.raises(BenchError, match="takes no condition hook"):
        check_takes_condition(context, tiny_editor)


def test_a_conditioning_attack_that_changes_the_states_shape_is_refused():
    class Truncating(ConditioningAttack):
        name = "truncating"

        def perturb_states(self, states, generator):
            return states[:, :-1]

    with pytest.raises(ValueError, match=r"keep the states' shape \(1, 5, 2\), got \(1, 4, 2\)"):
        Truncating().hook(0)(torch.zeros(1, 5, 2))
