import pytest
import yaml

from bench.errors import BenchError
from bench.grid import load_grid, parse_grid

BASE = {"defenses": ["vae-kl"], "attacks": ["noise", "pgd-encoder"], "metrics": ["psnr"],
        "data": {"n": 8}}


def test_axes_are_multiplied_out():
    cells = parse_grid({**BASE, "eps": [0.01, 0.02], "seeds": [0, 1]})
    assert len(cells) == 2 * 2 * 2
    assert {(c.attack.name, c.eps, c.seed) for c in cells} == {
        (a, e, s) for a in ("noise", "pgd-encoder") for e in (0.01, 0.02) for s in (0, 1)}


def test_exclude_removes_matching_cells():
    cells = parse_grid({**BASE, "eps": [0.01, 0.02], "exclude": [{"attack": "noise", "eps": 0.02}]})
    assert sorted((c.attack.name, c.eps) for c in cells) == [
        ("noise", 0.01), ("pgd-encoder", 0.01), ("pgd-encoder", 0.02)]


def test_overrides_set_attack_params_and_cell_settings():
    cells = parse_grid({**BASE, "overrides": [{"match": {"attack": "pgd-encoder"},
                                               "set": {"steps": 3, "n": 4, "seed": 7, "eps": 0.05}}]})
    pgd = next(c for c in cells if c.attack.name == "pgd-encoder")
    noise = next(c for c in cells if c.attack.name == "noise")
    assert (pgd.attack.config.steps, pgd.data.n, pgd.seed, pgd.eps) == (3, 4, 7, 0.05)
    assert (noise.data.n, noise.seed) == (8, 0)


def test_defaults_are_resolved_and_recorded():
    cell = parse_grid(BASE)[1]
    resolved = cell.resolved()
    assert resolved["attack"]["config"]["steps"] == 10
    assert resolved["defense"]["config"]["model"] == "vae-kl"


def test_key_is_stable_and_follows_the_config():
    first, second = parse_grid(BASE), parse_grid(BASE)
    assert [c.key for c in first] == [c.key for c in second]
    changed = parse_grid({**BASE, "eps": [0.02]})
    assert {c.key for c in changed}.isdisjoint(c.key for c in first)


@pytest.mark.parametrize("grid, message", [
    ({**BASE, "attacks": ["pgd-encodr"]}, "did you mean 'pgd-encoder'"),
    ({**BASE, "eps": [1.5]}, "outside \\[0, 1\\]"),
    ({**BASE, "atacks": ["noise"]}, "did you mean 'attacks'"),
    ({**BASE, "attacks": [{"name": "pgd-encoder", "stepz": 3}]}, "did you mean 'steps'"),
    ({**BASE, "attacks": [{"name": "pgd-encoder", "steps": "many"}]}, "must be a number"),
    ({**BASE, "attacks": [{"name": "noise", "eps": -0.1}]}, "outside \\[0, 1\\]"),
    ({**BASE, "data": {"split": "dev"}}, "unknown split"),
    ({**BASE, "metrics": ["psnr", "zero-shot"]}, "does not compute label metrics"),
    ({**BASE, "defenses": []}, "missing or empty"),
    ({**BASE, "exclude": [{"attack": "noise"}, {"attack": "pgd-encoder"}]}, "every cell is excluded"),
])
def test_bad_grids_are_refused_with_the_fix(grid, message):
    with pytest.raises(BenchError, match=message):
        parse_grid(grid)


def test_malformed_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("defenses: [vae-kl\nattacks: [noise]\n")
    with pytest.raises(BenchError, match="malformed YAML at line"):
        load_grid(path)


@pytest.mark.parametrize("name", ["smoke", "default"])
def test_shipped_grids_validate(name):
    raw, cells = load_grid(f"grids/{name}.yaml")
    assert cells and yaml.safe_dump(raw)


def test_threat_models_multiply_model_based_attacks_only():
    cells = parse_grid({**BASE, "threat_models": ["transfer", "adaptive"]})
    rows = sorted((c.attack.name, c.threat_model, c.transfer_source.label if c.transfer_source else None)
                  for c in cells)
    assert rows == [("noise", "none", None), ("pgd-encoder", "adaptive", "vae-kl"),
                    ("pgd-encoder", "transfer", "vae-kl")]


def test_the_default_is_adaptive_without_a_transfer_candidate():
    cells = parse_grid(BASE)
    pgd = next(c for c in cells if c.attack.name == "pgd-encoder")
    assert (pgd.threat_model, pgd.transfer_source) == ("adaptive", None)


@pytest.mark.parametrize("grid, message", [
    ({**BASE, "threat_models": ["trasnfer"]}, "did you mean 'transfer'"),
    ({**BASE, "attacks": ["mist"]}, "differentiates a text-to-image model"),
    ({**BASE, "attacks": ["glaze-like"], "metrics": ["psnr"]}, "use scenario img2img-edit"),
    ({**BASE, "transfer_source": "vae-kll", "threat_models": ["transfer"]}, "did you mean 'vae-kl'"),
    ({**BASE, "transfer_source": None, "threat_models": ["transfer"]}, "needs `transfer_source:`"),
])
def test_bad_threat_settings_are_refused(grid, message):
    with pytest.raises(BenchError, match=message):
        parse_grid(grid)


def test_a_fraction_out_of_range_is_not_called_a_pixel_budget():
    from bench.base import check_unit_interval

    with pytest.raises(ValueError, match="pixel units"):
        check_unit_interval("attack", "eps", 1.5)
    with pytest.raises(ValueError, match="rate is a fraction") as raised:
        check_unit_interval("attack", "rate", 1.5)
    assert "pixel" not in str(raised.value)
