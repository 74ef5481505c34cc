"""``zoo list`` is a table that is honest about what loads here (issue 20): ``--pretrained`` offline with an empty
Hugging Face cache lists only the packaged models; a Hub card counts once its file is in the cache."""
from __future__ import annotations

import os
import subprocess
import sys

import zoo
from zoo.cards.listing import weights_availability
from zoo.hub.client import hub_options

PINNED = "30eb34ce06e995c15ec349bc188a86d6bd0d5359"   # ddpm-cifar10's revision of google/ddpm-cifar10-32


def _packaged() -> set[str]:
    return {n for n in zoo.list_models() if (zoo.get_card(n).zoo.get("weights") or {}).get("packaged")}


def test_cli_list_pretrained_offline_with_an_empty_cache_lists_only_what_loads(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hf"), "HF_HOME": str(tmp_path / "hf"),
           "ZOO_CACHE": str(tmp_path / "zoo"), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "zoo.cli", "list", "--pretrained", "--names"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    listed = set(run.stdout.split())
    assert listed == _packaged() and "ddpm-cifar10" not in listed and "sd-vae-ft-mse" not in listed
    for name in ["vae-digits"]:      # and what is listed does load, offline
        code = f"import zoo; zoo.load({name!r})"
        assert subprocess.run([sys.executable, "-c", code], env=env, timeout=300).returncode == 0


def test_a_hub_card_is_pretrained_here_once_its_file_is_in_the_cache(tmp_path):
    snapshot = tmp_path / "models--google--ddpm-cifar10-32" / "snapshots" / PINNED
    with hub_options(cache_dir=tmp_path):
        card = zoo.get_card("ddpm-cifar10")
        before = weights_availability(card)
        assert (before.source, before.here) == ("hub", False) and "zoo download ddpm-cifar10" in before.note
        assert "ddpm-cifar10" not in zoo.list_models("ddpm-*", pretrained=True)
        snapshot.mkdir(parents=True)
        (snapshot / "diffusion_pytorch_model.safetensors").write_bytes(b"x")
        after = weights_availability(card)
        assert after.here and after.label == f"Hub google/ddpm-cifar10-32@{PINNED[:12]}"
        assert "ddpm-cifar10" in zoo.list_models("ddpm-*", pretrained=True)


def test_the_table_has_a_header_and_the_weights_source(capsys, tmp_path, monkeypatch):
    from zoo.cli import main

    monkeypatch.setenv("ZOO_CACHE", str(tmp_path))
    assert main(["list", "vae-*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "FAMILY", "PARAMETERS", "DATA", "WEIGHTS", "HERE"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == set(zoo.list_models("vae-*"))
    assert rows["vae-mnist"].split()[1:3] == ["vae", "228k"] and " packaged " in rows["vae-mnist"]
    assert rows["vae-cifar10"].split()[-2:] == ["none", "-"]
    assert (tmp_path / "parameters.json").is_file()       # counted once, then read from the cache


def test_info_shows_the_true_weights_source_and_the_objective(capsys):
    from zoo.cli import main

    assert main(["info", "vae-mnist"]) == 0
    out = capsys.readouterr().out
    assert "weights   packaged with latent-zoo: weights/vae-mnist.safetensors" in out and "@main" not in out
    assert main(["info", "btcvae-digits"]) == 0
    assert "objective beta-tcvae, beta=6.0" in capsys.readouterr().out


def test_plugins_has_a_header(capsys):
    from zoo.cli import main

    assert main(["plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["KIND", "NAME", "QUALIFIED"] and "registrations from" in lines[-1]


def test_a_pinned_hub_card_with_a_packaged_copy_loads_here(tmp_path):
    """Pinned on the Hub and shipped too (one sha256): offline the packaged copy loads, so it is here."""
    import dataclasses

    card = zoo.get_card("vae-digits")
    weights = {**card.zoo["weights"], "revision": "a" * 40}
    pinned = dataclasses.replace(card, zoo={**card.zoo, "weights": weights})
    with hub_options(cache_dir=tmp_path):
        found = weights_availability(pinned)
        assert (found.source, found.here, found.note) == ("hub", True, "packaged copy, used offline")
        assert found.label == f"Hub {weights['repo']}@{'a' * 12}"
        bare = {k: v for k, v in weights.items() if k != "packaged"}
        gone = weights_availability(dataclasses.replace(card, zoo={**card.zoo, "weights": bare}))
        assert not gone.here and "zoo download vae-digits" in gone.note
