"""One cell, one writer: per-cell claims that hold across processes, shards and machines sharing a
run folder.

A worker owns a cell while it holds that cell's highest-numbered claim file,
``cells/<key>/claims/<n>.json``, created with ``O_CREAT | O_EXCL`` (atomic on local file systems and
on NFS v3+, unlike ``flock``). A live owner touches its claim every ``heartbeat`` seconds. A claim is
stale when its owner is a dead process on this host, or when it has not been touched for
``stale_after`` seconds (a dead machine or Ray worker); then any worker may take the cell over by
creating claim ``n + 1``, and only one such creation succeeds. An owner checks that it still holds
the highest claim before it writes the cell's summary, so a worker that was declared dead never
overwrites its successor's work. A completed cell's claims are removed; a cell whose computation
raised keeps ``failed.json`` (the error) until a later run retries it.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_STALE_AFTER = 600.0
FAILED_NAME = "failed.json"


@dataclass(frozen=True)
class ClaimState:
    number: int
    owner: dict[str, Any]
    age_seconds: float
    live: bool


def _this_worker() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "token": uuid.uuid4().hex,
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class CellClaim:
    """The claim files of one cell folder."""

    def __init__(self, cell_folder: Path, stale_after: float = DEFAULT_STALE_AFTER):
        self.folder = cell_folder / "claims"
        self.failed_path = cell_folder / FAILED_NAME
        self.stale_after = stale_after
        self.owner: dict[str, Any] | None = None
        self.number: int | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def latest(self) -> ClaimState | None:
        """The highest claim, whether its owner looks alive, or None when the cell is unclaimed."""
        numbers = sorted(int(p.stem) for p in self.folder.glob("*.json") if p.stem.isdigit()) \
            if self.folder.is_dir() else []
        for number in reversed(numbers):
            path = self.folder / f"{number}.json"
            try:
                age = time.time() - path.stat().st_mtime
                owner = json.loads(path.read_text() or "{}")
            except (OSError, json.JSONDecodeError):
                owner, age = {}, 0.0  # being written this instant: treat as fresh
                with contextlib.suppress(OSError):
                    age = time.time() - path.stat().st_mtime
            return ClaimState(number, owner, age, self._looks_alive(owner, age))
        return None

    def _looks_alive(self, owner: dict[str, Any], age: float) -> bool:
        if age > self.stale_after:
            return False
        if owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int):
            return _process_alive(owner["pid"])
        return True

    def acquire(self) -> bool:
        """Claim the cell unless a live worker holds it; True when this process now owns it."""
        state = self.latest()
        if state is not None and state.live:
            return False
        number = 1 if state is None else state.number + 1
        owner = _this_worker()
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.folder / f"{number}.json", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False  # another worker claimed (or took over) this cell a moment ago
        with os.fdopen(fd, "w") as handle:
            json.dump(owner, handle)
        self.owner, self.number = owner, number
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeat, daemon=True)
        self._beat.start()
        return True

    def _heartbeat(self) -> None:
        path = self.folder / f"{self.number}.json"
        while not self._stop.wait(max(1.0, self.stale_after / 4)):
            with contextlib.suppress(OSError):
                os.utime(path)

    def still_owned(self) -> bool:
        state = self.latest()
        return (self.owner is not None and state is not None and state.number == self.number
                and state.owner.get("token") == self.owner["token"])

    def release(self, error: str | None = None) -> None:
        """Stop the heartbeat and give the cell up: on success every claim and an old failure are removed
        (if this worker still owned the cell), on an error the error is recorded in ``failed.json``."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        owned = self.still_owned()
        if error is not None:
            from bench.store import atomic_write_json

            atomic_write_json(self.failed_path, {"error": error, **(self.owner or {})})
        elif owned:
            self.failed_path.unlink(missing_ok=True)
        if owned:
            for path in self.folder.glob("*.json"):
                path.unlink(missing_ok=True)
        self.owner = self.number = None

    def failure(self) -> dict[str, Any] | None:
        if not self.failed_path.exists():
            return None
        try:
            return json.loads(self.failed_path.read_text())
        except (OSError, json.JSONDecodeError):
            return {"error": "failed.json cannot be read"}
