"""Nightshade (attacks/nightshade.py): the batched optimisation agrees with a transcription of the
release's one-image-at-a-time loop (opt.py), the poisons are the source concept's best-ranked images
with their own captions, moved toward the anchor's latent inside the 8-bit ball, seeded; bad configs
are one error line; a poisoning attack without a model is refused; dirty-label still runs model-free."""

from __future__ import annotations

import pytest
import torch

from attacks.nightshade import Nightshade
from bench.base import quantise_into_ball
from bench.data import load_fashion_mnist
from bench.errors import BenchError
from bench.plugins import ATTACKS
from bench.zoo.fragility import nightshade_perturb

EPS = 8 / 255


def release_generate_one(defense, source01: torch.Tensor, target_latent: torch.Tensor, eps: float,
                         t_size: int) -> torch.Tensor:
    """nightshade-release opt.py PoisonGeneration.generate_one, line for line, on one (1, 3, H, W)
    image in [0, 1]: the release works in [-1, 1] (max_change = eps / 0.5) and clamps only x + delta."""
    source = source01 * 2 - 1
    modifier = torch.clone(source) * 0.0
    max_change = eps / 0.5
    step_size = max_change
    for i in range(t_size):
        actual_step_size = step_size - (step_size - step_size / 100) / t_size * i
        modifier.requires_grad_(True)
        adv_tensor = torch.clamp(modifier + source, -1, 1)
        adv_latent = defense.encode((adv_tensor + 1) / 2)
        loss = (adv_latent - target_latent).norm()
        grad = torch.autograd.grad(loss.sum(), modifier)[0]
        modifier = modifier - torch.sign(grad) * actual_step_size
        modifier = torch.clamp(modifier, -max_change, max_change).detach()
    return (torch.clamp(modifier + source, -1.0, 1.0) + 1) / 2


def nightshade(**params) -> Nightshade:
    return Nightshade(Nightshade.make_config(params))


@pytest.fixture(scope="module")
def training():
    return load_fashion_mnist("train", 300)


def test_batched_optimisation_agrees_with_the_release_loop(tiny_defense):
    data = load_fashion_mnist("test", 4)
    sources = data.images[:3] * 0.6 + 0.2  # inside the pixel range by more than eps: the clamps agree
    with torch.no_grad():
        anchor_latent = tiny_defense.encode(data.images[3:4])
    batched = nightshade_perturb(tiny_defense, sources, anchor_latent.expand(3, -1, -1, -1), EPS, 20)
    one_by_one = torch.cat([release_generate_one(tiny_defense, s[None], anchor_latent, EPS, 20) for s in sources])
    assert (batched - sources).abs().max() <= EPS + 1e-6
    quantised = [quantise_into_ball(x, sources, EPS) for x in (batched, one_by_one)]
    assert (quantised[0] == quantised[1]).float().mean() > 0.99
    with torch.no_grad():
        distances = [(tiny_defense.encode(x) - anchor_latent).flatten(1).norm(dim=1) for x in (batched, one_by_one)]
        start = (tiny_defense.encode(sources) - anchor_latent).flatten(1).norm(dim=1)
    assert torch.allclose(distances[0], distances[1], rtol=1e-3)
    assert (distances[0] < start).all()


def test_poisons_are_ranked_source_images_moved_toward_the_anchor(tiny_editor, training):
    attack = nightshade(count=4, steps=10, pool=12)
    ranked, similarity = attack.candidates(training.images, training.labels)
    assert (training.labels[ranked] == attack.source_index).all() and len(ranked) == 12
    assert (similarity[:-1] >= similarity[1:]).all() and (similarity >= attack.config.threshold).all()
    poison = attack(training.images, list(training.captions), training.labels, seed=0, model=tiny_editor)
    assert len(poison.indices) == 4 and torch.equal(poison.indices, poison.indices.sort().values)
    assert set(poison.indices.tolist()) <= set(ranked.tolist())
    assert poison.captions == [training.captions[i] for i in poison.indices.tolist()]
    assert all(caption == "a photo of a trouser" for caption in poison.captions)
    clean = training.images[poison.indices]
    assert (poison.images - clean).abs().max() <= EPS + 1e-6 and not torch.equal(poison.images, clean)
    assert torch.equal(poison.images, (poison.images * 255).round() / 255)
    assert (attack.objective(tiny_editor, poison.images, clean, seed=0) > 0).all()  # closer to the anchor
    again = attack(training.images, list(training.captions), training.labels, seed=0, model=tiny_editor)
    assert torch.equal(again.indices, poison.indices) and torch.equal(again.images, poison.images)
    other = attack(training.images, list(training.captions), training.labels, seed=1, model=tiny_editor)
    assert not torch.equal(other.indices, poison.indices)


def test_the_pool_is_the_top_of_the_ranking(tiny_editor, training):
    attack = nightshade(count=3, steps=2, pool=3)
    ranked, _ = attack.candidates(training.images, training.labels)
    poison = attack(training.images, list(training.captions), training.labels, seed=5, model=tiny_editor)
    assert sorted(poison.indices.tolist()) == sorted(ranked.tolist())


def test_count_zero_poisons_nothing(training):
    poison = nightshade(count=0)(training.images, list(training.captions), training.labels, seed=0, model=object())
    assert len(poison.indices) == 0 and poison.captions == []


@pytest.mark.parametrize("params, message", [
    ({"source": "trousers"}, "did you mean 'trouser'"),
    ({"target": "sneakers"}, "did you mean 'sneaker'"),
    ({"source": "bag", "target": "Bag"}, "source and target"),
    ({"eps": 1.5}, "outside [0, 1]"),
    ({"steps": 0}, "at least 1"),
])
def test_bad_configs_are_one_error_line(params, message):
    with pytest.raises(BenchError) as err:
        Nightshade.make_config(params)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_more_poisons_than_candidates_and_no_model_are_refused(tiny_editor, training):
    attack = nightshade(count=100, steps=1)
    with pytest.raises(BenchError, match="count 100 exceeds the 37 images"):
        attack(training.images, list(training.captions), training.labels, seed=0, model=tiny_editor)
    with pytest.raises(BenchError, match="none was handed"):
        nightshade(count=2)(training.images, list(training.captions), training.labels, seed=0)


def test_dirty_label_still_runs_model_free(training):
    attack = ATTACKS.get("dirty-label")
    poison = attack(attack.make_config({"source": 1, "target": 8, "count": 5}))(
        training.images, list(training.captions), training.labels, seed=0)
    assert len(poison.indices) == 5 and (training.labels[poison.indices] == 8).all()
    assert torch.equal(poison.images, training.images[poison.indices])


def test_the_grid_hands_nightshade_a_text_to_image_model():
    from bench.grid import parse_grid

    grid = {"defenses": ["vae-kl"], "attacks": [{"name": "nightshade", "source": "dress", "target": "sandal"}],
            "count": [5, 10], "scenarios": ["poisoning"], "metrics": ["zero-shot"]}
    cells = parse_grid(grid)
    assert [c.attack.config.count for c in cells] == [5, 10] and cells[0].threat_model == "adaptive"
    with pytest.raises(BenchError, match="differentiates a text-to-image model"):
        parse_grid({**grid, "scenarios": ["toy"], "metrics": []})


def test_another_vocabulary_on_unlabelled_data_ranks_every_image(training):
    attack = nightshade(source="shirt", target="Sandal", classes=["sandal", "shirt", "bag"], count=2)
    assert (attack.source_index, attack.target_index) == (1, 0)
    unlabelled = torch.full_like(training.labels, -1)
    ranked, similarity = attack.candidates(training.images, unlabelled)
    assert (similarity >= attack.config.threshold).all()
    others = training.labels[ranked] != 6  # Fashion-MNIST's shirt: unlabelled, only the threshold decides
    assert others.any() and not others.all()
    with pytest.raises(BenchError, match="did you mean 'coat'"):
        Nightshade.make_config({"source": "coats", "target": "bag", "classes": ["coat", "bag"]})
