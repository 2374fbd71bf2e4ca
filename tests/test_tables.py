import json

import pytest

from bench.errors import BenchError
from bench.tables import render


def summary(attack, psnr, fid, eps=0.03):
    return {"defense": "vae-kl", "attack": attack, "scenario": "reconstruction", "eps": eps, "metrics": {
        "psnr": {"value": psnr, "low": psnr - 1, "high": psnr + 1, "n": 8, "higher_is_better": True},
        "fid": {"value": fid, "low": fid - 5, "high": fid + 5, "n": 8, "higher_is_better": False},
        "linf": {"value": eps, "low": eps, "high": eps, "n": 8, "higher_is_better": False}}}


SUMMARIES = [summary("noise", 25.0, 100.0), summary("pgd-encoder", 20.0, 150.0)]


def test_markdown_has_rows_directions_and_intervals():
    table = render(SUMMARIES, "md", "all")
    assert "psnr ↑" in table and "fid ↓" in table and "linf ↓" in table
    assert "| vae-kl    | pgd-encoder |" in table
    assert "20 [19, 21]" in table
    assert table.index("linf") < table.index("psnr")


def test_csv_and_json_are_long_and_numeric():
    rows = json.loads(render(SUMMARIES, "json"))
    assert len(rows) == 6
    assert {r["metric"] for r in rows} == {"psnr", "fid", "linf"}
    assert all(isinstance(r["value"], float) for r in rows)
    assert render(SUMMARIES, "csv").splitlines()[0].startswith("defense,attack,scenario,eps,metric,value")


def test_latex_uses_booktabs():
    latex = render(SUMMARIES, "latex")
    assert "\\toprule" in latex and "$\\uparrow$" in latex


def test_eps_becomes_a_column_when_it_varies():
    table = render(SUMMARIES + [summary("pgd-encoder", 18.0, 170.0, eps=0.06)], "md")
    assert "| eps" in table.splitlines()[0] or " eps " in table.splitlines()[0]


def test_unknown_format_and_empty_run_are_refused():
    with pytest.raises(BenchError, match="use one of"):
        render(SUMMARIES, "xlsx")
    with pytest.raises(BenchError, match="no finished cells"):
        render([], "md")


# --- the compact default, --columns, and the column order of a warm re-run -----------------------------


def cell(scenario, attack, eps, threat, values):
    return {"defense": "vae-kl", "attack": attack, "scenario": scenario, "eps": eps, "threat_model": threat,
            "metrics": {name: {"value": v, "low": v * 0.95, "high": v * 1.05, "n": 8,
                               "higher_is_better": name in ("psnr", "clip-sim", "psnr_vs_clean_rec")}
                        for name, v in values.items()}}


RECONSTRUCTION = {"linf": 0.03, "lpips_input": 0.002, "latent_shift": 3.4, "psnr": 23.8, "ssim": 0.73,
                  "lpips": 0.017, "fid": 149.0, "kid": 0.01, "psnr_vs_clean_rec": 29.7}
MIXED = [cell("reconstruction", "pgd-encoder", 0.03, "adaptive", RECONSTRUCTION),
         cell("reconstruction", "noise", 0.03, "none", RECONSTRUCTION),
         cell("img2img-edit", "pgd-encoder", 0.03, "adaptive", {**RECONSTRUCTION, "clip-sim": 0.998})]


def test_the_default_table_is_compact_and_says_how_to_see_the_rest():
    table, _, note = render(MIXED, "md").partition("\n\n")
    header = table.splitlines()[0]
    assert [h.strip() for h in header.strip("|").split("|")] == [
        "scenario", "attack", "threat_model", "latent_shift ↓", "psnr ↑", "lpips ↓", "clip-sim ↑"]
    edit_row = next(line for line in table.splitlines() if line.startswith("| img2img-edit"))
    assert "0.998 [" in edit_row and "23.8" not in edit_row  # psnr is not an img2img headline
    assert "--columns all" in note and "defense vae-kl in every row" in note and "csv or json" in note


def test_columns_all_and_a_chosen_list():
    every = render(MIXED, "md", "all")
    assert "fid ↓" in every and "linf ↓" in every and "--columns" not in every
    chosen = render(MIXED, "md", ["lpips", "psnr"]).splitlines()[0]
    assert "lpips ↓" in chosen and "psnr ↑" in chosen and "fid" not in chosen and "latent_shift" not in chosen
    with pytest.raises(BenchError, match="--columns: nope not measured in this run; choose from linf"):
        render(MIXED, "md", ["nope"])


def test_a_warm_rerun_prints_the_cold_runs_table(tmp_path, tiny_vae_dir, capsys):
    import yaml

    from bench.cli import main

    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"batch_size": 4, "data": {"n": 4}, "metrics": ["ssim", "psnr"],
                                    "defenses": [{"name": "vae", "model": str(tiny_vae_dir)}],
                                    "attacks": ["noise"], "eps": [0.05]}))
    argv = ["--quiet", "run", str(grid), "--out", str(tmp_path / "run"), "--columns", "all"]
    assert main(argv) == 0
    cold = capsys.readouterr().out
    assert main(argv) == 0
    assert capsys.readouterr().out == cold
    header = [h.strip() for h in cold.splitlines()[0].strip("|").split("|")]
    assert header.index("ssim ↑") < header.index("psnr ↑")  # the grid's order, not sorted
