"""``bench status RUN_DIR``: where each cell of a run folder stands, whatever wrote it (a local run,
shards on several machines, Ray workers): done, running (and by whom, how far), stale (its worker
stopped answering), failed (with the error) or pending."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from bench.claims import DEFAULT_STALE_AFTER, CellClaim
from bench.store import RunStore

STATES = ("done", "running", "stale", "failed", "pending")


def cell_states(run_dir: str | Path, stale_after: float = DEFAULT_STALE_AFTER) -> list[dict[str, Any]]:
    run = RunStore(run_dir)
    rows = []
    for key in run.cell_keys():
        store = run.cell(key)
        claim = CellClaim(store.folder, stale_after)
        latest, failure = claim.latest(), claim.failure()
        batches = len(list((store.folder / "batches").glob("*.safetensors")))
        row = {"cell": key, "label": store.label, "batches": batches, "detail": ""}
        if store.is_complete():
            row["state"] = "done"
        elif latest is not None and latest.live:
            row["state"] = "running"
            row["detail"] = (f"{latest.owner.get('host', '?')} pid {latest.owner.get('pid', '?')}, "
                             f"heartbeat {latest.age_seconds:.0f} s ago")
        elif latest is not None:
            row["state"] = "stale"
            row["detail"] = (f"{latest.owner.get('host', '?')} pid {latest.owner.get('pid', '?')} stopped "
                             f"{latest.age_seconds:.0f} s ago; the next run takes the cell over")
        elif failure is not None:
            row["state"] = "failed"
            row["detail"] = str(failure.get("error", ""))[:200]
        else:
            row["state"] = "pending"
        rows.append(row)
    return rows


def render_status(rows: list[dict[str, Any]]) -> str:
    from tabulate import tabulate

    counts = Counter(row["state"] for row in rows)
    table = tabulate([[r["cell"][:12], r["label"], r["state"], r["batches"], r["detail"]] for r in rows],
                     headers=["cell", "label", "state", "batches stored", "detail"], tablefmt="github")
    return f"{table}\n\n" + ", ".join(f"{counts[state]} {state}" for state in STATES)
