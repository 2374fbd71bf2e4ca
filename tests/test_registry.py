import subprocess
import sys

import pytest

from bench.errors import BenchError
from bench.plugins import ATTACKS, REGISTRIES
from bench.registry import Registry


def test_duplicate_name_raises():
    registry = Registry("attack", "bench.base:Attack")
    registry.register("x", "attacks.noise:UniformNoise")
    with pytest.raises(ValueError, match="already registered"):
        registry.register("x", "attacks.noise:UniformNoise")


def test_unknown_name_suggests_the_closest():
    with pytest.raises(BenchError, match="did you mean 'pgd-encoder'"):
        ATTACKS.get("pgd-encodr")


def test_entry_must_subclass_the_base():
    registry = Registry("attack", "bench.base:Attack")
    registry.register("wrong", "bench.metrics.psnr:PSNR")
    with pytest.raises(TypeError, match="not a subclass"):
        registry.get("wrong")


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_every_entry_loads_and_names_itself(kind):
    registry = REGISTRIES[kind]
    for name in registry.names():
        cls = registry.get(name)
        assert cls.name == name or registry.preset(name), f"{cls} registered as {name} calls itself {cls.name}"


def test_listing_imports_nothing_heavy():
    code = ("import sys, bench.cli; bench.cli.main(['ls']); "
            "heavy = [m for m in ('torch', 'diffusers', 'pandas', 'lpips') if m in sys.modules]; "
            "assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "pgd-encoder" in result.stdout
