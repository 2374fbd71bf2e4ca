"""The prompt-robustness scenario (issue 12, item 4) on tiny seeded models: clean and perturbed prompts
generated with the same seed, AELIF's W1 (per pair, unnormalised embeddings) and its distribution
distance (wasserstein_distance_nd), robustness ratios with intervals, and an aelif defense fine-tuned
once per run through the cell's fine-tune cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from scipy.stats import wasserstein_distance, wasserstein_distance_nd

from bench.errors import BenchError
from bench.runner import Runner, RunOptions

METRICS = ["clip-w1-raw", "clip-sim", "clip-score", "zero-shot", "clip-w1-nd", "clip-w1-nd-prompt"]


def write_grid(tmp_path, tiny_sd_dir, attacks, **extra):
    spec = {"name": "prompt-robustness-test", "seed": 0, "batch_size": 4, "data": {"n": 8},
            "scenario": "prompt-robustness", "metrics": METRICS,
            "defenses": [{"name": "aelif", "model": str(tiny_sd_dir), "autoencoder": "", "steps": 2,
                          "batch_size": 4, "train_n": 8, "sample_steps": 2, "guidance": 3.0, "p": 0.5}],
            "attacks": attacks, **extra}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def cells(run_dir):
    return {json.loads((p / "summary.json").read_text())["attack"]: (json.loads((p / "summary.json").read_text()),
                                                                     pd.read_csv(p / "samples.csv"))
            for p in (run_dir / "cells").glob("*/") if (p / "summary.json").exists()}


def test_clean_and_perturbed_prompts_are_compared_and_the_finetune_is_shared(tmp_path, tiny_sd_dir):
    grid = write_grid(tmp_path, tiny_sd_dir, [{"name": "typo", "rate": 0.0, "label": "unchanged"},
                                             {"name": "typos", "edits": 3, "words": "any"}])
    Runner(tmp_path / "run", RunOptions(quiet=True)).run_grid(grid)
    assert len(list((tmp_path / "run" / "finetunes").glob("*/finetune.json"))) == 1
    results = cells(tmp_path / "run")

    summary, samples = results["unchanged"]  # the same prompt and seed: the same image
    assert (samples["prompt_edits"] == 0).all()
    assert np.allclose(samples["clip-w1-raw"], 0) and np.allclose(samples["clip-sim"], 1, atol=1e-5)
    assert np.array_equal(samples["zero-shot"], samples["clean_prompt_zero-shot"])
    assert summary["metrics"]["clip-w1-nd"]["value"] == pytest.approx(0, abs=1e-6)
    assert summary["metrics"]["clip-score_ratio"]["value"] == pytest.approx(1)
    assert summary["metrics"]["clip-w1-nd"]["higher_is_better"] is False

    summary, samples = results["typos"]
    assert (samples["prompt_edits"] >= 1).all() and samples["prompt"].str.len().gt(0).all()
    assert (samples["clip-w1-raw"] > 0).all()
    ratio = summary["metrics"]["clip-score_ratio"]
    expected = samples["clip-score"].mean() / samples["clean_prompt_clip-score"].mean()
    assert ratio["value"] == pytest.approx(expected) and ratio["low"] <= ratio["value"] <= ratio["high"]
    assert summary["metrics"]["clip-w1-nd"]["value"] > 0
    assert summary["weights"] and all(str(tiny_sd_dir) in path for path in summary["weights"])
    check_per_prompt_w1_nd(tmp_path / "run", results)


def check_per_prompt_w1_nd(run_dir, results):
    """clip-w1-nd-prompt is scipy's W1-nd between one prompt's clean and perturbed generations across
    seeds (the stored images, re-encoded), averaged over the prompts on two or more rows."""
    from bench.data import DataSpec, load
    from bench.metrics.clip_w1_nd_prompt import ClipW1NDPrompt
    from bench.store import RunStore

    captions = load(DataSpec(n=8)).captions
    groups = [[i for i, c in enumerate(captions) if c == caption] for caption in dict.fromkeys(captions)]
    groups = [rows for rows in groups if len(rows) > 1]
    assert groups  # the first 8 test images repeat a class (sandal), so the metric has prompts to average
    [clean_file] = (run_dir / "shared").glob("clean-generation-features-clip-unnormalized*")
    from safetensors.torch import load_file

    clean = load_file(clean_file)["features"].double().numpy()
    metric = ClipW1NDPrompt()
    for attack, (summary, _) in results.items():
        store = RunStore(run_dir).cell(summary["key"])
        generated = torch.cat([store.load_batch(i)["generated"] for i in range(2)])
        perturbed = metric.features(generated).double().numpy()
        expected = np.mean([wasserstein_distance_nd(perturbed[rows], clean[rows]) for rows in groups])
        per_prompt = summary["metrics"]["clip-w1-nd-prompt"]
        assert per_prompt["n"] == len(groups) and per_prompt["higher_is_better"] is False
        assert per_prompt["value"] == pytest.approx(expected, abs=1e-4), attack
        assert (per_prompt["value"] > 1e-6) == (attack == "typos")


def test_w1_nd_is_scipys_and_its_bootstrap_statistic_agrees():
    from bench.metrics.clip_w1_nd import assignment_w1

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(12, 5)), rng.normal(loc=0.5, size=(12, 5))
    assert assignment_w1(a, b) == pytest.approx(wasserstein_distance_nd(a, b), rel=1e-9)
    assert assignment_w1(a, b[:7]) == pytest.approx(wasserstein_distance_nd(a, b[:7]))
    assert assignment_w1(a, a[::-1]) == pytest.approx(0, abs=1e-12)


def test_per_prompt_w1_nd_averages_scipys_distance_over_repeated_prompts():
    from bench.metrics.clip_w1_nd_prompt import ClipW1NDPrompt
    from bench.scenarios.prompt_robustness import prompt_groups

    groups = prompt_groups(["a bag", "a coat", "a bag", "a dress", "a coat", "a bag"])
    assert groups == [[0, 2, 5], [1, 4]]  # "a dress" has one generation: no distribution to compare
    rng = np.random.default_rng(0)
    perturbed, clean = torch.tensor(rng.normal(size=(6, 5))), torch.tensor(rng.normal(loc=0.3, size=(6, 5)))
    estimate = ClipW1NDPrompt().grouped_estimate(perturbed, clean, groups, seed=0)
    per_group = [wasserstein_distance_nd(perturbed[g].numpy(), clean[g].numpy()) for g in groups]
    assert estimate.value == pytest.approx(np.mean(per_group)) and estimate.n == 2
    assert estimate.low <= estimate.value <= estimate.high
    pooled = wasserstein_distance_nd(perturbed.numpy(), clean.numpy())
    assert not np.isclose(estimate.value, pooled)  # per prompt is not the pooled clip-w1-nd


def test_per_prompt_w1_nd_is_refused_where_it_cannot_be_computed(tmp_path, tiny_sd_dir, tiny_vae_dir):
    from PIL import Image

    from bench.grid import load_grid

    reconstruction = tmp_path / "reconstruction.yaml"
    reconstruction.write_text(yaml.safe_dump({"data": {"n": 4}, "metrics": ["clip-w1-nd-prompt"],
                                              "defenses": [{"name": "vae", "model": str(tiny_vae_dir)}],
                                              "attacks": ["noise"]}))
    with pytest.raises(BenchError, match="does not compute prompt-set metrics like 'clip-w1-nd-prompt'"):
        load_grid(reconstruction)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        Image.fromarray((torch.rand(32, 32, 3) * 255).byte().numpy()).save(folder / f"{i}.png")
    (folder / "captions.json").write_text(json.dumps({"0.png": "a photo of a bag", "1.png": "a photo of a coat"}))
    distinct = write_grid(tmp_path, tiny_sd_dir, ["typos"], metrics=["clip-w1-nd-prompt"],
                          data={"dataset": "folder", "path": str(folder), "n": 2})
    with pytest.raises(BenchError, match="no prompt of these 2 images appears twice; raise n"):
        Runner(tmp_path / "run", RunOptions(quiet=True)).run_grid(distinct)
    assert not (tmp_path / "run" / "run.json").exists()


def test_clip_w1_raw_is_the_reference_w1_on_unnormalised_embeddings(images):
    from bench.metrics.clip_w1 import ClipW1
    from bench.metrics.clip_w1_raw import ClipW1Raw

    raw, normalised = ClipW1Raw(), ClipW1()
    shifted = (images * 0.6 + 0.2).clamp(0, 1)
    a = raw.clip_model.encode_image(images, normalize=False).double().numpy()
    b = raw.clip_model.encode_image(shifted, normalize=False).double().numpy()
    expected = [wasserstein_distance(x, y) for x, y in zip(b, a, strict=True)]
    assert np.allclose(raw.per_sample(shifted, images).numpy(), expected)
    assert not np.allclose(normalised.per_sample(shifted, images).numpy(), expected)


def test_the_ratio_interval_is_a_paired_bootstrap():
    from bench.scenarios.prompt_robustness import ratio_estimate

    clean = np.array([1.0, 1.0, 1.0, 0.0, 1.0, 1.0])
    perturbed = np.array([1.0, 0.0, 1.0, 0.0, 0.0, 1.0])
    estimate = ratio_estimate(perturbed, clean, seed=0)
    assert estimate.value == pytest.approx(3 / 5) and estimate.low < estimate.value < estimate.high <= 1.0
    assert ratio_estimate(clean, clean, seed=0).value == 1.0


def test_bad_prompt_robustness_grids_are_one_error_line(tmp_path, tiny_sd_dir, tiny_vae_dir):
    from bench.grid import load_grid

    pixel = write_grid(tmp_path, tiny_sd_dir, ["noise"])
    with pytest.raises(BenchError, match="noise"):
        load_grid(pixel)
    autoencoder = write_grid(tmp_path, tiny_sd_dir, ["typos"], defenses=[{"name": "vae", "model": str(tiny_vae_dir)}])
    with pytest.raises(BenchError, match="autoencoder"):
        load_grid(autoencoder)
    empty_budget = write_grid(tmp_path, tiny_sd_dir, [{"name": "typos", "edits": 0, "rate": 0.0}])
    with pytest.raises(BenchError, match="budget"):
        load_grid(empty_budget)
    no_captions = write_grid(tmp_path, tiny_sd_dir, ["typos"], data={"dataset": "folder", "path": str(tmp_path / "imgs"),
                                                                     "n": 2})
    folder = tmp_path / "imgs"
    folder.mkdir()
    from PIL import Image

    for i in range(2):
        Image.fromarray((torch.rand(32, 32, 3) * 255).byte().numpy()).save(folder / f"{i}.png")
    with pytest.raises(BenchError, match="captions"):
        Runner(tmp_path / "run", RunOptions(quiet=True)).run_grid(no_captions)
    (folder / "captions.json").write_text(json.dumps({f"{i}.png": "a photo of a bag" for i in range(2)}))
    with pytest.raises(BenchError, match="zero-shot scores generations against class labels"):
        Runner(tmp_path / "run", RunOptions(quiet=True)).run_grid(no_captions)
    assert not (tmp_path / "run" / "run.json").exists()


def test_the_sd15_paper_grid_validates_offline_and_fails_cleanly_without_weights(tmp_path, images):
    from PIL import Image

    from bench.grid import load_grid

    raw, grid_cells = load_grid("grids/paper/aelif-sd15.yaml")
    assert len(grid_cells) == 3 * 2 * 3 and {c.defense.label for c in grid_cells} == {"aelif-none", "aelif-mask",
                                                                                      "aelif-noise"}
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray((image.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(folder / f"{i}.png")
    (folder / "captions.json").write_text(json.dumps({f"{i}.png": "a photo of sks dog" for i in range(4)}))
    raw["data"] = {"dataset": "folder", "path": str(folder), "n": 4}
    for defense in raw["defenses"]:
        defense.update(train_data=str(folder), train_n=4)
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(BenchError, match="could not be loaded|cannot load") as error:
        Runner(tmp_path / "run", RunOptions(quiet=True)).run_grid(path)
    assert "\n" not in str(error.value) and "download" in str(error.value)
    assert not (tmp_path / "run" / "run.json").exists()
    raw["metrics"] = ["clip-sim"]  # past the image-text model, the base pipeline is the next missing piece
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(BenchError, match="cannot load pipeline 'stable-diffusion-v1-5/stable-diffusion-v1-5'"):
        Runner(tmp_path / "run", RunOptions(quiet=True)).run_grid(path)
    assert not (tmp_path / "run" / "run.json").exists()


ENTRIES = Path(__file__).parent.parent / "leaderboards" / "prompt-robustness"


def entry_copy(tmp_path, name="aelif-mask"):
    root = tmp_path / "leaderboards"
    (root / "prompt-robustness").mkdir(parents=True)
    return root, json.loads((ENTRIES / f"{name}.json").read_text())


def load(root, entry):
    from bench.leaderboard import validate

    path = root / "prompt-robustness" / f"{entry['name']}.json"
    path.write_text(json.dumps(entry))
    return validate.load_entry(path, root, full=False)


def test_prompt_track_entries_are_ranked_by_their_worst_typo_accuracy():
    from bench.leaderboard import ranking, schema

    headline = schema.TRACKS["prompt-robustness"].headline
    entries = [json.loads(p.read_text()) for p in sorted(ENTRIES.glob("*.json"))]
    assert {e["name"] for e in entries} >= {"aelif-none", "aelif-mask", "ldm-t2i-v2"}
    for entry in entries:
        score, missing = ranking.robust_score(entry, headline)
        cells = [r["metrics"]["zero-shot"]["measured"] for r in entry["results"]]
        assert not missing and score.measured == min(cells) and score.higher_is_better
        assert ranking.clean_score(entry, headline).measured == entry["results"][0]["metrics"]["clean_prompt_zero-shot"]["measured"]
    entry = entries[0]
    entry["results"] = [r for r in entry["results"] if r["attack"]["name"] != "typos-adaptive"]
    assert ranking.robust_score(entry, headline) == (None, ("typos-adaptive at 0",))


def test_hostile_prompt_track_entries_are_refused(tmp_path):
    from bench.leaderboard import safety, validate

    root, entry = entry_copy(tmp_path)
    entry["results"][0]["metrics"]["zero-shot_ratio"].update(measured=1.3, high=1.6)  # a ratio may pass 1
    load(root, entry)
    entry["results"][0]["metrics"]["zero-shot"]["measured"] = 1.3
    with pytest.raises(BenchError, match=r"results\[0\]\.metrics\.zero-shot\.measured"):
        load(root, entry)

    root, entry = entry_copy(tmp_path / "directions")
    validate.check_registered(entry)
    entry["results"][1]["metrics"]["clean_prompt_zero-shot"]["higher_is_better"] = False
    with pytest.raises(BenchError, match="clean_prompt_zero-shot is higher is better"):
        validate.check_registered(entry)

    root, entry = entry_copy(tmp_path / "paths")
    repo = Path(__file__).parent.parent
    safety.check_values(entry["grid"], repo, "grid")
    entry["grid"]["defenses"][0]["train_data"] = "/etc/ssl/certs"
    with pytest.raises(BenchError, match="absolute or home path"):
        safety.check_values(entry["grid"], repo, "grid")
    entry["grid"]["defenses"][0].update(train_data="", model="evil-org/sd-backdoor")
    with pytest.raises(BenchError, match="allow-list"):
        safety.check_values(entry["grid"], repo, "grid")
