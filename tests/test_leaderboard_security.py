"""Issue 9, leaderboard half: a submitted entry never runs code, ``verified`` needs a matching record, and
oversized numbers, labels with markup or newlines and weights paths of the repository root are handled.

The hostile entries are fixtures (tests/fixtures/hostile_entries/). Payload pickles are built here, in the
test's temporary repository, never committed: loading one creates a marker file, so a test can show the
payload did not run (and ``test_the_payload_is_live`` shows it would, were it loaded).
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch

from bench.errors import BenchError
from bench.leaderboard import files, record, render, safety, validate, verify
from tests.test_leaderboard import run_cli

FIXTURES = Path(__file__).parent / "fixtures" / "hostile_entries"
TRACK = "vae-protection"

REFUSED = {
    "pickle-metric": "grid.metrics[1]",
    "pickle-defense": "grid.defenses[0]",
    "pickle-folder-no-flag": "holds a pickled file (diffusion_pytorch_model.bin)",
    "trust-pickle-in-overrides": "grid.overrides[0].set.trust_pickle: is 'yes'; an entry may not load pickled",
    "trust-pickle-nested": "grid.attacks[1].extra.deep[0].trust_pickle: is 1",
    "absolute-data-path": "grid.data.path: '/etc/ssl/certs' is an absolute or home path",
    "dotdot-model": "grid.defenses[0].model: 'weights/../../outside-model' leaves its folder",
    "home-transfer-source": "grid.transfer_source.model: '~/.cache/evil-vae' is an absolute or home path",
    "symlink-out": "grid.defenses[0].model: 'weights/linked' is a symlink pointing outside the repository",
    "hub-id-not-allowed": "grid.scenario.pipeline: 'evil-org/sd-backdoor' is not a folder in the repository, and "
                          "as a hub id it is not on the allow-list",
    "git-folder": "grid.defenses[0].model: '.git' lies in .git",
    "overrides-target-path": "grid.overrides[0].set.target: '/etc/hostname' is an absolute or home path",
    "url-model": "grid.defenses[0].model: 'https://evil.example/vae' is a URL",
    "forged-verified": "verified: is true but the verification record is not one this suite's `bench verify` writes",
    "newline-label": "results[1].attack.label: 'pgd\\n| injected | row |' holds a control character",
    "repo-root-weights": "weights[0].path: '.' is the repository root",
    "git-weights": "weights[0].path: '.git/config' lies in .git",
    "huge-number": "a 400-digit integer is too large for an entry",
}


class Payload:
    """Unpickling this opens (creates) the marker file: stands in for arbitrary code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def install(tmp_path: Path, name: str) -> tuple[Path, Path, Path]:
    """A repository in tmp_path with the fixture entry, payload pickles, a .git folder and an outside
    folder reached by a symlink -> (repo, entry path, marker file)."""
    repo = tmp_path / "repo"
    track = repo / "leaderboards" / TRACK
    track.mkdir(parents=True)
    marker = tmp_path / "PAYLOAD_RAN"
    torch.save(Payload(marker), track / "payload.pt")
    model = track / "payload-model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
    torch.save(Payload(marker), model / "diffusion_pytorch_model.bin")
    (repo / ".git").mkdir()
    (repo / ".git" / "config").write_text("[core]\n")
    outside = tmp_path / "outside-model"
    outside.mkdir()
    (outside / "config.json").write_text("{}")
    (repo / "weights").mkdir()
    (repo / "weights" / "linked").symlink_to(outside)
    path = track / f"{name}.json"
    shutil.copy(FIXTURES / f"{name}.json", path)
    return repo, path, marker


def load_every_pickle(repo: Path, calls: list):
    """A rerun that does what an unguarded verify would end up doing with these entries: load the pickles."""
    def rerun(grid, out, device):
        calls.append(grid)
        for path in sorted(repo.rglob("*")):
            if path.suffix in (".pt", ".bin"):
                torch.load(path, weights_only=False)
        return []
    return rerun


def only_problem(problems: list[str]) -> str:
    assert len(problems) == 1, problems
    return problems[0]


def test_every_fixture_is_covered():
    assert {p.stem for p in FIXTURES.glob("*.json")} == set(REFUSED) | {"script-label"}


def test_the_payload_is_live(tmp_path):
    """Control: the payload the other tests build does run when unpickled outside verify mode."""
    repo, _, marker = install(tmp_path, "pickle-metric")
    torch.load(repo / "leaderboards" / TRACK / "payload.pt", weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_validate_refuses_the_hostile_entry(tmp_path, name):
    repo, path, marker = install(tmp_path, name)
    message = only_problem(validate.validate_all(path.parent.parent)[1])
    assert message.startswith(f"{files.shown(path)}: ") and REFUSED[name] in message
    assert not marker.exists()


@pytest.mark.parametrize("name", sorted(set(REFUSED) - {"forged-verified"}))  # its grid is benign: verify reruns it
def test_verify_runs_nothing_of_a_hostile_entry(tmp_path, name):
    repo, path, marker = install(tmp_path, name)
    before = path.read_text()
    calls: list = []
    with pytest.raises(BenchError, match="^" + str(files.shown(path))):
        verify.verify(path, rerun=load_every_pickle(repo, calls))
    assert calls == [] and not marker.exists() and path.read_text() == before


def test_validate_command_exits_2_with_one_error_line(tmp_path, capsys):
    _, path, marker = install(tmp_path, "pickle-metric")
    assert run_cli(["validate", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "trust_pickle" in lines[0]
    assert not marker.exists()


def test_an_allow_listed_hub_id_and_a_repository_folder_are_accepted(tmp_path):
    repo, path, _ = install(tmp_path, "script-label")
    entry = json.loads(path.read_text())
    entry["grid"]["defenses"] = [{"name": "vae", "label": "mine", "model": "stabilityai/sd-vae-ft-mse"}]
    path.write_text(json.dumps(entry))
    assert validate.validate_all(path)[1] == []
    (repo / "models" / "my-vae").mkdir(parents=True)
    (repo / "models" / "my-vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"x")
    entry["grid"]["defenses"] = [{"name": "vae", "label": "mine", "model": "models/my-vae"}]
    path.write_text(json.dumps(entry))
    assert validate.validate_all(path)[1] == []


# --- load time: verify mode ------------------------------------------------------------------------------


def test_verify_mode_blocks_unpickling_and_is_undone(tmp_path):
    repo, _, marker = install(tmp_path, "pickle-metric")
    payload = repo / "leaderboards" / TRACK / "payload.pt"
    original = torch.load
    with safety.verify_mode():
        assert safety.safetensors_only()
        with pytest.raises(BenchError, match="torch.load was called while verifying"):
            torch.load(payload, weights_only=False)
        with pytest.raises(BenchError, match="pickle.loads was called while verifying"):
            pickle.loads(pickle.dumps(Payload(marker)))
    assert not marker.exists()
    assert torch.load is original and not safety.safetensors_only()


def test_the_model_loaders_refuse_pickles_in_verify_mode(tmp_path):
    from bench.clip_model import load_open_clip
    from bench.t2i import _load_pretrained
    from defenses.vae import load_autoencoder

    repo, _, marker = install(tmp_path, "pickle-defense")
    folder = repo / "leaderboards" / TRACK / "payload-model"
    checkpoint = repo / "leaderboards" / TRACK / "payload.pt"
    with safety.verify_mode():
        with pytest.raises(BenchError, match="trust_pickle is refused while verifying"):
            load_autoencoder(str(folder), trust_pickle=True)
        with pytest.raises(BenchError, match="trust_pickle is refused while verifying"):
            load_open_clip(f"open_clip:ViT-B-32/{checkpoint}", trust_pickle=True)
        with pytest.raises(BenchError, match="only a local .safetensors checkpoint"):
            load_open_clip("open_clip:ViT-B-32/laion2b_s34b_b79k")
        with pytest.raises(BenchError, match="trust_pickle is refused while verifying"):
            _load_pretrained(str(folder), object, torch.float32, True)
    assert not marker.exists()


def fresh_summaries(entry: dict, shift: float = 0.0) -> list[dict]:
    """What the runner would return for the entry's cells, every number moved by ``shift``."""
    summaries = []
    for result in entry["results"]:
        metrics = {name: {"value": v["measured"] + shift, "low": v["low"] + shift, "high": v["high"] + shift}
                   for name, v in result["metrics"].items()}
        summaries.append({"defense": entry["defense"]["label"], "attack": result["attack"]["label"],
                          "eps": result["eps"], "threat_model": result["threat_model"], "metrics": metrics,
                          "config": {"scenario": {"name": "reconstruction"}, "defense": entry["defense"]},
                          "weights": {}, "provenance": {"suite_version": "0.1.0", "git": "feed42", "device": "cpu",
                                                        "dtype": "torch.float32", "date": "2026-12-02"}})
    return summaries


def test_verify_reruns_only_the_checked_grid_from_the_repository_in_verify_mode(tmp_path):
    repo, path, _ = install(tmp_path, "script-label")
    entry = json.loads(path.read_text())
    seen = {}

    def rerun(grid, out, device):
        seen.update(grid=grid, cwd=Path.cwd(), guarded=safety.safetensors_only(), out=out)
        with pytest.raises(BenchError):
            torch.load(repo / "leaderboards" / TRACK / "payload.pt", weights_only=False)
        return fresh_summaries(entry)
    record_ = verify.verify(path, rerun=rerun)
    assert record_["passed"] and seen["guarded"] and seen["cwd"] == repo.resolve()
    assert seen["grid"] == entry["grid"] and not safety.safetensors_only()


# --- "verified" needs a matching record -------------------------------------------------------------------


def verified_entry(tmp_path: Path) -> Path:
    _, path, _ = install(tmp_path, "script-label")
    entry = json.loads(path.read_text())
    verify.verify(path, rerun=lambda grid, out, device: fresh_summaries(entry, shift=0.1))
    return path


def test_a_verified_entry_carries_a_record_that_validate_accepts(tmp_path):
    path = verified_entry(tmp_path)
    entry = json.loads(path.read_text())
    rows = entry["verification"]["checks"]
    assert entry["verified"] is True and entry["verification"]["entry_sha256"] == record.canonical_sha256(entry)
    assert [r["at"] for r in rows] == ["results[0].metrics.psnr", "results[1].metrics.psnr"]
    assert rows[1]["reference"] == 20.0 and rows[1]["rerun"] == pytest.approx(20.1)
    assert entry["verification"]["git"] == "feed42"
    assert validate.validate_all(path)[1] == []
    assert re.search(r"\|\s*✓\s*\|", render.render_all(path.parent.parent)["README.md"])


@pytest.mark.parametrize("tamper, expected", [
    (lambda e: e["results"][1]["metrics"]["psnr"].update(claimed=25.0), "the entry changed after it was verified"),
    (lambda e: e["results"][1]["metrics"]["psnr"].update(measured=19.0), "the entry changed after it was verified"),
    (lambda e: e["verification"]["checks"][1].update(rerun=30.0), "is not within"),
    (lambda e: e["verification"]["checks"].pop(), "checks are malformed"),
    (lambda e: e["verification"].update(passed=False), "did not reproduce"),
])
def test_verified_without_a_matching_record_is_refused(tmp_path, tamper, expected):
    path = verified_entry(tmp_path)
    entry = json.loads(path.read_text())
    tamper(entry)
    path.write_text(json.dumps(entry))
    message = only_problem(validate.validate_all(path)[1])
    assert "verified: is true but" in message and expected in message
    with pytest.raises(BenchError, match="verified: is true but"):
        render.render_all(path.parent.parent)


def test_a_failed_verification_is_written_unverified(tmp_path):
    _, path, _ = install(tmp_path, "script-label")
    entry = json.loads(path.read_text())
    result = verify.verify(path, rerun=lambda grid, out, device: fresh_summaries(entry, shift=5.0))
    written = json.loads(path.read_text())
    assert not result["passed"] and written["verified"] is False and not record.is_verified(written)
    assert validate.validate_all(path)[1] == []
    assert "✓" not in render.render_all(path.parent.parent)["README.md"].split("|---")[-1]


# --- numbers, labels, weights paths ----------------------------------------------------------------------


def test_a_400_digit_number_is_one_error_for_that_entry_only(tmp_path, capsys):
    _, path, _ = install(tmp_path, "huge-number")
    good = path.with_name("good.json")
    good.write_text((FIXTURES / "script-label.json").read_text().replace('"name": "script-label"',
                                                                         '"name": "good"'))
    root = path.parent.parent
    loaded, problems = validate.validate_all(root)
    assert [e.path.name for e in loaded] == ["good.json"]
    assert "huge-number.json" in only_problem(problems) and "400-digit" in problems[0]
    assert run_cli(["leaderboard", "render", "--check", "--root", str(root)]) == 2
    out = capsys.readouterr().out
    assert out.count("error:") == 1 and "huge-number.json" in out and "good.json" not in out


def test_a_big_number_built_in_memory_is_refused_not_overflowed():
    from bench.leaderboard import schema

    with pytest.raises(BenchError, match="400-digit number is too large"):
        schema.number(10**399, "results[0].metrics.psnr.measured")


def test_labels_are_escaped_on_both_pages(tmp_path, monkeypatch):
    from tests.test_leaderboard import rank_on_pgd

    rank_on_pgd(monkeypatch)  # its only attack becomes the worst attack the ranked table names
    _, path, _ = install(tmp_path, "script-label")
    assert validate.validate_all(path)[1] == []
    pages = render.render_all(path.parent.parent)
    assert "<script>alert" not in pages["README.md"] and "&lt;script&gt;alert(1)&lt;/script&gt;" in pages["README.md"]
    assert "<script>alert" not in pages["index.html"]
    table = [line for line in pages["README.md"].splitlines() if line.startswith("|")]
    assert len({len(re.findall(r"(?<!\\)\|", line)) for line in table}) == 1


def test_a_weights_folder_is_hashed_only_up_to_a_cap(tmp_path, monkeypatch):
    repo, path, _ = install(tmp_path, "script-label")
    folder = repo / "models" / "big"
    folder.mkdir(parents=True)
    for i in range(3):
        (folder / f"part{i}.safetensors").write_bytes(b"x" * i)
    entry = json.loads(path.read_text())
    entry["weights"] = [{"path": "models/big", "sha256": validate.sha256_path(folder, repo)}]
    path.write_text(json.dumps(entry))
    assert validate.validate_all(path)[1] == []
    monkeypatch.setattr(validate, "MAX_WEIGHT_FOLDER_FILES", 2)
    assert "holds more than 2 files" in only_problem(validate.validate_all(path)[1])


def test_the_committed_entries_pass_the_security_checks():
    root = Path(__file__).resolve().parent.parent / "leaderboards"
    for entry_path in validate.entry_paths(root):
        loaded = validate.load_entry(entry_path, root, full=True, verifying=True)
        assert loaded.checked_grid == loaded.entry["grid"]
    assert os.environ.get(safety.SAFETENSORS_ONLY_ENV) is None


def test_submit_refuses_a_run_whose_grid_names_an_absolute_path(tmp_path):
    from test_leaderboard import TRACK as BOARD
    from test_leaderboard import make_run

    from bench.leaderboard import submit

    run_dir = make_run(tmp_path)
    run = json.loads((run_dir / "run.json").read_text())
    run["grid"]["data"] = {"dataset": "folder", "path": str(tmp_path / "images"), "n": 8}
    (run_dir / "run.json").write_text(json.dumps(run))
    with pytest.raises(BenchError, match=r"grid\.data\.path: '/.*' is an absolute or home path"):
        submit.submit(run_dir, BOARD, tmp_path / "repo" / "leaderboards")
    assert not (tmp_path / "repo" / "leaderboards" / BOARD).exists()


def test_an_edited_verified_entry_can_be_verified_again(tmp_path):
    path = verified_entry(tmp_path)
    entry = json.loads(path.read_text())
    entry["results"][1]["metrics"]["psnr"]["claimed"] = 20.05
    path.write_text(json.dumps(entry))
    assert "changed after it was verified" in only_problem(validate.validate_all(path)[1])
    result = verify.verify(path, rerun=lambda grid, out, device: fresh_summaries(entry, shift=0.1))
    assert result["passed"] and result["claimed_checked"] == 1 and validate.validate_all(path)[1] == []


def test_verify_accepts_keys_a_newer_suite_adds_to_the_defense_config_but_not_changed_values(tmp_path):
    _, path, _ = install(tmp_path, "script-label")
    entry = json.loads(path.read_text())

    def rerun_with_config(config):
        def rerun(grid, out, device):
            summaries = fresh_summaries(entry)
            for summary in summaries:
                summary["config"] = {**summary["config"], "defense": {**entry["defense"], "config": config}}
            return summaries
        return rerun
    assert verify.verify(path, rerun=rerun_with_config({**entry["defense"]["config"], "dtype": "float32"}))["passed"]
    with pytest.raises(BenchError, match="defense.config: the rerun built a different defense config"):
        verify.verify(path, rerun=rerun_with_config({**entry["defense"]["config"], "latent": "sample"}))
