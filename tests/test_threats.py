"""Threat models on tiny models: a transfer perturbation is crafted once on the source and fed to
every defense; an adaptive row keeps, per image, the stronger of its white-box and the transferred
perturbation, so it is never weaker by the attack's objective; noise has no threat model."""

import torch
import yaml

from bench.runner import Runner, RunOptions


def run(tmp_path, tiny_vae_dir, **grid):
    tiny = {"name": "vae", "model": str(tiny_vae_dir), "label": "tiny"}
    base = {"batch_size": 4, "data": {"n": 4}, "metrics": ["psnr"], "eps": [0.05],
            "defenses": [tiny, {"name": "jpeg", "model": str(tiny_vae_dir), "quality": 50}],
            "attacks": ["noise", {"name": "pgd-encoder", "steps": 3}],
            "threat_models": ["transfer", "adaptive"], "transfer_source": tiny}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({**base, **grid}))
    runner = Runner(tmp_path / "run", RunOptions(quiet=True))
    summaries = runner.run_grid(path)
    attacked = {(s["defense"], s["attack"], s["threat_model"]): runner.run.cell(s["key"]).load_batch(0)
                for s in summaries}
    return runner, summaries, attacked


def test_transfer_is_crafted_once_and_fed_to_every_defense(tmp_path, tiny_vae_dir):
    runner, summaries, batches = run(tmp_path, tiny_vae_dir)
    assert sorted((s["defense"], s["attack"], s["threat_model"]) for s in summaries) == [
        ("jpeg", "noise", "none"), ("jpeg", "pgd-encoder", "adaptive"), ("jpeg", "pgd-encoder", "transfer"),
        ("tiny", "noise", "none"), ("tiny", "pgd-encoder", "adaptive"), ("tiny", "pgd-encoder", "transfer")]
    transfer = batches[("tiny", "pgd-encoder", "transfer")]["adversarial"]
    assert torch.equal(batches[("jpeg", "pgd-encoder", "transfer")]["adversarial"], transfer)
    assert torch.equal(batches[("tiny", "pgd-encoder", "adaptive")]["adversarial"], transfer)
    crafted = list((runner.run.folder / "shared").glob("crafted-*.safetensors"))
    assert len(crafted) == 2  # on the source, and white-box on jpeg


def test_adaptive_is_never_weaker_than_transfer_per_image(tmp_path, tiny_vae_dir):
    runner, summaries, batches = run(tmp_path, tiny_vae_dir)
    adaptive, transfer = batches[("jpeg", "pgd-encoder", "adaptive")], batches[("jpeg", "pgd-encoder", "transfer")]
    assert (adaptive["selection_damage"] >= transfer["selection_damage"]).all()
    kept = adaptive["transfer_kept"].bool()
    assert torch.equal(adaptive["adversarial"][kept], transfer["adversarial"][kept])
    assert not torch.equal(adaptive["adversarial"], transfer["adversarial"])
    summary = next(s for s in summaries if (s["defense"], s["threat_model"]) == ("jpeg", "adaptive"))
    assert summary["transfer_kept_fraction"] == kept.float().mean().item()
    assert "attack_objective" in summary["metrics"] and "selection_damage" not in summary["metrics"]


def test_without_a_transfer_source_adaptive_is_white_box_only(tmp_path, tiny_vae_dir):
    _, summaries, batches = run(tmp_path, tiny_vae_dir, threat_models=["adaptive"], transfer_source=None)
    assert all(s["transfer_source"] is None for s in summaries)
    assert "transfer_kept" not in batches[("jpeg", "pgd-encoder", "adaptive")]
