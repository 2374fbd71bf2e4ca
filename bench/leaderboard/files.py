"""Safe reading and writing of leaderboard files.

Submissions come from strangers, so they are treated as data only: read with a size cap, parsed with
``json.loads`` (no NaN/Infinity, no duplicate keys), never executed or unpickled; names cannot
escape their folder (no ``..``, no absolute paths, no symlinks pointing out).
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from bench.errors import BenchError

MAX_ENTRY_BYTES = 1_000_000
SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}$")
RENDERED_FILES = ("README.md", "index.html")
RENDERED_PLOT = re.compile(r"^tradeoff-[a-z0-9][a-z0-9._-]{0,79}\.svg$")
DOC_FILES = ("SCHEMA.md",)


def is_rendered_or_doc(name: str) -> bool:
    """The files ``bench leaderboard render`` writes (pages, trade-off plots) and the schema document."""
    return name in RENDERED_FILES + DOC_FILES or bool(RENDERED_PLOT.match(name))


def shown(path: Path) -> str:
    """The path as the user should read it: relative to the working directory when possible."""
    try:
        return str(Path(path).absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def is_inside(path: Path, root: Path) -> bool:
    """Whether ``path``, with every symlink followed, stays inside ``root``."""
    return Path(os.path.realpath(path)).is_relative_to(Path(os.path.realpath(root)))


def check_slug(name: str, what: str, where: str) -> None:
    """Track and entry names: lower-case letters, digits, ``.``, ``_``, ``-``; never ``..``."""
    if not isinstance(name, str) or not SLUG.match(name) or ".." in name:
        raise BenchError(f"{where}: {what} {name!r} is not allowed; use lower-case letters, digits, '-', '_' "
                         "and '.', starting with a letter or digit, with no '..' (e.g. 'my-defense')")


def check_relative(path: str, root: Path, where: str) -> Path:
    """A path written in an entry: relative, without ``..``, and inside ``root`` once symlinks are followed."""
    if not isinstance(path, str) or not path:
        raise BenchError(f"{where}: expected a relative path, got {path!r}")
    parts = Path(path).parts
    if Path(path).is_absolute() or path.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", path):
        raise BenchError(f"{where}: {path!r} is an absolute path; write it relative to the repository root")
    if ".." in parts or "\\" in path:
        raise BenchError(f"{where}: {path!r} leaves the repository ('..' or '\\'); write a path inside it")
    full = root / path
    if not is_inside(full, root):
        raise BenchError(f"{where}: {path!r} is a symlink pointing outside the repository; commit the file itself")
    return full


def read_json_file(path: Path, root: Path) -> Any:
    """One submitted JSON file, refused when it is a symlink out of ``root``, too large, or not plain JSON."""
    if path.is_symlink() and not is_inside(path, root):
        raise BenchError(f"{shown(path)}: is a symlink pointing outside {shown(root)}; commit the file itself")
    if not path.is_file():
        raise BenchError(f"{shown(path)}: no such file")
    size = path.stat().st_size
    if size > MAX_ENTRY_BYTES:
        raise BenchError(f"{shown(path)}: {size} bytes is over the {MAX_ENTRY_BYTES} byte limit for an entry; "
                         "keep only the summary numbers in it")
    with path.open("rb") as handle:
        raw = handle.read(MAX_ENTRY_BYTES + 1)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BenchError(f"{shown(path)}: is not UTF-8 text; save it as UTF-8 JSON") from None
    return loads_strict(text, shown(path))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number in JSON; write a finite number or null")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key {key!r} appears twice in the same object; keep one")
        result[key] = value
    return result


MAX_INT_DIGITS = 18


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise ValueError(f"a {digits}-digit integer is too large for an entry (at most {MAX_INT_DIGITS} digits); "
                         "check the number")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]}{'...' if len(text) > 40 else ''} is too large to be a finite number; "
                         "check the number")
    return value


def loads_strict(text: str, where: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_reject_constant,
                          parse_int=_bounded_int, parse_float=_finite_float)
    except json.JSONDecodeError as err:
        raise BenchError(f"{where}: not valid JSON at line {err.lineno}, column {err.colno} ({err.msg}); "
                         "fix the syntax") from None
    except ValueError as err:
        raise BenchError(f"{where}: {err}") from None
    except RecursionError:
        raise BenchError(f"{where}: nested too deeply to be an entry; see leaderboards/SCHEMA.md") from None


def dumps_entry(entry: dict[str, Any]) -> str:
    return json.dumps(entry, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def _default_mode() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file.
    The file gets ordinary permissions (those of the file it replaces, else 0666 less the umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.is_file() and not path.is_symlink() else _default_mode()
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp", encoding="utf-8",
                                     newline="\n") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(handle.name, mode)
    os.replace(handle.name, path)
