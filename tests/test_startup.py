"""``zoo list`` pays only for what it prints (issue 22): it builds its own subcommand alone, and tells whether a
Hub file is in the Hugging Face cache without importing huggingface_hub's download stack (httpx and friends)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from zoo.cards.listing import _cached
from zoo.hub.client import hub_options


def test_zoo_list_imports_no_other_command_nor_the_download_stack(tmp_path):
    env = {**os.environ, "ZOO_CACHE": str(tmp_path / "zoo"), "HF_HUB_CACHE": str(tmp_path / "hf"),
           "OMP_NUM_THREADS": "1"}
    code = """
import contextlib, io, sys
from zoo.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    assert main(['list', 'ddpm-*']) == 0
assert 'ddpm-cifar10' in out.getvalue(), out.getvalue()
heavy = sorted(m for m in ('huggingface_hub.file_download', 'httpx', 'httpx2', 'zoo.cli.hub', 'zoo.cli.train',
                           'zoo.cli.sweep', 'zoo.cli.compare') if m in sys.modules)
assert not heavy, heavy
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300, env=env)


def test_cache_lookup_agrees_with_huggingface_hub(tmp_path):
    from huggingface_hub import try_to_load_from_cache

    repo, commit, file = "org/name", "a" * 40, "sub/model.safetensors"
    folder = tmp_path / "models--org--name"

    def both(revision: str, name: str = file) -> tuple[bool, bool]:
        with hub_options(cache_dir=tmp_path):
            ours = _cached(repo, name, revision)
        found = try_to_load_from_cache(repo, name, revision=revision, cache_dir=tmp_path)
        return ours, isinstance(found, str)

    assert both("main") == (False, False) and both(commit) == (False, False)       # nothing cached
    (folder / "snapshots" / commit / "sub").mkdir(parents=True)
    (folder / "snapshots" / commit / file).write_bytes(b"x")
    assert both(commit) == (True, True)                                               # a pinned commit
    assert both("main") == (False, False)                                             # no ref for main yet
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    assert both("main") == (True, True)                                               # main -> the commit
    assert both("main", "other.safetensors") == (False, False)
    assert both("b" * 40) == (False, False)                                           # another commit


def test_a_misspelt_command_still_lists_every_choice(capsys):
    from zoo.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["lst"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'lst'" in err and "'list'" in err and "'train'" in err and "'sweep'" in err


def test_top_level_help_lists_every_command_wherever_a_command_name_follows(capsys):
    from zoo.cli import main

    for argv in (["--help"], ["--help", "list"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 0
        out = capsys.readouterr().out
        listed = {line.split()[0] for line in out.splitlines() if line.startswith("    ") and line.split()}
        assert {"list", "train", "sweep", "download", "compare"} <= listed, out
