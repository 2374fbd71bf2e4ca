"""The one training loop: zoo recipes (``bench/zoo/train_*.py``) and fine-tunes inside a cell
(``bench/finetune.py``) hand it a model, an optimizer and a step function, and it owns the rest.

Per step it draws the batch's indices from the seeded generator (``randint(0, data_size,
(batch_size,))``), calls ``step(indices, generator) -> {"loss": tensor, ...}`` (the step draws any
other randomness from the same generator), then zero-grad, backward, gradient-norm clip, optimizer
step, LR-schedule step and EMA update, in that order. Every ``log_every`` steps it appends the mean
of each returned value over the window to the loss curve. Every ``checkpoint_every`` steps it saves
a checkpoint folder (``state.safetensors``: module weights, optimizer moments, the generator's state;
``state.json``: step, curve, LR schedule, optimizer hyper-parameters; never pickle), swapped into place
whole, that a loop of the same training given the same ``checkpoint`` folder resumes from, so a run
killed at any moment and resumed ends with bit-identical weights on the CPU.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench.zoo.training import ema_update, publish_folder

Step = Callable[[torch.Tensor, torch.Generator], dict[str, torch.Tensor]]
TENSORS = "state.safetensors"
STATE = "state.json"


def save_checkpoint(folder: Path, modules: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer,
                    generator: torch.Generator, state: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    tensors = {f"{name}.{key}": value.detach().clone().contiguous()
               for name, module in modules.items() for key, value in module.state_dict().items()}
    optimizer_state = optimizer.state_dict()
    for index, moments in optimizer_state["state"].items():
        for key, value in moments.items():
            tensors[f"optimizer.{index}.{key}"] = torch.as_tensor(value).detach().clone()
    tensors["generator"] = generator.get_state()
    document = {**state, "optimizer_param_groups": optimizer_state["param_groups"]}

    def write(staging: Path) -> None:
        save_file(tensors, str(staging / TENSORS))
        (staging / STATE).write_text(json.dumps(document))

    publish_folder(folder, write)


def load_checkpoint(folder: Path, modules: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer,
                    generator: torch.Generator) -> dict[str, Any] | None:
    """Restore a checkpoint into the given objects and return its JSON state, or None if there is none."""
    from safetensors.torch import load_file

    if not (folder / TENSORS).exists() or not (folder / STATE).exists():
        return None
    tensors = load_file(str(folder / TENSORS))
    document = json.loads((folder / STATE).read_text())
    for name, module in modules.items():
        prefix = f"{name}."
        module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    moments: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            moments.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": moments, "param_groups": document.pop("optimizer_param_groups")})
    generator.set_state(tensors["generator"])
    return document


class EMA:
    """An exponential moving average of a model's weights. ``warmup``: diffusers' EMAModel decay
    warm-up ``min(decay, (1 + t) / (10 + t))``; ``debias``: ``result`` removes the initial weights'
    remaining share ``decay ** steps`` (as Adam corrects its moments)."""

    def __init__(self, model: torch.nn.Module, decay: float, warmup: bool = False, debias: bool = False):
        self.module = copy.deepcopy(model).requires_grad_(False)
        self.decay, self.warmup = decay, warmup
        self.initial = copy.deepcopy(self.module) if debias else None

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"ema": self.module, **({"ema_initial": self.initial} if self.initial is not None else {})}

    def update(self, model: torch.nn.Module, step: int) -> None:
        ema_update(self.module, model, min(self.decay, (1 + step) / (10 + step)) if self.warmup else self.decay)

    @torch.no_grad()
    def result(self, steps: int) -> torch.nn.Module:
        """The averaged model (bias-corrected in place where ``debias``) after ``steps`` updates."""
        weight = self.decay**steps
        if self.initial is not None and weight < 1:
            initial = self.initial.state_dict()
            for name, value in self.module.state_dict().items():
                if value.is_floating_point():
                    value.copy_((value - weight * initial[name].to(value.device)) / (1 - weight))
        return self.module


@dataclass
class TrainingResult:
    curve: list[list[float]]
    steps_completed: int
    seconds: float


@dataclass
class TrainingLoop:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    steps: int
    seed: int
    data_size: int
    batch_size: int
    schedule: torch.optim.lr_scheduler.LRScheduler | None = None
    clip: float = 0.0
    clip_parameters: Iterable[torch.nn.Parameter] | None = None
    ema: EMA | None = None
    log_every: int = 250
    digits: int = 5
    checkpoint: Path | None = None
    checkpoint_every: int = 0
    max_seconds: float = 0.0
    started: float = field(default_factory=time.time)
    on_log: Callable[[int, list[float], float], None] | None = None
    """Called with (step, window means, seconds since ``started``) at each curve point (progress prints)."""
    name: str = "model"
    """The model's name in the checkpoint."""

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {self.name: self.model, **(self.ema.modules() if self.ema is not None else {})}

    def run(self, step_function: Step) -> TrainingResult:
        generator = torch.Generator().manual_seed(self.seed)
        curve: list[list[float]] = []
        window: list[list[float]] = []
        first, earlier = 0, 0.0
        resumed = load_checkpoint(self.checkpoint, self._modules(), self.optimizer, generator) \
            if self.checkpoint is not None else None
        if resumed is not None:
            first, curve, earlier = resumed["step"], resumed["curve"], resumed["train_seconds"]
            window = [row if isinstance(row, list) else [row] for row in resumed["window"]]
            if self.schedule is not None:
                self.schedule.load_state_dict(resumed["schedule"])
        session = time.time()
        clipped = list(self.clip_parameters if self.clip_parameters is not None else self.model.parameters())
        completed = first
        for step in range(first, self.steps):
            if self.max_seconds and time.time() - self.started > self.max_seconds:
                break
            indices = torch.randint(0, self.data_size, (self.batch_size,), generator=generator)
            values = step_function(indices, generator)
            self.optimizer.zero_grad(set_to_none=True)
            values["loss"].backward()
            if self.clip:
                torch.nn.utils.clip_grad_norm_(clipped, self.clip)
            self.optimizer.step()
            if self.schedule is not None:
                self.schedule.step()
            if self.ema is not None:
                self.ema.update(self.model, step)
            completed = step + 1
            window.append([float(value.detach()) for value in values.values()])
            if completed % self.log_every == 0 or completed == self.steps:
                means = [sum(column) / len(column) for column in zip(*window, strict=True)]
                curve.append([completed, *(round(mean, self.digits) for mean in means)])
                window = []
                if self.on_log is not None:
                    self.on_log(completed, means, time.time() - self.started)
            if self.checkpoint is not None and self.checkpoint_every and completed % self.checkpoint_every == 0 \
                    and completed < self.steps:
                save_checkpoint(self.checkpoint, self._modules(), self.optimizer, generator,
                                {"step": completed, "curve": curve, "window": window,
                                 "train_seconds": earlier + time.time() - session,
                                 "schedule": self.schedule.state_dict() if self.schedule is not None else None})
        return TrainingResult(curve, completed, earlier + time.time() - session)
