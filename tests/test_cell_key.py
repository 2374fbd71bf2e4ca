"""A cell's key (its result folder) must change with every field of its resolved configuration;
a key that ignored one would serve one cell's stored results for another."""

import pytest

from bench.grid import parse_grid

BASE = {"seed": 0, "batch_size": 8, "defenses": ["vae-kl"], "attacks": [{"name": "pgd-encoder", "steps": 2}],
        "metrics": ["psnr"], "data": {"n": 8}, "eps": [0.03], "threat_models": ["adaptive"]}


def only_key(grid):
    cells = parse_grid(grid)
    assert len(cells) == 1
    return cells[0]


@pytest.mark.parametrize("field, change", [
    ("defense", {"defenses": ["srl-vae"]}),
    ("attack", {"attacks": [{"name": "pgd-encoder", "steps": 3}]}),
    ("eps", {"eps": [0.02]}),
    ("scenario", {"scenario": {"name": "img2img-edit", "strength": 0.5}}),
    ("metrics", {"metrics": ["psnr", "ssim"]}),
    ("data", {"data": {"n": 9}}),
    ("seed", {"seed": 1}),
    ("batch_size", {"batch_size": 4}),
    ("threat_model", {"threat_models": ["transfer"]}),
    ("transfer_source", {"transfer_source": "srl-vae"}),
])
def test_every_field_of_the_resolved_config_changes_the_key(field, change):
    base_grid = {**BASE, "transfer_source": "vae-kl"} if field == "threat_model" else BASE
    base, changed = only_key(base_grid), only_key({**base_grid, **change})
    assert base.resolved() != changed.resolved()
    assert base.key != changed.key, f"the cell key ignores {field}"
    assert only_key(base_grid).key == base.key
