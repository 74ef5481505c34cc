"""A separate distribution that registers a prior, pip-installed in the test run, used end to end.

The package lives in tests/plugins/zoo-laplace-prior (its own pyproject.toml).  It is installed
with pip into a temporary folder, found through the ``zoo`` entry-point group exactly as the
built-in plugin is, used by name in its own card, trained, saved and reloaded.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.integration

PACKAGE = Path(__file__).parent / "plugins" / "zoo-laplace-prior"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(PACKAGE)], check=True)
    assert any(p.name.startswith("zoo_laplace_prior") and p.name.endswith(".dist-info") for p in target.iterdir())
    sys.path.insert(0, str(target))
    yield target
    sys.path.remove(str(target))
    sys.modules.pop("zoo_laplace_prior", None)


def test_entry_point_discovers_the_third_party_prior_and_card(installed, fresh_registry):
    prior = fresh_registry.get("prior", "laplace")
    assert prior.owner.distribution == "zoo-laplace-prior"
    assert prior.owner.module == "zoo_laplace_prior"
    assert "vae-laplace-digits" in fresh_registry.cards
    assert fresh_registry.get("encoder", "mlp").owner.distribution == "latent-zoo"


def test_third_party_prior_trains_saves_and_reloads(installed, fresh_registry, tmp_path):
    import zoo

    result = zoo.train("vae-laplace-digits", out=tmp_path / "run", progress=False)
    assert result.report["elbo"] < 0 and result.report["mutual_information"] is not None
    model = zoo.load(tmp_path / "run")
    assert type(model.prior).__module__ == "zoo_laplace_prior"
    x = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    assert torch.equal(model.reconstruct(x), result.model.reconstruct(x))
    # the prior's log density is a real Laplace density
    z = torch.randn(5, 4)
    ref = torch.distributions.Laplace(0.0, 1.0).log_prob(z).sum(-1)
    assert torch.allclose(model.prior.log_prob(z), ref, atol=1e-5)


def test_a_fresh_process_finds_the_plugin_through_the_cli(installed, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-m", "zoo.cli", "plugins"], env=env, capture_output=True, text=True, check=True)
    line = next(l for l in out.stdout.splitlines() if " laplace " in f" {l} ")
    assert line.split()[0] == "prior" and "zoo-laplace-prior (zoo_laplace_prior)" in line
    run = subprocess.run([sys.executable, "-m", "zoo.cli", "train", "vae-laplace-digits", "--out", str(tmp_path / "cli"),
                          "--steps", "5", "--quiet"], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "ELBO" in run.stdout and (tmp_path / "cli" / "model.safetensors").is_file()
