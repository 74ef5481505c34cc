"""The built wheel (not the editable checkout) holds every module and card and works on its own."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_installs_and_finds_every_plugin_and_card(tmp_path):
    wheels, site, src = tmp_path / "wheels", tmp_path / "site", tmp_path / "src"
    # build from a clean copy: a stale build/ folder must not hide a package missing from pyproject.toml
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "runs", "*.egg-info",
                                                            "__pycache__", ".pytest_cache"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(wheels), str(src)], check=True, capture_output=True)
    wheel = next(wheels.glob("latent_zoo-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site),
                    str(wheel)], check=True, capture_output=True)
    code = ("import zoo, zoo_plugins, torch; "
            "assert zoo.__file__.startswith(sys.argv[1]) and zoo_plugins.__file__.startswith(sys.argv[1]); "
            "r = zoo.get_registry(); assert not r.failures, r.failures; "
            "names = zoo.list_models(); "
            "[zoo.build(n) for n in ('vae-mnist', 'ddpm-digits', 'gmm-digits', 'hvae-digits')]; "
            # the family sub-packages, their package data, and the old flat paths through the alias table
            "import zoo_plugins.gmm as old, zoo_plugins.mixtures.gmm as new; assert old is new; "
            "from zoo_plugins.data.feature_nets import DIGITS, MNIST_5K; "
            "assert DIGITS.weights.is_file() and MNIST_5K.weights.is_file(); "
            "print(len(names))")
    env = {**os.environ, "PYTHONPATH": str(site)}
    # the test environment has latent-zoo installed in editable mode: drop its import hook, so only
    # what the wheel holds can be imported
    no_editable = "sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, '__module__', '').startswith('__editable__')]; "
    out = subprocess.run([sys.executable, "-c", "import sys; " + no_editable + code, str(site)], env=env, cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    cards = sorted(p.stem for p in (ROOT / "cards").glob("*.md") if not p.stem.startswith("_"))
    assert int(out.stdout.strip()) == len(cards)
