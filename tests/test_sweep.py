"""``zoo sweep``: one model per beta, table and plots; on digits the information in z collapses with beta."""
from __future__ import annotations

import csv
import json

import pytest

from zoo.cli import main
from zoo.errors import ZooError
from zoo.training.sweep import parse_betas, sweep


def test_parse_betas():
    assert parse_betas("0.5,1, 2,4,8") == [0.5, 1.0, 2.0, 4.0, 8.0]
    for bad in ("", "a,b", "-1", "1,nan"):
        with pytest.raises(ZooError):
            parse_betas(bad)


def test_sweep_writes_table_and_plots(tmp_path):
    rows = sweep("vae-digits", [0.5, 16.0], data="zoo:digits", out=tmp_path, steps=150)
    assert [r["beta"] for r in rows] == [0.5, 16.0]
    for name in ("sweep.csv", "sweep.md", "sweep.json", "rate_distortion.png", "mi_active_units.png", "sweep.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = list(csv.DictReader(open(tmp_path / "sweep.csv")))
    assert [float(r["beta"]) for r in table] == [0.5, 16.0]
    assert {"elbo", "distortion", "rate", "mutual_information", "marginal_kl", "active_units"} <= set(table[0])
    for r in rows:  # each row is diagnose's exact split: rate = I + marginal KL
        assert abs(r["rate"] - (r["mutual_information"] + r["marginal_kl"])) < 1e-3
        assert r["elbo"] == pytest.approx(-(r["distortion"] + r["rate"]), abs=1e-3)
    low, high = rows
    assert high["rate"] < low["rate"] and high["mutual_information"] < low["mutual_information"]
    assert high["active_units"] <= low["active_units"]
    md = (tmp_path / "sweep.md").read_text()
    assert "| beta |" in md and "zoo sweep vae-digits" in md
    meta = json.loads((tmp_path / "sweep.json").read_text())["meta"]
    assert meta["split"] == "train" and meta["n"] == 1497
    assert (tmp_path / "beta-0.5" / "model.safetensors").exists()


def test_sweep_cli(tmp_path, capsys):
    assert main(["sweep", "vae-digits", "--beta", "1,4", "--data", "zoo:digits", "--out", str(tmp_path),
                 "--steps", "30", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "| beta |" in out and "sweep.png" in out
    # a second sweep into the same folder is refused unless --overwrite
    assert main(["sweep", "vae-digits", "--beta", "1", "--out", str(tmp_path), "--steps", "10", "--quiet"]) == 1
    assert main(["sweep", "vae-digits", "--beta", "1", "--out", str(tmp_path), "--steps", "10", "--quiet",
                 "--overwrite"]) == 0


@pytest.mark.slow
def test_full_sweep_shows_posterior_collapse_on_digits(tmp_path):
    """The seed's experiment at full size (vae-digits card, 50 epochs per beta; ~20-60 s on 2 CPU cores)."""
    rows = sweep("vae-digits", [0.5, 1, 2, 4, 8], data="zoo:digits", out=tmp_path)
    mi = [r["mutual_information"] for r in rows]
    au = [r["active_units"] for r in rows]
    assert all(a > b for a, b in zip(mi[:3], mi[1:4])), mi        # MI falls with beta up to collapse
    assert au[0] >= au[2] >= au[3] and au[0] >= 12, au
    assert mi[3] < 0.1 and au[3] <= 2 and mi[4] < 0.1              # collapsed by beta 4
