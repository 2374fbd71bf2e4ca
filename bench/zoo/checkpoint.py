"""Resumable training checkpoints: module weights, optimizer moments and the data generator's state in
one safetensors file, everything else (step, optimizer hyper-parameters, LR schedule, loss curve) in
JSON. Never pickle. A checkpoint folder is keyed by the output folder and the full training config, so
only the same training resumes from it, and is swapped into place whole (``publish_folder``): a kill
during a save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from bench.zoo.training import publish_folder

TENSORS = "state.safetensors"
STATE = "state.json"


def checkpoint_dir(output: Path, config) -> Path:
    """Where a training of ``config`` into ``output`` keeps its checkpoint (in the suite's cache)."""
    from bench.assets import cache_dir

    key = json.dumps([str(Path(output).resolve()), asdict(config)], sort_keys=True, default=list)
    return cache_dir() / "zoo-checkpoints" / f"{Path(output).name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


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
    # Fresh (aligned) copies: a view into the loaded buffer may be unaligned, and CPU kernels then take
    # other vector paths, which shifted a resumed run's weights by ~1e-5.
    tensors = {key: value.clone() for key, value in load_file(str(folder / TENSORS)).items()}
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
