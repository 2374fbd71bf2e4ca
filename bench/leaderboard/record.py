"""The verification record ``bench verify`` writes into an entry, and its check by ``bench validate``.

``"verified": true`` is only believed with a record that matches the entry: the record holds the sha256
of the entry's canonical content (everything but ``verified`` and ``verification``), the suite version
and git commit that reran it, and one row per number of the entry: where it is, what it was compared
with (the claim, or the submitted measurement), the rerun's value and interval, the tolerance and the
outcome. ``check_record`` recomputes the sha, every reference, tolerance and outcome; an entry that
says verified without a matching, passed record is refused (``bench validate`` and ``render`` alike).

A record proves the entry was not edited after a verify that passed, and that the numbers in the
record are consistent with the entry; it is not a signature: whoever can write the file can write a
consistent record by hand. The trust anchor is the CI job that runs ``bench verify`` itself.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from bench.errors import BenchError
from bench.leaderboard.schema import DESCRIPTIVE_KEYS

Z95 = 1.959964
ABSOLUTE_FLOOR = 1e-3
RELATIVE_FLOOR = 0.01
RECORD_VERSION = 3
KNOWN_RECORD_VERSIONS = (2, 3)
"""Version 2 hashed the descriptive keys (``paper``, ...) too; version 3 leaves them out of the sha256."""
RECORD_KEYS = {"record_version", "passed", "checked", "claimed_checked", "failures", "entry_sha256",
               "suite_version", "git", "device", "dtype", "date", "checks"}
CHECK_KEYS = {"at", "against", "reference", "rerun", "low", "high", "tolerance", "passed"}


def tolerance(reference: float, low: float, high: float) -> float:
    standard_error = (high - low) / (2 * Z95)
    return max(Z95 * standard_error, ABSOLUTE_FLOOR, RELATIVE_FLOOR * abs(reference))


@dataclass(frozen=True)
class Check:
    where: str
    against: str
    reference: float
    measured: float
    tolerance: float
    low: float = math.nan
    high: float = math.nan

    @property
    def passed(self) -> bool:
        return abs(self.measured - self.reference) <= self.tolerance

    def describe(self) -> str:
        return (f"{self.where}: measured {self.measured:.6g}, {self.against} {self.reference:.6g}, "
                f"allowed difference {self.tolerance:.3g}")

    def row(self) -> dict[str, Any]:
        return {"at": self.where, "against": self.against, "reference": self.reference, "rerun": self.measured,
                "low": self.low, "high": self.high, "tolerance": self.tolerance, "passed": self.passed}


def canonical_sha256(entry: dict[str, Any], version: int = RECORD_VERSION) -> str:
    """sha256 of what was measured: the entry without ``verified``, ``verification`` and (from record version 3)
    the descriptive keys (:data:`schema.DESCRIPTIVE_KEYS`: paper, authors, venue, footnote, unreliable), which
    a maintainer may correct without a rerun; sorted keys, no whitespace, UTF-8."""
    left_out = {"verified", "verification"} | (set(DESCRIPTIVE_KEYS) if version >= 3 else set())
    content = {key: value for key, value in entry.items() if key not in left_out}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def upgrade(entry: dict[str, Any]) -> dict[str, Any]:
    """A version-2 record that matches the entry, rewritten as version 3 (its sha256 over the measured part
    only); everything else in the record is kept, and :func:`problem` re-checks it all. Refuses a record
    that does not match, so an edited entry is never blessed by the upgrade."""
    record = entry.get("verification")
    if not isinstance(record, dict) or record.get("record_version") != 2:
        raise BenchError("only a version-2 verification record can be upgraded")
    why = problem(entry)
    if why is not None:
        raise BenchError(f"the version-2 record does not match the entry ({why}); run `bench verify` instead")
    upgraded = {**record, "record_version": 3, "entry_sha256": canonical_sha256(entry, 3)}
    return {**entry, "verification": upgraded}


def references(entry: dict[str, Any]) -> dict[str, tuple[str, float]]:
    """Every number verify compares: location -> (``claimed`` or ``submitted``, the reference value)."""
    found = {}
    for i, result in enumerate(entry["results"]):
        for column, values in sorted(result["metrics"].items()):
            claimed = values["claimed"]
            found[f"results[{i}].metrics.{column}"] = (("claimed", float(claimed)) if claimed is not None
                                                      else ("submitted", float(values["measured"])))
    return found


def build(entry: dict[str, Any], checks: list[Check], provenance: dict[str, Any], device: str) -> dict[str, Any]:
    failures = [c.describe() for c in checks if not c.passed]
    return {"record_version": RECORD_VERSION, "passed": not failures and bool(checks), "checked": len(checks),
            "claimed_checked": sum(c.against == "claimed" for c in checks), "failures": failures,
            "entry_sha256": canonical_sha256(entry),
            "suite_version": str(provenance.get("suite_version", "")), "git": str(provenance.get("git", "")),
            "device": str(provenance.get("device", device)), "dtype": str(provenance.get("dtype", "")),
            "date": str(provenance.get("date", "")), "checks": [c.row() for c in checks]}


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BenchError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def problem(entry: dict[str, Any]) -> str | None:
    """Why the entry's record does not back ``verified: true`` (None when it does)."""
    record = entry.get("verification")
    if not isinstance(record, dict):
        return "there is no verification record"
    if record.get("record_version") not in KNOWN_RECORD_VERSIONS or set(record) != RECORD_KEYS:
        return "the verification record is not one this suite's `bench verify` writes"
    if record["entry_sha256"] != canonical_sha256(entry, record["record_version"]):
        return "the entry changed after it was verified (its sha256 differs from the record's)"
    if record["passed"] is not True or record["failures"]:
        return "the verification record says the rerun did not reproduce the numbers"
    expected = references(entry)
    rows = record["checks"]
    if not isinstance(rows, list) or record["checked"] != len(rows):
        return "the verification record's checks are malformed"
    seen = {}
    for j, row in enumerate(rows):
        if not isinstance(row, dict) or set(row) != CHECK_KEYS or not isinstance(row["at"], str):
            return f"verification.checks[{j}] is malformed"
        seen[row["at"]] = row
    if set(seen) != set(expected) or len(seen) != len(rows):
        missing = sorted(set(expected) - set(seen)) or sorted(set(seen) - set(expected))
        return f"the verification record does not cover the entry's numbers (e.g. {missing[0] if missing else '?'})"
    try:
        for at, (against, reference) in expected.items():
            row = seen[at]
            recorded = _number(row["reference"], at)
            if row["against"] != against or recorded != reference:
                return f"{at}: the record compared with {row['against']} {recorded!r}, the entry holds {reference!r}"
            rerun, low, high = (_number(row[k], at) for k in ("rerun", "low", "high"))
            allowed = tolerance(reference, low, high)
            if not math.isclose(_number(row["tolerance"], at), allowed, rel_tol=1e-12, abs_tol=0.0):
                return f"{at}: the record's tolerance is not the one the interval gives"
            if row["passed"] is not True or abs(rerun - reference) > allowed:
                return f"{at}: the rerun's {rerun!r} is not within {allowed:.3g} of {reference!r}"
    except BenchError as err:
        return str(err)
    if record["claimed_checked"] != sum(a == "claimed" for a, _ in expected.values()):
        return "the verification record's claimed_checked is wrong"
    return None


def is_verified(entry: dict[str, Any]) -> bool:
    """What the pages show as ✓: the flag and a matching, passed record."""
    return entry.get("verified") is True and problem(entry) is None
