"""Progress bars on long work (issue 20): shown on a terminal (here forced with progress_bars(True)), never when
stderr is not a terminal by default, and never with --quiet, huggingface_hub's download bars included."""
from __future__ import annotations

import torch

import zoo
from zoo.progress import bar, enabled, progress_bars


def test_bars_follow_the_setting(capsys):
    data = torch.zeros(40, 1, 8, 8, dtype=torch.uint8)
    model = zoo.load("vae-digits")
    zoo.diagnose(model, data, iwae_k=2, batch_size=10)
    assert "evaluate vae-digits" not in capsys.readouterr().err      # stderr is not a terminal here
    with progress_bars(True):
        zoo.diagnose(model, data, iwae_k=2, batch_size=10)
    err = capsys.readouterr().err
    assert "evaluate vae-digits" in err and "IWAE k=2" in err
    with progress_bars(False):
        assert list(bar(range(3), desc="x")) == [0, 1, 2] and enabled() is False
    assert "x" not in capsys.readouterr().err


def test_quiet_switches_off_every_bar_downloads_included(capsys):
    from huggingface_hub.utils import are_progress_bars_disabled

    from zoo.cli import main

    seen = {}
    with progress_bars(True):
        import zoo.cli.commands as commands

        original = commands.cmd_diagnose

        def spy(args):
            seen["setting"], seen["hub"] = enabled(), are_progress_bars_disabled()
            return original(args)

        commands.cmd_diagnose = spy
        try:
            parser_default = main(["diagnose", "vae-digits", "--k", "0", "--max-points", "50", "--quiet"])
        finally:
            commands.cmd_diagnose = original
    assert parser_default == 0 and seen["setting"] is False and seen["hub"] is True
    assert "evaluate vae-digits" not in capsys.readouterr().err
    assert not are_progress_bars_disabled()          # restored after the command
