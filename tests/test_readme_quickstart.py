"""README's quickstart runs top to bottom offline on the packaged weights (issue 20): every ```python block in
one namespace and every ``zoo ...`` line of the ```bash blocks through the CLI, in a fresh folder, with
HF_HUB_OFFLINE=1 and an empty Hugging Face cache.  The numbers the guide quotes are those of the cards."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

import zoo

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.index("\n## ", start + 1)
    return README[start:end]


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


QUICKSTART = _section("Quickstart: five minutes, offline")


def test_the_quickstart_has_python_and_shell_blocks():
    assert len(_blocks(QUICKSTART, "python")) >= 3 and _blocks(QUICKSTART, "bash")
    assert "## Contents" in README and "pip install latent-zoo" in README


def test_the_quickstart_runs_offline(tmp_path, monkeypatch, capsys):
    from zoo.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    namespace: dict = {}
    for block in _blocks(QUICKSTART, "python"):
        exec(compile(block, "README.md quickstart", "exec"), namespace)
    out = capsys.readouterr().out
    assert "ModelOutput(batch=64" in out and "verdict: " in out and "TrainResult(model='vae-digits'" in out
    assert (tmp_path / "runs" / "my-vae" / "model.safetensors").is_file()
    for block in _blocks(QUICKSTART, "bash"):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("zoo "):
                assert main(shlex.split(line)[1:]) == 0, line
    assert (tmp_path / "samples.png").is_file() and (tmp_path / "runs" / "my-vae-cli" / "README.md").is_file()


def _guide() -> str:
    """The guide part of README (before the long studies), less the generated tables."""
    text = README[:README.index("\n## Details and studies\n")]
    return re.sub(r"<!-- latent-zoo:(\w+):start -->.*?<!-- latent-zoo:\1:end -->", "", text, flags=re.S)


@pytest.mark.parametrize("name", [n for n in zoo.list_models() if (zoo.get_card(n).zoo.get("results") or {})])
def test_numbers_the_guide_quotes_for_a_card_are_the_cards(name):
    """Every 'ELBO x' or 'x bits/dim' on a guide line that names exactly one card is that card's number."""
    results = zoo.get_card(name).zoo["results"]
    for line in _guide().splitlines():
        named = {n for n in re.findall(r"`([a-z0-9-]+)`", line) if n in zoo.list_models()}
        if named != {name}:
            continue
        for value in re.findall(r"ELBO (-?\d+\.\d+)", line):
            assert float(value) == round(results["elbo"], len(value.split(".")[1])), line
        for value in re.findall(r"(\d+\.\d+) bits/dim", line):
            quoted = {round(results[k], len(value.split(".")[1])) for k in ("elbo_bpd", "nll_bpd") if k in results}
            assert float(value) in quoted, line
