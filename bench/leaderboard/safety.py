"""What a submitted entry may make ``bench verify`` open or load, and the safetensors-only verify mode.

An entry arrives from a stranger (a pull request verified in CI), so every value of its ``grid`` (and of
its recorded ``defense.config``, ``scenario.config``, ``data`` and attack configs) is walked before
anything runs. Refused anywhere, at any depth, keys included:

- ``trust_pickle`` with any truthy value (a pickled checkpoint runs code when loaded);
- absolute paths, ``~``, ``..``, backslashes, URLs (``scheme://``), control characters;
- ``open_clip:`` model references (open_clip loads pickles or downloads; none is on the allow-list);
- a local path (relative to the repository root) that is the root itself, lies in ``.git``, is a
  symlink leaving the repository, holds a pickled file (``.pt``/``.pth``/``.bin``/``.ckpt``/``.pkl``...)
  or does not exist;
- a hub id (``owner/name``) outside :data:`HUB_ALLOWLIST`, and a ``model``/``pipeline`` value that is
  neither a zoo model, an allow-listed hub id, nor a local folder inside the repository.

:func:`verify_mode` is the load-time half (defense in depth): inside it the model loaders refuse
``trust_pickle`` and pickled checkpoints (they call :func:`refuse_pickle`), and ``torch.load``,
``pickle.load`` and ``pickle.loads`` raise, so nothing is unpickled even if a check above were missed.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from bench.errors import BenchError

SAFETENSORS_ONLY_ENV = "BENCH_SAFETENSORS_ONLY"
"""Set to ``1`` while ``bench verify`` reruns an entry; the model loaders check it."""

HUB_ALLOWLIST = frozenset({
    "stabilityai/sd-vae-ft-mse",
    "stabilityai/sd-vae-ft-ema",
    "runwayml/stable-diffusion-v1-5",
    "stable-diffusion-v1-5/stable-diffusion-v1-5",
})
"""Hugging Face hub ids an entry's grid may name: published with safetensors weights, loaded offline
from the local hub cache (``use_safetensors=True``). Extend it in a reviewed change, never in an entry."""

MODEL_KEYS = frozenset({"model", "pipeline"})
"""Keys whose value the suite loads as a model: a zoo name, an allow-listed hub id or a local folder."""

FREE_TEXT_KEYS = frozenset({"prompt", "style_prompt", "label", "description"})
"""Keys holding prose; checked for control characters and path escapes, not read as hub ids."""

PICKLE_SUFFIXES = frozenset({".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle", ".joblib", ".npy", ".npz"})
MAX_FOLDER_FILES = 256
"""A local folder an entry names (model folder, image folder) may hold at most this many files."""

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def zoo_names() -> frozenset[str]:
    from bench.zoo import manifest

    return frozenset(manifest())


def _refuse(where: str, message: str) -> BenchError:
    return BenchError(f"{where}: {message}")


def _is_inside(path: Path, root: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(Path(os.path.realpath(root)))


def check_local_path(text: str, repo: Path, where: str) -> Path:
    """A repository-relative path an entry names: inside the repository once symlinks are followed, not
    the root, not in ``.git``, no pickled file in it, a folder of at most MAX_FOLDER_FILES files."""
    full = repo / text
    relative = PurePosixPath(text)
    if not _is_inside(full, repo):
        raise _refuse(where, f"{text!r} is a symlink pointing outside the repository; commit the files themselves")
    real = Path(os.path.realpath(full))
    if real == Path(os.path.realpath(repo)):
        raise _refuse(where, f"{text!r} is the repository root; name the folder or file that holds the data")
    inner = real.relative_to(Path(os.path.realpath(repo))).parts
    if ".git" in relative.parts + inner:
        raise _refuse(where, f"{text!r} lies in .git; name a committed file or folder instead")
    if not full.exists():
        raise _refuse(where, f"{text!r} does not exist in the repository; commit it or name a zoo model "
                      "(`bench zoo ls`)")
    if full.is_dir():
        count = 0
        for child in full.rglob("*"):
            if child.is_symlink() and not _is_inside(child, repo):
                raise _refuse(where, f"{text!r} holds {child.relative_to(full)}, a symlink pointing outside the "
                              "repository; commit the file itself")
            if child.suffix.lower() in PICKLE_SUFFIXES:
                raise _refuse(where, f"{text!r} holds a pickled file ({child.relative_to(full)}), which can run "
                              "code when loaded; convert it to safetensors and remove it")
            real_child = Path(os.path.realpath(child)).relative_to(Path(os.path.realpath(repo)))
            if ".git" in child.relative_to(full).parts or ".git" in real_child.parts:
                raise _refuse(where, f"{text!r} holds {child.relative_to(full)}; remove .git files from it")
            count += child.is_file()
            if count > MAX_FOLDER_FILES:
                raise _refuse(where, f"{text!r} holds more than {MAX_FOLDER_FILES} files; name a smaller folder")
    elif full.suffix.lower() in PICKLE_SUFFIXES:
        raise _refuse(where, f"{text!r} is a pickled file, which can run code when loaded; convert it to "
                      "safetensors")
    return full


def check_string(text: str, key: str | None, repo: Path, where: str, zoo: frozenset[str]) -> None:
    """One string value of an entry's grid or configs; ``key`` is the mapping key it sits under."""
    if CONTROL.search(text):
        raise _refuse(where, f"{text!r} holds a control character (newline, tab, ...); write it on one line")
    if not text:
        return
    posix = PurePosixPath(text)
    if text.startswith(("/", "~")) or re.match(r"^[A-Za-z]:[\\/]", text):
        raise _refuse(where, f"{text!r} is an absolute or home path; an entry may only name files inside the "
                      "repository, relative to its root")
    if ".." in posix.parts or "\\" in text:
        raise _refuse(where, f"{text!r} leaves its folder ('..' or '\\'); name a path inside the repository")
    if key in FREE_TEXT_KEYS:
        return
    if text.lower().startswith("open_clip:"):
        raise _refuse(where, f"{text!r}: open_clip models are not on the leaderboard's allow-list (they load "
                      "pickles or download); use clip-proxy, or propose the model in a reviewed change")
    if "://" in text or text.lower().startswith(("file:", "data:")):
        raise _refuse(where, f"{text!r} is a URL; an entry may only name zoo models, allow-listed hub ids "
                      "and files inside the repository")
    path_like = "/" in text or text == "." or os.path.lexists(repo / text)
    if key in MODEL_KEYS and not path_like:
        if text not in zoo:
            raise _refuse(where, f"model {text!r} is neither a zoo model ({', '.join(sorted(zoo))}), an "
                          "allow-listed hub id nor a folder in the repository; name one of those")
        return
    if not path_like:
        return
    if os.path.lexists(repo / text):
        check_local_path(text, repo, where)
    elif HUB_ID.match(text):
        if text not in HUB_ALLOWLIST:
            raise _refuse(where, f"{text!r} is not a folder in the repository, and as a hub id it is not on the "
                          f"allow-list ({', '.join(sorted(HUB_ALLOWLIST))}; see docs/security.md)")
    else:
        raise _refuse(where, f"{text!r} does not exist in the repository; commit it or name a zoo model")


def _child(where: str, key: Any) -> str:
    return f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}"


def check_values(value: Any, repo: Path, where: str) -> None:
    """Walk every nested value (iteratively: nesting depth cannot exhaust the stack)."""
    zoo = zoo_names()
    stack: list[tuple[Any, str | None, str]] = [(value, None, where)]
    while stack:
        item, key, at = stack.pop()
        if isinstance(item, dict):
            for child_key, child in item.items():
                child_at = _child(at, child_key)
                if not isinstance(child_key, str):
                    raise _refuse(child_at, "keys must be strings")
                if CONTROL.search(child_key):
                    raise _refuse(child_at, "the key holds a control character; write it on one line")
                if child_key == "trust_pickle" and child:
                    raise _refuse(child_at, f"is {child!r}; an entry may not load pickled weights (they run code "
                                  "when loaded); convert them to safetensors and remove trust_pickle")
                stack.append((child, child_key, child_at))
        elif isinstance(item, list):
            stack.extend((child, key, _child(at, i)) for i, child in enumerate(item))
        elif isinstance(item, str):
            check_string(item, key, repo, at, zoo)


def check_entry(entry: dict[str, Any], repo: Path) -> dict[str, Any]:
    """Every value that could make ``bench verify`` open or load something; returns a deep copy of the
    checked grid, the only thing verify may run."""
    for name in ("defense", "scenario"):
        check_values(entry[name]["config"], repo, f"{name}.config")
    check_values(entry["data"], repo, "data")
    for i, result in enumerate(entry["results"]):
        check_values(result["attack"]["config"], repo, f"results[{i}].attack.config")
    grid = copy.deepcopy(entry["grid"])
    check_values(grid, repo, "grid")
    return grid


# --- load time -----------------------------------------------------------------------------------------


def safetensors_only() -> bool:
    """Whether this process is rerunning a submitted entry (``bench verify``)."""
    return os.environ.get(SAFETENSORS_ONLY_ENV) == "1"


def refuse_pickle(trust_pickle: bool, what: str, path: str | Path | None = None) -> None:
    """Called by the model loaders: in verify mode, ``trust_pickle`` and pickled checkpoints are refused."""
    if not safetensors_only():
        return
    if trust_pickle:
        raise BenchError(f"{what}: trust_pickle is refused while verifying a leaderboard entry; only "
                         "safetensors weights are loaded")
    if path is not None and Path(path).suffix.lower() != ".safetensors":
        raise BenchError(f"{what}: {Path(path).name} is not a safetensors file, and only safetensors weights "
                         "are loaded while verifying a leaderboard entry")


def _blocked(name: str):
    def blocked(*args: Any, **kwargs: Any) -> Any:
        raise BenchError(f"{name} was called while verifying a leaderboard entry; only safetensors weights "
                         "may be loaded (see docs/security.md)")
    return blocked


@contextlib.contextmanager
def verify_mode() -> Iterator[None]:
    """Safetensors only: the loaders refuse pickles, and torch.load / pickle.load(s) raise."""
    import pickle

    import torch
    import torch.serialization

    saved_env = os.environ.get(SAFETENSORS_ONLY_ENV)
    patched = [(torch, "load"), (torch.serialization, "load"), (pickle, "load"), (pickle, "loads")]
    saved = [(owner, name, getattr(owner, name)) for owner, name in patched]
    os.environ[SAFETENSORS_ONLY_ENV] = "1"
    for owner, name in patched:
        setattr(owner, name, _blocked(f"{owner.__name__}.{name}"))
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)
        if saved_env is None:
            os.environ.pop(SAFETENSORS_ONLY_ENV, None)
        else:
            os.environ[SAFETENSORS_ONLY_ENV] = saved_env


@contextlib.contextmanager
def working_directory(folder: Path) -> Iterator[None]:
    """Relative paths in an entry are relative to the repository root: run there."""
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)
