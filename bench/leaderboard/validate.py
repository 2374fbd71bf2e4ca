"""Full validation of leaderboard entries: schema, registered names, metric directions, weight hashes,
safe file names, and duplicates within a track.

The leaderboard root is the folder holding one sub-folder per track (``leaderboards/``); local weight
paths are relative to the repository root, its parent (the zoo's weights live in ``bench/zoo``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.leaderboard import files, record, safety, schema

DEFAULT_ROOT = Path("leaderboards")
MAX_WEIGHT_FOLDER_FILES = 256
MAX_WEIGHT_BYTES = 32 * 1024**3
"""A weights folder is hashed only up to this many files and bytes (a whole repository is refused)."""


@dataclass(frozen=True)
class LoadedEntry:
    path: Path
    entry: dict[str, Any]
    checked_grid: dict[str, Any] | None = None
    """The grid as :func:`safety.check_entry` accepted it (a copy); ``bench verify`` runs only this."""

    @property
    def track(self) -> str:
        return self.entry["track"]


def sha256_path(path: Path, repo: Path) -> str:
    """sha256 of a file; for a folder, sha256 of the ``"<sha256>  <relative path>\\n"`` lines of its files,
    sorted by path (what ``find . -type f | sort | xargs sha256sum`` prints, minus the ``./``)."""
    from bench.assets import sha256_file

    if path.is_file():
        return sha256_file(path)
    children, total = [], 0
    for child in path.rglob("*"):
        if ".git" in child.relative_to(path).parts:
            raise BenchError(f"{files.shown(child)} lies in .git; weights folders may not hold .git files")
        if not files.is_inside(child, repo):
            raise BenchError(f"{files.shown(child)} is a symlink pointing outside the repository")
        if child.is_file():
            children.append(child)
            total += child.stat().st_size
        if len(children) > MAX_WEIGHT_FOLDER_FILES or total > MAX_WEIGHT_BYTES:
            raise BenchError(f"{files.shown(path)} holds more than {MAX_WEIGHT_FOLDER_FILES} files or "
                             f"{MAX_WEIGHT_BYTES // 1024**3} GiB; list the weight files themselves")
    lines = []
    for child in sorted(children):
        lines.append(f"{sha256_file(child)}  {child.relative_to(path).as_posix()}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def check_weights(entry: dict[str, Any], repo: Path) -> None:
    """Local weights (repository-relative paths) are re-hashed; remote ones (hf://, https://) are not."""
    for i, item in enumerate(entry["weights"]):
        where = f"weights[{i}].path"
        if schema.weights_are_remote(item["path"]):
            continue
        local = files.check_relative(item["path"], repo, where)
        real = Path(os.path.realpath(local))
        if real == Path(os.path.realpath(repo)):
            raise BenchError(f"{where}: {item['path']!r} is the repository root; list the weight files or "
                             "their folder")
        if any(part == ".git" for part in Path(item["path"]).parts
               + real.relative_to(Path(os.path.realpath(repo))).parts):
            raise BenchError(f"{where}: {item['path']!r} lies in .git; list the weight files themselves")
        if not local.exists():
            raise BenchError(f"{where}: {item['path']!r} does not exist in the repository; commit the weights "
                             "there or give an hf:// or https:// location")
        actual = sha256_path(local, repo)
        if actual != item["sha256"]:
            raise BenchError(f"weights[{i}].sha256: {item['path']} has sha256 {actual}, the entry says "
                             f"{item['sha256']}; restore the submitted weights or resubmit the entry")


def check_registered(entry: dict[str, Any]) -> None:
    """Plugin names exist in the registries; every metric's direction matches its registered class."""
    from bench.plugins import ATTACKS, DEFENSES, METRICS, SCENARIOS

    for where, registry, name in [("defense.name", DEFENSES, entry["defense"]["name"]),
                                  ("scenario.name", SCENARIOS, entry["scenario"]["name"])]:
        _check_name(where, registry, name)
    for i, result in enumerate(entry["results"]):
        _check_name(f"results[{i}].attack.name", ATTACKS, result["attack"]["name"])
        for column, values in result["metrics"].items():
            where = f"results[{i}].metrics.{column}"
            if column in schema.SCENARIO_QUANTITIES:
                expected = schema.SCENARIO_QUANTITIES[column]
            else:
                base = schema.base_metric(column)
                _check_name(where, METRICS, base)
                expected = bool(METRICS.get(base).higher_is_better)
            if values["higher_is_better"] != expected:
                raise BenchError(f"{where}.higher_is_better: is {json.dumps(values['higher_is_better'])} but "
                                 f"{column} is {'higher' if expected else 'lower'} is better; write "
                                 f"{json.dumps(expected)}")


def _check_name(where: str, registry, name: str) -> None:
    if name not in registry:
        try:
            registry.check(name)
        except BenchError as err:
            raise BenchError(f"{where}: {err}") from None


def load_entry(path: Path, root: Path, full: bool = True, verifying: bool = False) -> LoadedEntry:
    """Read and check one entry file; ``full`` adds what it may load (:mod:`safety`), registries, directions
    and weight hashes. ``verified: true`` needs a matching verification record (:mod:`record`), except
    when ``verifying`` (``bench verify`` is about to write a new one)."""
    where = files.shown(path)
    try:
        track = path.parent.name
        files.check_slug(track, "track name", "track folder")
        if track not in schema.TRACKS:
            raise BenchError(f"{track!r} is not a track; known tracks: {', '.join(sorted(schema.TRACKS))}")
        files.check_slug(path.stem, "entry file name", "file name")
        entry = schema.check_entry(files.read_json_file(path, root))
        if entry["track"] != track:
            raise BenchError(f"track: says {entry['track']!r} but the file is in the {track!r} folder; "
                             "move the file or fix the track")
        if entry["name"] != path.stem:
            raise BenchError(f"name: {entry['name']!r} differs from the file name {path.name}; rename the file "
                             f"to {entry['name']}.json or fix the name")
        if entry["verified"] and not verifying:
            why = record.problem(entry)
            if why is not None:
                raise BenchError(f"verified: is true but {why}; run `bench verify {where}` (or set verified to "
                                 "false)")
        grid = None
        if full:
            grid = safety.check_entry(entry, root.absolute().parent)
            check_registered(entry)
            check_weights(entry, root.parent)
        schema.check_grid_scenario(entry)
    except BenchError as err:
        message = str(err)
        raise BenchError(message if message.startswith(where) else f"{where}: {message}") from None
    return LoadedEntry(path, entry, grid)


def defense_identity(entry: dict[str, Any]) -> str:
    return json.dumps({"name": entry["defense"]["name"], "config": entry["defense"]["config"]}, sort_keys=True)


def find_duplicates(entries: list[LoadedEntry]) -> list[str]:
    """One message per entry whose defense (name + config) is already on the same track."""
    first: dict[tuple[str, str], LoadedEntry] = {}
    problems = []
    for loaded in sorted(entries, key=lambda e: str(e.path)):
        key = (loaded.track, defense_identity(loaded.entry))
        if key in first:
            problems.append(f"{files.shown(loaded.path)}: defense: the same defense ({loaded.entry['defense']['name']} "
                            f"with the same config) is already entered as {files.shown(first[key].path)}; "
                            "keep one entry")
        else:
            first[key] = loaded
    return problems


def entry_paths(root: Path) -> list[Path]:
    """Every ``<root>/<track>/<name>.json``; anything that could escape the root raises."""
    if not root.is_dir():
        raise BenchError(f"{files.shown(root)} is not a folder; pass the leaderboard folder (leaderboards/)")
    paths = []
    for child in sorted(root.iterdir()):
        if (files.is_rendered_or_doc(child.name) and child.is_file() and not child.is_symlink()) \
                or child.name.startswith("."):
            continue
        if child.is_symlink() and not files.is_inside(child, root):
            raise BenchError(f"{files.shown(child)}: is a symlink pointing outside {files.shown(root)}; remove it")
        if not child.is_dir():
            raise BenchError(f"{files.shown(child)}: only track folders belong in {files.shown(root)}; move it "
                             "into a track folder")
        if child.name not in schema.TRACKS:
            raise BenchError(f"{files.shown(child)}: {child.name!r} is not a track; known tracks: "
                             f"{', '.join(sorted(schema.TRACKS))}")
        paths.extend(sorted(p for p in child.iterdir() if p.suffix == ".json"))
    return paths


def resolve_target(path: Path) -> tuple[Path, list[Path]]:
    """``bench validate PATH``: the leaderboard root, a track folder, or one entry -> (root, entry files)."""
    if path.suffix == ".json" or path.is_file():
        return path.parent.parent, [path]
    if path.name in schema.TRACKS and path.is_dir():
        return path.parent, sorted(p for p in path.iterdir() if p.suffix == ".json")
    return path, entry_paths(path)


def validate_all(path: Path = DEFAULT_ROOT, full: bool = True) -> tuple[list[LoadedEntry], list[str]]:
    """All entries under ``path`` -> (the valid ones, one message per bad file plus duplicates)."""
    root, paths = resolve_target(path)
    loaded, problems = [], []
    for entry_path in paths:
        try:
            loaded.append(load_entry(entry_path, root, full=full))
        except BenchError as err:
            problems.append(str(err))
    if len(paths) == 1 and loaded:
        problems.extend(duplicates_of(loaded[0], root))
    else:
        problems.extend(find_duplicates(loaded))
    return loaded, problems


def duplicates_of(candidate: LoadedEntry, root: Path) -> list[str]:
    """Whether ``candidate`` repeats a defense already entered in its track (other files checked lightly)."""
    others = []
    folder = root / candidate.track
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        if path.name == candidate.path.name:
            continue
        try:
            others.append(load_entry(path, root, full=False))
        except BenchError:
            continue
    identity = defense_identity(candidate.entry)
    return [f"{files.shown(candidate.path)}: defense: the same defense ({candidate.entry['defense']['name']} with "
            f"the same config) is already entered as {files.shown(other.path)}; keep one entry"
            for other in others if other.track == candidate.track and defense_identity(other.entry) == identity]


def load_all(root: Path = DEFAULT_ROOT, full: bool = False) -> list[LoadedEntry]:
    """Every entry, or a BenchError carrying every problem (one per line)."""
    loaded, problems = validate_all(root, full=full)
    if problems:
        raise BenchError("\n".join(problems) + "\nfix these entries (`bench validate`)")
    return loaded
