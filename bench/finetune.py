"""Fine-tunes inside a cell (poisoning, AELIF, Robustadv): trained once per run by the one training
loop (``bench.training``), cached in the run's store and shared by every cell that asks for the same
one; ``CellContext.finetune(recipe, data)`` is how a scenario asks.

    RUN_DIR/finetunes/<key>/model/          the fine-tuned model, as the recipe saves it (published whole)
    RUN_DIR/finetunes/<key>/checkpoint/     the latest checkpoint while it trains (removed when done)
    RUN_DIR/finetunes/<key>/finetune.json   what determined it, and its loss curve; written last
    RUN_DIR/finetunes/<key>.lock            flock held by the process training it

The key is the sha256 of everything that determines the fine-tune: the recipe's name, code version
and config, the seed, the sha256 of each base weight file and of each training tensor (and text
column), and the suite's version. A process that finds ``finetune.json`` uses the model; otherwise it
takes the lock (waiting while another process trains the same fine-tune; the kernel releases the lock
of a killed one) and trains, resuming from the checkpoint a killed process left: a SIGKILL costs only
the steps since that fine-tune's last checkpoint, and the weights come out bit-identical on the CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from bench.errors import check_device
from bench.store import atomic_write_json, read_json
from bench.training import EMA, STATE, Step, TrainingLoop
from bench.zoo.training import publish_folder

FOLDER = "finetunes"
DONE = "finetune.json"
CPU = torch.device("cpu")


@dataclass(frozen=True)
class FineTuneConfig:
    """The loop's settings every recipe config carries (recipes add their own fields)."""

    steps: int = 100
    batch_size: int = 16
    log_every: int = 10
    checkpoint_every: int = 25

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1 or self.log_every < 1 or self.checkpoint_every < 0:
            raise ValueError("steps, batch_size and log_every must be at least 1, checkpoint_every 0 or more")


@dataclass
class Training:
    """What a recipe sets up for the loop: the trained model and its optimizer, the step, and how to
    save the result into a folder."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    step: Step
    data_size: int
    save: Callable[[Path], None]
    schedule: torch.optim.lr_scheduler.LRScheduler | None = None
    clip: float = 0.0
    ema: EMA | None = None


class FineTuneRecipe:
    """A fine-tune: ``base()`` names the weight files it starts from (path -> sha256), ``setup(data)``
    builds the training from the training tensors. Bump ``version`` when the code changes what it
    computes. Every random draw must come from the loop's generator (handed to the step), so the
    result is a function of the key.

    A recipe that sets ``trains_on_device`` is set up with ``setup(data, device)`` and trains on the
    cell's device; any other trains on the CPU whatever the cell's device."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    trains_on_device: ClassVar[bool] = False

    def __init__(self, config: FineTuneConfig):
        self.config = config

    def base(self) -> dict[str, str]:
        raise NotImplementedError

    def setup(self, data: dict[str, torch.Tensor | list[str]]) -> Training:
        raise NotImplementedError


def data_hashes(data: dict[str, torch.Tensor | list[str]]) -> dict[str, str]:
    """The sha256 of each training tensor (its dtype, shape and bytes) or text column."""
    hashes = {}
    for name, value in sorted(data.items()):
        digest = hashlib.sha256()
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu().contiguous()
            digest.update(f"{tensor.dtype} {tuple(tensor.shape)}".encode())
            digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
        else:
            digest.update(json.dumps(list(value)).encode())
        hashes[name] = digest.hexdigest()
    return hashes


ADDED_LATER = {"identity": "omitted at its default"}
"""Field metadata for a config field added after fine-tunes were cached: at its default it is left
out of the identity, so every fine-tune trained before the field existed keeps its key."""


def identity_config(config: FineTuneConfig) -> dict[str, Any]:
    own = dataclasses.asdict(config)
    for spec in dataclasses.fields(config):
        if spec.metadata.get("identity") == ADDED_LATER["identity"] and own[spec.name] == spec.default:
            del own[spec.name]
    return own


def finetune_identity(recipe: FineTuneRecipe, data: dict[str, Any], seed: int,
                      device: torch.device = CPU) -> dict[str, Any]:
    """What determines a fine-tune. Trained on another device type than the CPU it is another one
    (other kernels, other bits); CPU fine-tunes keep the keys they had before devices were named."""
    from bench import __version__

    return {"recipe": recipe.name, "version": recipe.version, "config": identity_config(recipe.config),
            "seed": seed, "base": recipe.base(), "data": data_hashes(data), "suite": __version__,
            **({"device": device.type} if device.type != "cpu" else {})}


def finetune_key(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # waits while another process trains this fine-tune
        yield


def training_device(recipe: FineTuneRecipe, device: str | torch.device) -> torch.device:
    """Where ``recipe`` trains when the cell runs on ``device`` (checked: a bad one is a BenchError)."""
    checked = torch.device(check_device(str(device)))
    return checked if recipe.trains_on_device else CPU


def finetune(run_folder: str | Path, recipe: FineTuneRecipe, data: dict[str, torch.Tensor | list[str]], seed: int,
             quiet: bool = True, device: str | torch.device = "cpu") -> Path:
    """The folder of the fine-tuned model: from the run's cache, or trained now (resuming a killed one)
    on ``device`` where the recipe trains on the cell's device."""
    where = training_device(recipe, device)
    identity = finetune_identity(recipe, data, seed, where)
    folder = Path(run_folder) / FOLDER / finetune_key(identity)
    if (folder / DONE).exists():
        return folder / "model"
    with _locked(folder.with_suffix(".lock")):
        if (folder / DONE).exists():
            return folder / "model"
        for leftover in folder.glob(".*-new-*"):  # staging folders of a save a kill interrupted
            shutil.rmtree(leftover, ignore_errors=True)
        checkpoint = folder / "checkpoint"
        resumed = read_json(checkpoint / STATE)["step"] if (checkpoint / STATE).exists() else 0
        torch.manual_seed(seed)
        training = recipe.setup(data, where) if recipe.trains_on_device else recipe.setup(data)
        config = recipe.config

        def progress(step: int, means: list[float], seconds: float) -> None:
            if not quiet:
                print(f"fine-tune {recipe.name} {folder.name} step {step}/{config.steps} loss {means[0]:.4f} "
                      f"{seconds:.0f}s", flush=True)

        start = time.time()
        result = TrainingLoop(training.model, training.optimizer, config.steps, seed, training.data_size,
                              config.batch_size, schedule=training.schedule, clip=training.clip, ema=training.ema,
                              log_every=config.log_every, checkpoint=checkpoint,
                              checkpoint_every=config.checkpoint_every, on_log=progress).run(training.step)
        publish_folder(folder / "model", training.save)
        atomic_write_json(folder / DONE, {**identity, "loss_curve": result.curve, "resumed_from_step": resumed,
                                          "train_seconds": round(result.seconds, 1),
                                          "session_seconds": round(time.time() - start, 1)})
        shutil.rmtree(checkpoint, ignore_errors=True)
    return folder / "model"
