"""Leaderboard entries: submit from a (fake) run folder, validate, verify with a stubbed rerun, render."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
from pathlib import Path

import pytest

from bench.errors import BenchError
from bench.leaderboard import files, render, schema, submit, validate, verify
from bench.leaderboard.cli import add_leaderboard_commands

TRACK = "vae-protection"
PGD_EPS = 0.0313725
DIRECTIONS = {"psnr": True, "ssim": True, "lpips": False, "fid": False, "linf": False, "latent_shift": False,
              "psnr_vs_clean_rec": True}


def metric_values(name: str, value: float) -> dict:
    width = 0.0 if name == "linf" or not math.isfinite(value) else 0.05 * abs(value)
    return {"value": value, "low": value - width, "high": value + width, "n": 8,
            "higher_is_better": DIRECTIONS[name], "kind": "set" if name == "fid" else "mean"}


def cell_summary(repo: Path, label: str, attack: str, eps: float, psnr: float, seed: int = 0) -> dict:
    weights = repo / "weights" / label / "model.safetensors"
    values = {"psnr": psnr, "ssim": 0.8, "lpips": 0.1, "fid": 12.0, "linf": eps, "latent_shift": 0.5 if eps else 0.0,
              "psnr_vs_clean_rec": psnr + 10 if eps else math.inf}
    config = {"defense": {"name": "vae", "version": "1", "config": {"model": f"weights/{label}", "latent": "mean",
                                                                   "subfolder": "", "trust_pickle": False}},
              "attack": {"name": attack, "version": "1", "config": {"eps": eps}},
              "scenario": {"name": "reconstruction", "version": "1", "config": {}},
              "metrics": [{"name": m, "version": "1", "config": {}} for m in ("psnr", "ssim", "lpips", "fid")],
              "data": {"dataset": "fashion-mnist", "n": 8, "split": "test", "path": ""}, "seed": seed,
              "batch_size": 8}
    return {"key": f"{label}-{attack}-{seed}", "defense": label, "attack": attack, "scenario": "reconstruction",
            "eps": eps, "n": 8, "config": config,
            "metrics": {name: metric_values(name, value) for name, value in values.items()},
            "weights": {str(weights): hashlib.sha256(weights.read_bytes()).hexdigest()},
            "provenance": {"suite_version": "0.1.0", "git": "abc123", "packages": {"torch": "2"}, "python": "3.11",
                           "device": "cpu", "dtype": "torch.float32", "seed": seed, "date": "2026-01-01T00:00:00"}}


def make_run(tmp_path: Path, psnr_by_label: dict[str, float] | None = None, name: str = "run") -> Path:
    """A finished run folder as bench/runner.py writes it, with weights inside ``tmp_path/repo``."""
    repo = tmp_path / "repo"
    psnr_by_label = psnr_by_label or {"mine": 20.0}
    run_dir = tmp_path / name
    summaries = []
    for label, psnr in psnr_by_label.items():
        weights = repo / "weights" / label / "model.safetensors"
        weights.parent.mkdir(parents=True, exist_ok=True)
        weights.write_bytes(label.encode() * 100)
        summaries += [cell_summary(repo, label, "none", 0.0, psnr + 10),
                      cell_summary(repo, label, "pgd-encoder", PGD_EPS, psnr)]
    grid = {"name": "t", "seed": 0, "data": {"dataset": "fashion-mnist", "n": 8, "split": "test"},
            "scenario": "reconstruction", "metrics": ["psnr", "ssim", "lpips", "fid"],
            "defenses": [{"name": "vae", "label": label, "model": f"weights/{label}"} for label in psnr_by_label],
            "attacks": ["none", "pgd-encoder"], "eps": [PGD_EPS]}
    for summary in summaries:
        folder = run_dir / "cells" / summary["key"]
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps(summary))
    (run_dir / "run.json").write_text(json.dumps({"grid": grid, "cells": [s["key"] for s in summaries]}))
    return run_dir


def write_entries(tmp_path: Path, psnr_by_label: dict[str, float], claimed: dict | None = None) -> Path:
    """Entries written straight from build_entry (no registry import): the root of the leaderboard."""
    run_dir = make_run(tmp_path, psnr_by_label)
    root = tmp_path / "repo" / "leaderboards"
    for label in psnr_by_label:
        entry = submit.build_entry(run_dir, TRACK, root.parent, defense_label=label)
        if claimed:
            submit.apply_claims(entry["results"], claimed, "claims")
        files.atomic_write_text(root / TRACK / f"{label}.json", files.dumps_entry(entry))
    return root


@pytest.fixture
def entry_path(tmp_path) -> Path:
    return write_entries(tmp_path, {"mine": 20.0}) / TRACK / "mine.json"


def problems_after(path: Path, change) -> list[str]:
    entry = json.loads(path.read_text())
    change(entry)
    path.write_text(json.dumps(entry))
    return validate.validate_all(path.parent.parent)[1]


def only_problem(problems: list[str]) -> str:
    assert len(problems) == 1, problems
    return problems[0]


# --- submit -------------------------------------------------------------------------------------------


def test_submit_writes_a_valid_entry_with_provenance(tmp_path):
    run_dir = make_run(tmp_path)
    root = tmp_path / "repo" / "leaderboards"
    path = submit.submit(run_dir, TRACK, root, paper="https://arxiv.org/abs/2402.00001")
    entry = json.loads(path.read_text())
    assert path == root / TRACK / "mine.json"
    assert entry["schema_version"] == 1 and entry["verified"] is False
    assert entry["defense"] == {"name": "vae", "label": "mine", "version": "1",
                                "config": {"model": "weights/mine", "latent": "mean", "subfolder": "",
                                           "trust_pickle": False}}
    assert entry["weights"][0]["path"] == "weights/mine/model.safetensors"
    assert entry["suite_version"] == "0.1.0" and entry["provenance"]["git"] == "abc123"
    assert [r["attack"]["label"] for r in entry["results"]] == ["none", "pgd-encoder"]
    psnr = entry["results"][1]["metrics"]["psnr"]
    assert psnr["measured"] == 20.0 and psnr["claimed"] is None and isinstance(psnr["low"], float)
    assert "psnr_vs_clean_rec" not in entry["results"][0]["metrics"]  # inf for the clean row: left out
    assert entry["grid"]["defenses"] == [{"name": "vae", "label": "mine", "model": "weights/mine"}]
    assert validate.validate_all(root)[1] == []


def test_submit_command_writes_the_entry(tmp_path, capsys):
    run_dir = make_run(tmp_path)
    root = tmp_path / "repo" / "leaderboards"
    assert run_cli(["submit", str(run_dir), "--track", TRACK, "--root", str(root), "--name", "my-vae"]) == 0
    assert (root / TRACK / "my-vae.json").is_file() and "wrote" in capsys.readouterr().out
    assert run_cli(["submit", str(run_dir), "--track", TRACK, "--root", str(root), "--name", "../up"]) == 2
    assert "entry name '../up' is not allowed" in capsys.readouterr().out


def test_submit_picks_one_defense_of_several(tmp_path):
    run_dir = make_run(tmp_path, {"a": 20.0, "b": 25.0})
    root = tmp_path / "repo" / "leaderboards"
    with pytest.raises(BenchError, match="several defenses .*--defense"):
        submit.build_entry(run_dir, TRACK, root.parent)
    entry = submit.build_entry(run_dir, TRACK, root.parent, defense_label="b", name="b-entry")
    assert entry["name"] == "b-entry" and entry["defense"]["label"] == "b"
    assert [d["label"] for d in entry["grid"]["defenses"]] == ["b"]
    with pytest.raises(BenchError, match="no defense labelled 'c'"):
        submit.build_entry(run_dir, TRACK, root.parent, defense_label="c")


def test_submit_claims_numbers_and_rejects_strings(tmp_path):
    run_dir = make_run(tmp_path)
    claims = tmp_path / "claims.json"
    claims.write_text(json.dumps({"pgd-encoder": {"psnr": 21.5}}))
    entry = submit.build_entry(run_dir, TRACK, tmp_path / "repo", claimed=claims)
    assert entry["results"][1]["metrics"]["psnr"]["claimed"] == 21.5
    claims.write_text(json.dumps({"pgd-encoder": {"psnr": "21.5"}}))
    with pytest.raises(BenchError, match=r'pgd-encoder\.psnr: "21.5" is a string; write the number 21.5'):
        submit.build_entry(run_dir, TRACK, tmp_path / "repo", claimed=claims)
    claims.write_text(json.dumps({"pgd": {"psnr": 1}}))
    with pytest.raises(BenchError, match="no attack 'pgd'"):
        submit.build_entry(run_dir, TRACK, tmp_path / "repo", claimed=claims)


def test_submit_refuses_unfinished_runs_outside_weights_and_unknown_tracks(tmp_path):
    run_dir = make_run(tmp_path)
    with pytest.raises(BenchError, match="unknown track"):
        submit.build_entry(run_dir, "vae-protect", tmp_path / "repo")
    with pytest.raises(BenchError, match="outside the repository"):
        submit.build_entry(run_dir, TRACK, tmp_path / "elsewhere")
    next((run_dir / "cells").glob("*/summary.json")).unlink()
    with pytest.raises(BenchError, match="1 of 2 cells are unfinished"):
        submit.build_entry(run_dir, TRACK, tmp_path / "repo")


def test_submit_refuses_a_duplicate_defense(tmp_path):
    run_dir = make_run(tmp_path)
    root = tmp_path / "repo" / "leaderboards"
    submit.submit(run_dir, TRACK, root)
    with pytest.raises(BenchError, match="already exists"):
        submit.submit(run_dir, TRACK, root)
    with pytest.raises(BenchError, match="same defense .* already entered as"):
        submit.submit(run_dir, TRACK, root, name="again")


# --- validate -----------------------------------------------------------------------------------------


def test_a_wrong_key_is_named_with_a_hint(entry_path):
    original = entry_path.read_text()
    message = only_problem(problems_after(entry_path, lambda e: e.update(scheme_version=e.pop("schema_version"))))
    assert message.startswith(f"{files.shown(entry_path)}: scheme_version: unknown key")
    assert "did you mean 'schema_version'?" in message

    def rename_measured(entry):
        metrics = entry["results"][1]["metrics"]["psnr"]
        metrics["mesured"] = metrics.pop("measured")
    entry_path.write_text(original)
    assert "results[1].metrics.psnr.mesured: unknown key" in only_problem(problems_after(entry_path, rename_measured))


def test_a_string_where_a_number_belongs_is_rejected(entry_path):
    def stringify(entry):
        entry["results"][1]["metrics"]["psnr"]["measured"] = "0.5"
    message = only_problem(problems_after(entry_path, stringify))
    assert message == (f'{files.shown(entry_path)}: results[1].metrics.psnr.measured: "0.5" is a string; '
                       "write the number 0.5")


@pytest.mark.parametrize("bad_path, expected", [
    ("../outside.bin", "leaves the repository"),
    ("/etc/passwd", "is an absolute path"),
    ("weights/../../outside.bin", "leaves the repository"),
    ("weights/missing.bin", "does not exist in the repository"),
])
def test_a_weights_path_outside_the_folder_is_rejected(entry_path, bad_path, expected):
    def point_out(entry):
        entry["weights"][0]["path"] = bad_path
    message = only_problem(problems_after(entry_path, point_out))
    assert "weights[0].path" in message and expected in message


def test_symlinks_pointing_out_are_rejected(entry_path, tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"secret")
    (tmp_path / "repo" / "weights" / "link.bin").symlink_to(outside)

    def via_link(entry):
        entry["weights"][0] = {"path": "weights/link.bin", "sha256": hashlib.sha256(b"secret").hexdigest()}
    assert "symlink pointing outside" in only_problem(problems_after(entry_path, via_link))
    outside_entry = tmp_path / "outside.json"
    outside_entry.write_text(entry_path.read_text())
    entry_path.unlink()
    entry_path.symlink_to(outside_entry)
    assert "symlink pointing outside" in only_problem(validate.validate_all(entry_path.parent.parent)[1])


def test_a_wrong_sha256_is_rejected(entry_path):
    def tamper(entry):
        entry["weights"][0]["sha256"] = "0" * 64
    message = only_problem(problems_after(entry_path, tamper))
    assert "weights[0].sha256: weights/mine/model.safetensors has sha256" in message
    assert "the entry says " + "0" * 64 in message


@pytest.mark.parametrize("change, expected", [
    (lambda e: e["defense"].update(name="vea"), "defense.name: unknown defense 'vea'; did you mean 'vae'"),
    (lambda e: e["results"][1]["metrics"]["ssim"].update(measured=1.5), "results[1].metrics.ssim.measured: 1.5 is outside [-1, 1]"),
    (lambda e: e["results"][1]["metrics"]["lpips"].update(low=-0.1), "metrics.lpips.low: -0.1 is outside [0, inf]"),
    (lambda e: e["results"][1]["metrics"]["lpips"].update(higher_is_better=True), "lpips is lower is better; write false"),
    (lambda e: e["results"][1]["metrics"]["linf"].update(higher_is_better=True), "linf is lower is better"),
    (lambda e: e["results"][1]["metrics"].update(sharpness=e["results"][1]["metrics"]["psnr"]), "unknown metric 'sharpness'"),
    (lambda e: e.update(paper="javascript:alert(1)"), "paper: 'javascript:alert(1)' is not an http(s) URL"),
    (lambda e: e.update(name="other"), "name: 'other' differs from the file name mine.json"),
    (lambda e: e.update(schema_version=2), "schema_version: 2 is not a known schema version"),
    (lambda e: e.update(verified=True), "verified: is true but there is no verification record"),
    (lambda e: e["results"][1]["metrics"]["psnr"].update(n=True), "metrics.psnr.n: expected a whole number"),
    (lambda e: e["results"][1].update(threat_model="sideways"), "results[1].threat_model: 'sideways' is not a threat"),
    (lambda e: e["results"].append(json.loads(json.dumps(e["results"][1]))), "already appears in results[1]"),
])
def test_bad_values_names_and_directions_get_one_clear_message(entry_path, change, expected):
    assert expected in only_problem(problems_after(entry_path, change))


def test_one_attack_may_appear_at_each_non_pixel_budget_and_a_hostile_budget_is_named(entry_path):
    def at_scales(*scales):
        def change(entry):
            row = entry["results"][1]
            entry["results"][1:] = [json.loads(json.dumps({**row, "attack": {**row["attack"], "config": {
                **row["attack"]["config"], "scale": scale}}})) for scale in scales]
        return change

    assert problems_after(entry_path, at_scales(0.1, 0.2)) == []
    assert "already appears in results[1]" in only_problem(problems_after(entry_path, at_scales({"a": [1]}, {"a": [1]})))


def test_one_attack_may_appear_under_each_threat_model(entry_path):
    def add_transfer_row(entry):
        row = json.loads(json.dumps(entry["results"][1]))
        entry["results"][1]["threat_model"] = "adaptive"
        entry["results"].append({**row, "threat_model": "transfer"})

    assert problems_after(entry_path, add_transfer_row) == []


def test_non_json_constants_duplicate_keys_and_big_files_are_refused(entry_path):
    text = entry_path.read_text()
    entry_path.write_text(text.replace('"measured": 20.0', '"measured": NaN'))
    assert "NaN is not a number in JSON" in only_problem(validate.validate_all(entry_path)[1])
    entry_path.write_text(text.replace('"verified": false', '"verified": false, "verified": true'))
    assert "key 'verified' appears twice" in only_problem(validate.validate_all(entry_path)[1])
    entry_path.write_text("[" * 200_000)
    assert "nested too deeply" in only_problem(validate.validate_all(entry_path)[1])
    entry_path.write_text(text[:-3] + " " * files.MAX_ENTRY_BYTES + text[-3:])
    assert "over the 1000000 byte limit" in only_problem(validate.validate_all(entry_path)[1])


def test_bad_file_and_track_names_are_refused(entry_path):
    root = entry_path.parent.parent
    (root / TRACK / "Bad Name.json").write_text(entry_path.read_text())
    assert "entry file name 'Bad Name' is not allowed" in only_problem(validate.validate_all(root)[1])
    (root / TRACK / "Bad Name.json").unlink()
    (root / "no-such-track").mkdir()
    with pytest.raises(BenchError, match="'no-such-track' is not a track"):
        validate.validate_all(root)


def test_the_same_defense_twice_in_a_track_is_a_duplicate(entry_path):
    twin = entry_path.with_name("twin.json")
    twin.write_text(entry_path.read_text().replace('"name": "mine"', '"name": "twin"'))
    message = only_problem(validate.validate_all(entry_path.parent.parent)[1])
    assert message.startswith(files.shown(twin)) and "already entered as" in message
    assert "already entered as" in only_problem(validate.validate_all(twin)[1])


# --- verify -------------------------------------------------------------------------------------------


def test_tolerance_uses_the_interval_or_the_floor():
    assert verify.tolerance(10.0, 9.0, 11.0) == pytest.approx(1.0)
    assert verify.tolerance(10.0, 10.0, 10.0) == pytest.approx(0.1)
    assert verify.tolerance(0.01, 0.01, 0.01) == pytest.approx(1e-3)


def rerun_with(tmp_path: Path, psnr: float):
    def fake_rerun(grid, out, device):
        assert [d["label"] for d in grid["defenses"]] == ["mine"]
        repo = tmp_path / "repo"
        return [cell_summary(repo, "mine", "none", 0.0, psnr + 10), cell_summary(repo, "mine", "pgd-encoder", PGD_EPS, psnr)]
    return fake_rerun


def test_verify_marks_reproduced_claims_verified(tmp_path):
    root = write_entries(tmp_path, {"mine": 20.0}, claimed={"pgd-encoder": {"psnr": 20.1}})
    path = root / TRACK / "mine.json"
    record = verify.verify(path, rerun=rerun_with(tmp_path, 20.0))
    entry = json.loads(path.read_text())
    assert record["passed"] and entry["verified"] is True and entry["verification"]["claimed_checked"] == 1
    assert validate.validate_all(root)[1] == []


def test_verify_fails_when_the_claim_is_off_and_clears_the_mark(tmp_path):
    root = write_entries(tmp_path, {"mine": 20.0}, claimed={"pgd-encoder": {"psnr": 25.0}})
    path = root / TRACK / "mine.json"
    record = verify.verify(path, rerun=rerun_with(tmp_path, 20.0))
    assert not record["passed"] and json.loads(path.read_text())["verified"] is False
    assert record["failures"] == ["results[1].metrics.psnr: measured 20, claimed 25, allowed difference 1"]


def test_verify_refuses_a_rerun_that_loaded_other_weights(tmp_path):
    root = write_entries(tmp_path, {"mine": 20.0})

    def other_weights(grid, out, device):
        summaries = rerun_with(tmp_path, 20.0)(grid, out, device)
        for summary in summaries:
            summary["weights"] = {"/elsewhere/model.safetensors": "f" * 64}
        return summaries
    with pytest.raises(BenchError, match="weights: the rerun loaded weights with sha256 f+, not the entry's"):
        verify.verify(root / TRACK / "mine.json", rerun=other_weights)


# --- render and the command line ----------------------------------------------------------------------


PGD_HEADLINE = schema.Headline("psnr", (("pgd-encoder", PGD_EPS),), clean_metric="psnr", explained="test headline")


def rank_on_pgd(monkeypatch) -> None:
    """The fixture runs hold only the none and pgd-encoder cells: rank the test track on those."""
    monkeypatch.setitem(schema.TRACKS, TRACK, dataclasses.replace(schema.TRACKS[TRACK], headline=PGD_HEADLINE))


def test_render_ranks_every_entry_and_is_deterministic(tmp_path, monkeypatch):
    rank_on_pgd(monkeypatch)
    root = write_entries(tmp_path, {"beta": 18.0, "alpha": 22.0, "gamma": 22.5},
                         claimed={"pgd-encoder": {"psnr": 23.0}})
    rendered = render.render_all(root)
    readme, page = rendered["README.md"], rendered["index.html"]
    rows = [line for line in readme.splitlines() if line.startswith("| ")][1:]
    assert [row.split("|")[1].strip() + " " + row.split("|")[2].split()[0] for row in rows] == \
        ["=1 gamma", "=1 alpha", "3 beta"]  # 22.5 and 22 overlap (intervals of +-5%), 18 does not
    assert "robust psnr ↑ \\[95% CI\\]" in readme and "22 [20.9, 23.1]" in readme
    assert {row.split("|")[6].strip() for row in rows} == {"23"}  # the claim, beside the measured score
    assert "pgd-encoder ε=8/255" in readme and "ε=0.03137" not in readme  # the budget once, as 8/255
    assert 'data-entry="alpha"' in page and 'id="entry-vae-protection-beta"' in page
    assert "tradeoff-vae-protection.svg" in readme and "tradeoff-vae-protection.svg" in page
    for external in ("<link", "@import", "url(", "http"):
        assert external not in page
    assert render.render_all(root) == rendered
    assert "T00:00" not in readme + page


def test_an_entry_without_the_tracks_cells_is_listed_unranked(tmp_path):
    root = write_entries(tmp_path, {"mine": 20.0})  # the real track also needs noise and photoguard
    readme = render.render_all(root)["README.md"]
    assert "| —      | mine" in readme and "missing: noise at 8/255; photoguard at 16/255" in readme
    assert "tradeoff-vae-protection.svg" not in render.render_all(root)


def run_cli(argv: list[str]) -> int:
    """What bench.cli.main does with these subcommands: a BenchError becomes exit code 2."""
    parser = argparse.ArgumentParser(prog="bench")
    add_leaderboard_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BenchError as err:
        print(f"error: {err}")
        return err.exit_code


def test_render_check_fails_until_rendered(tmp_path, capsys, monkeypatch):
    rank_on_pgd(monkeypatch)
    root = write_entries(tmp_path, {"mine": 20.0})
    assert run_cli(["leaderboard", "render", "--check", "--root", str(root)]) == 2
    assert "run `bench leaderboard render`" in capsys.readouterr().out
    assert run_cli(["leaderboard", "render", "--root", str(root)]) == 0
    assert run_cli(["leaderboard", "render", "--check", "--root", str(root)]) == 0
    entry = json.loads((root / TRACK / "mine.json").read_text())
    entry["paper"] = "https://example.org/paper"
    (root / TRACK / "mine.json").write_text(json.dumps(entry))
    assert run_cli(["leaderboard", "render", "--check", "--root", str(root)]) == 2
    assert run_cli(["leaderboard", "render", "--root", str(root)]) == 0
    plot = root / "tradeoff-vae-protection.svg"
    plot.write_text(plot.read_text().replace("plot-data sha256 ", "plot-data sha256 0"))
    assert run_cli(["leaderboard", "render", "--check", "--root", str(root)]) == 2
    assert "tradeoff-vae-protection.svg is out of date" in capsys.readouterr().out


def test_validate_command_prints_one_line_per_bad_file(tmp_path, capsys):
    root = write_entries(tmp_path, {"a": 20.0, "b": 21.0})
    assert run_cli(["validate", str(root)]) == 0
    assert "ok: 2 entries valid" in capsys.readouterr().out
    for name in ("a", "b"):
        path = root / TRACK / f"{name}.json"
        path.write_text(path.read_text().replace('"measured": 0.8', '"measured": "0.8"', 1))
    assert run_cli(["validate", str(root)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all('"0.8" is a string; write the number 0.8' in line for line in lines)


def test_the_committed_leaderboard_is_valid_and_rendered():
    root = Path(__file__).resolve().parent.parent / "leaderboards"
    assert validate.validate_all(root)[1] == []
    render.check_renders(root)


def test_claims_go_to_transfer_by_default_and_to_the_named_threat_model():
    def results():
        return [{"attack": {"label": "photoguard"}, "eps": 0.05, "threat_model": threat,
                 "metrics": {"lpips": {"measured": 0.1, "claimed": None}}} for threat in ("adaptive", "transfer")]

    by_default = results()
    submit.apply_claims(by_default, {"photoguard": {"lpips": 0.2}}, "claims")
    assert [r["metrics"]["lpips"]["claimed"] for r in by_default] == [None, 0.2]

    named = results()
    submit.apply_claims(named, [{"attack": "photoguard", "threat_model": "adaptive", "metric": "lpips",
                                 "claimed": 0.3}], "claims")
    assert [r["metrics"]["lpips"]["claimed"] for r in named] == [0.3, None]

    with pytest.raises(BenchError, match=r"claims: \[0\].claimed: attack 'photoguard' has no 'sideways' row"):
        submit.apply_claims(results(), [{"attack": "photoguard", "threat_model": "sideways", "metric": "lpips",
                                         "claimed": 0.3}], "claims")


def test_submit_names_a_damaged_summary_or_run_record(tmp_path):
    run_dir = make_run(tmp_path)
    summary = next((run_dir / "cells").glob("*/summary.json"))
    summary.write_text(summary.read_text()[:40])
    with pytest.raises(BenchError, match=f"cell {summary.parent.name} of .* is damaged; rerun the grid"):
        submit.build_entry(run_dir, TRACK, tmp_path / "repo")
    (run_dir / "run.json").write_text("{")
    with pytest.raises(BenchError, match="damaged run.json"):
        submit.build_entry(run_dir, TRACK, tmp_path / "repo")


def test_verify_pairs_each_result_with_the_cell_of_its_own_non_pixel_budget():
    """One attack at several sampling scales: the cells share label and eps, so only the budget tells
    them apart (the denoiser track's first verify compared every scale with the scale-0 cell)."""
    def result(scale, value):
        return {"attack": {"label": "noise", "name": "sampling-noise", "config": {"scale": scale}}, "eps": 0.0,
                "threat_model": "none", "metrics": {"fid": {"claimed": None, "measured": value}}}

    def summary(scale, value):
        return {"defense": "d", "attack": "noise", "eps": 0.0, "threat_model": "none", "budget": {"scale": scale},
                "config": {"scenario": {"name": "sampling-attack"}, "defense": {"config": {}}},
                "metrics": {"fid": {"value": value, "low": value - 1, "high": value + 1}}}

    entry = {"track": "denoiser", "defense": {"label": "d", "config": {}}, "weights": [],
             "results": [result(0.0, 100.0), result(0.02, 150.0)]}
    checks = verify.compare(entry, [summary(0.02, 150.0), summary(0.0, 100.0)])
    assert [(c.reference, c.measured) for c in checks] == [(100.0, 100.0), (150.0, 150.0)]
    with pytest.raises(BenchError, match="cannot tell apart"):
        verify.compare(entry, [summary(0.0, 100.0), summary(0.0, 101.0), summary(0.02, 150.0)])


def test_an_entry_whose_grid_runs_another_scenario_is_refused(entry_path):
    """The grid is what ``bench verify`` reruns; one of another scenario could never verify the results."""
    def other_scenario(entry):
        entry["grid"]["scenario"] = "poisoning"
    assert "grid.scenario" in only_problem(problems_after(entry_path, other_scenario))


def test_a_negative_fid_is_refused_but_its_bias_shifted_interval_may_cross_zero(entry_path):
    def fid(measured, low):
        def change(entry):
            entry["results"][0]["metrics"]["fid"] = {"claimed": None, "measured": measured, "low": low, "high": 9.0,
                                                     "n": 16, "higher_is_better": False, "kind": "set"}
        return change
    assert problems_after(entry_path, fid(3.0, -2.0)) == []
    assert "fid.measured: -1.0 is outside [0, inf]" in only_problem(problems_after(entry_path, fid(-1.0, -2.0)))
