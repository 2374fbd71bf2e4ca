"""What a cell's numbers depend on beyond its resolved config: the dtype and device type it runs
on, and the content of every file its config names (weights, data, target images).

A resolved config names files by reference (``model: vae-kl``, ``model: path/to/folder``,
``pipeline: org/name``, ``data: {dataset: folder, path: imgs/}``); the same reference can hold other
bytes tomorrow. ``InputHasher.identity`` maps each reference to a content hash:

- a zoo model: the sha256 of its manifest's file list (every file is checked against it on load);
- a local file: its sha256; a local folder: the sha256 of its files' relative paths and sha256s
  (hidden files and folders left out);
- a hub id: the snapshot revision the Hugging Face cache resolves it to (``unresolved`` when absent);
- ``open_clip:NAME/CHECKPOINT``: the checkpoint file's sha256 when it is a local file;
- data: the idx files of Fashion-MNIST, the images a folder cell loads (name order, first ``n``) and
  its ``captions.json``, or a tensors file.

Assets fetched by ``bench/assets.py`` (LPIPS, FID Inception) are checked against sha256s pinned in
the code, so the suite version names them. Each file is hashed once per hasher (one per run).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

REFERENCE_KEYS = ("model", "pipeline", "target")
"""Config fields that name a model, pipeline or image file; a plugin naming a file in another field
must be added here so its content is part of the cell key."""


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class InputHasher:
    """Content hashes of referenced files, each computed once (per path, size and mtime)."""

    def __init__(self) -> None:
        self._files: dict[tuple[str, int, int], str] = {}
        self._references: dict[str, str | None] = {}

    def file(self, path: Path) -> str:
        stat = path.stat()
        key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
        if key not in self._files:
            from bench.assets import sha256_file

            self._files[key] = sha256_file(path)
        return self._files[key]

    def folder(self, root: Path) -> str:
        entries = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if not name.startswith(".") and path.is_file():
                    entries.append([path.relative_to(root).as_posix(), self.file(path)])
        return _digest(sorted(entries))

    def reference(self, value: str) -> str | None:
        """The content hash of what a model/pipeline/target string names, or None for a plain word
        (``zero``, ``stripes``) or an open_clip pretrained tag (named by the string itself)."""
        if value not in self._references:
            self._references[value] = self._resolve(value)
        return self._references[value]

    def _resolve(self, value: str) -> str | None:
        from bench import zoo

        if not value or value in (".", ".."):
            return None
        if value.startswith("open_clip:"):
            checkpoint = value.removeprefix("open_clip:").partition("/")[2]
            return self._path(Path(checkpoint).expanduser()) if checkpoint and Path(checkpoint).is_file() else None
        if zoo.is_zoo_model(value):
            return "zoo:" + _digest(zoo.manifest()[value]["files"])
        local = Path(value).expanduser()
        if local.exists():
            return self._path(local)
        if value.count("/") == 1 and not value.startswith((".", "/")):
            return "hub:" + hub_revision(value)
        return None

    def _path(self, path: Path) -> str:
        return ("sha256:" + self.file(path)) if path.is_file() else ("tree:" + self.folder(path))

    def data(self, spec: dict[str, Any]) -> str:
        from bench import data as data_module

        dataset, n = spec.get("dataset"), spec.get("n")
        if dataset == "fashion-mnist":
            kind = "t10k" if spec.get("split") == "test" else "train"
            root = data_module.fashion_mnist_dir()
            files = [root / f"{kind}-{part}-idx{dims}-ubyte.gz" for part, dims in (("images", 3), ("labels", 1))]
            return _digest([self.file(f) if f.is_file() else "missing" for f in files])
        path = Path(str(spec.get("path", "")))
        if dataset == "folder" and path.is_dir():
            images = sorted(p for p in path.iterdir() if p.suffix.lower() in data_module.IMAGE_SUFFIXES)
            chosen = images[:n] if isinstance(n, int) else images
            captions = path / "captions.json"
            return _digest([[p.name, self.file(p)] for p in chosen]
                           + [["captions.json", self.file(captions) if captions.is_file() else "none"]])
        return self.file(path) if path.is_file() else "missing"

    def references(self, tree: Any) -> dict[str, str]:
        """{reference: content hash} for every model/pipeline/target string and data spec in ``tree``
        (a resolved config or any nested dict/list of one)."""
        found: dict[str, str] = {}

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                if "dataset" in node and "n" in node:
                    found[f"data:{node.get('dataset')}:{node.get('split', '')}:{node.get('path', '')}:"
                          f"{node.get('n')}"] = self.data(node)
                    return
                for key, value in node.items():
                    if key in REFERENCE_KEYS and isinstance(value, str):
                        digest = self.reference(value)
                        if digest is not None:
                            found[value] = digest
                    else:
                        walk(value)
            elif isinstance(node, (list, tuple)):
                for value in node:
                    walk(value)

        walk(tree)
        return dict(sorted(found.items()))


def hub_revision(repo_id: str) -> str:
    """The commit the local Hugging Face cache resolves ``repo_id`` (its ``main`` ref) to."""
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:  # pragma: no cover - diffusers depends on huggingface_hub
        return "unresolved"
    ref = Path(HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "refs" / "main"
    try:
        return ref.read_text().strip() or "unresolved"
    except OSError:
        return "unresolved"
