"""The one training loop and the fine-tune cache (issue 10, item 3): a loop interrupted after a
checkpoint resumes to bit-identical weights (EMA, schedule and clipping included); a fine-tune killed
by a real SIGKILL mid-step continues from its last checkpoint in the run's store and ends with the
same weight bytes as an uninterrupted one; a finished fine-tune is reused, never retrained; its key
names everything that determines it."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.training import EMA, TrainingLoop

SCRIPT = """
import os, signal, sys
from bench.data import load_fashion_mnist
from bench.finetune import finetune
from defenses.ddpm import DDPMFineTune, DDPMFineTuneConfig

run_dir, base, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
original = DDPMFineTune.setup

def setup(self, data, device):  # SIGKILL this process in the middle of step number kill_at
    training = original(self, data, device)
    step, calls = training.step, []
    def dying(indices, generator):
        calls.append(1)
        if len(calls) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return step(indices, generator)
    training.step = dying
    return training

DDPMFineTune.setup = setup
recipe = DDPMFineTune(DDPMFineTuneConfig(model=base, steps=6, batch_size=4, log_every=1, checkpoint_every=2))
print(finetune(run_dir, recipe, {"images": load_fashion_mnist("test", 12).images}, seed=7))
"""


def run_finetune(tmp_path: Path, run_dir: Path, base: Path, kill_at: int = 0) -> subprocess.CompletedProcess:
    script = tmp_path / "finetune_script.py"
    script.write_text(SCRIPT)
    return subprocess.run([sys.executable, str(script), str(run_dir), str(base), str(kill_at)],
                          capture_output=True, text=True, cwd=Path(__file__).parent.parent, timeout=600)


def weight_bytes(model_folder: Path) -> bytes:
    return (model_folder / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()


def test_a_finetune_killed_mid_step_resumes_to_identical_weights(tmp_path, tiny_ddpm_dir):
    straight = run_finetune(tmp_path, tmp_path / "straight", tiny_ddpm_dir)
    assert straight.returncode == 0, straight.stderr
    straight_model = Path(straight.stdout.strip().splitlines()[-1])

    killed = run_finetune(tmp_path, tmp_path / "killed", tiny_ddpm_dir, kill_at=5)
    assert killed.returncode == -signal.SIGKILL
    [folder] = (tmp_path / "killed" / "finetunes").glob("*/")
    assert folder.name == straight_model.parent.name  # the same key in both runs
    assert json.loads((folder / "checkpoint" / "state.json").read_text())["step"] == 4
    assert not (folder / "finetune.json").exists() and not (folder / "model").exists()

    resumed = run_finetune(tmp_path, tmp_path / "killed", tiny_ddpm_dir)
    assert resumed.returncode == 0, resumed.stderr
    resumed_model = Path(resumed.stdout.strip().splitlines()[-1])
    record = json.loads((folder / "finetune.json").read_text())
    assert record["resumed_from_step"] == 4 and [row[0] for row in record["loss_curve"]] == [1, 2, 3, 4, 5, 6]
    assert weight_bytes(resumed_model) == weight_bytes(straight_model)
    assert not (folder / "checkpoint").exists()
    straight_record = json.loads((straight_model.parent / "finetune.json").read_text())
    assert record["loss_curve"] == straight_record["loss_curve"]

    from bench.data import load_fashion_mnist
    from bench.finetune import finetune
    from defenses.ddpm import DDPMFineTune, DDPMFineTuneConfig

    class NeverTrains(DDPMFineTune):
        def setup(self, data):
            raise AssertionError("a finished fine-tune was trained again")

    recipe = NeverTrains(DDPMFineTuneConfig(model=str(tiny_ddpm_dir), steps=6, batch_size=4, log_every=1,
                                            checkpoint_every=2))
    images = load_fashion_mnist("test", 12).images
    assert finetune(tmp_path / "killed", recipe, {"images": images}, seed=7) == resumed_model


def test_the_key_names_everything_that_determines_a_finetune(tiny_ddpm_dir, tmp_path):
    import shutil

    from bench.finetune import finetune_identity, finetune_key
    from defenses.ddpm import DDPMFineTune, DDPMFineTuneConfig

    config = DDPMFineTuneConfig(model=str(tiny_ddpm_dir), steps=2)
    data = {"images": torch.rand(4, 3, 32, 32), "captions": ["a", "b", "c", "d"]}
    key = finetune_key(finetune_identity(DDPMFineTune(config), data, seed=0))
    changed_base = tmp_path / "base"
    shutil.copytree(tiny_ddpm_dir, changed_base)
    (changed_base / "scheduler" / "scheduler_config.json").write_text("{}")
    variants = [
        (DDPMFineTune(config), {**data, "images": data["images"].flip(0)}, 0),
        (DDPMFineTune(config), {**data, "captions": ["a", "b", "c", "e"]}, 0),
        (DDPMFineTune(config), data, 1),
        (DDPMFineTune(dataclasses.replace(config, learning_rate=2e-4)), data, 0),
        (DDPMFineTune(dataclasses.replace(config, model=str(changed_base))), data, 0),
    ]
    keys = {finetune_key(finetune_identity(recipe, d, seed)) for recipe, d, seed in variants}
    assert key not in keys and len(keys) == len(variants)


class Interrupted(Exception):
    pass


def _loop(checkpoint: Path | None, steps: int = 6, die_at: int = 0):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (1 + step))
    ema = EMA(model, 0.9, warmup=True, debias=True)
    data = torch.randn(20, 8, generator=torch.Generator().manual_seed(1))
    calls = []

    def step(indices, generator):
        calls.append(1)
        if len(calls) == die_at:
            raise Interrupted
        noise = torch.randn(len(indices), 1, generator=generator)
        return {"loss": (model(data[indices]) - noise).pow(2).mean()}

    loop = TrainingLoop(model, optimizer, steps, seed=3, data_size=len(data), batch_size=5, schedule=schedule,
                        clip=0.5, ema=ema, log_every=2, checkpoint=checkpoint, checkpoint_every=2 if checkpoint else 0)
    result = loop.run(step)
    return model, ema.result(result.steps_completed), result


def test_a_loop_interrupted_after_a_checkpoint_resumes_bit_identically(tmp_path):
    model, average, result = _loop(None)
    with pytest.raises(Interrupted):
        _loop(tmp_path / "checkpoint", die_at=5)
    resumed_model, resumed_average, resumed = _loop(tmp_path / "checkpoint")
    for a, b in [(model, resumed_model), (average, resumed_average)]:
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert resumed.curve == result.curve and resumed.steps_completed == 6


def test_the_ddpm_finetune_trains_on_the_device_it_is_given(tiny_ddpm_dir):
    """The meta device stands in for a GPU: the weights and the loss live there, not on the CPU."""
    import torch

    from defenses.ddpm import DDPMFineTune, DDPMFineTuneConfig

    recipe = DDPMFineTune(DDPMFineTuneConfig(model=str(tiny_ddpm_dir), steps=1, batch_size=2))
    training = recipe.setup({"images": torch.rand(4, 3, 32, 32)}, torch.device("meta"))
    assert {p.device.type for p in training.model.parameters()} == {"meta"}
    loss = training.step(torch.tensor([0, 3]), torch.Generator().manual_seed(0))["loss"]
    assert loss.device.type == "meta"
