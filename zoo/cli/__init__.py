"""The ``zoo`` command line.  Every subcommand is registered through the plugin registry (hook
``register_commands``): the core's own in :mod:`zoo.cli.commands`, a plugin's beside them.

Exit codes: 0 success; 1 a runtime error latent-zoo names (data, weights, the Hub, a failed run);
2 a usage error (bad flags or option values, an unknown model, a card that does not validate);
130 interrupted by SIGINT or SIGTERM (the trainer first writes a checkpoint of the current step).
"""
from __future__ import annotations

import argparse
import sys

from zoo import __version__
from zoo.errors import CardError, UnknownModelError, UsageError, ZooError


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The ``zoo`` parser with every registered command; given ``argv`` naming a registered command, with that
    command alone (``zoo list`` imports no other command's module, issue 22), else with all of them (``zoo
    --help``, a misspelt command: argparse then lists every choice)."""
    import warnings

    from zoo.errors import PluginWarning
    from zoo.registry import get_registry

    warnings.simplefilter("ignore", PluginWarning)  # main() prints one line per failure itself
    parser = argparse.ArgumentParser(prog="zoo", description="latent-zoo: latent-variable generative models")
    parser.add_argument("--version", action="version", version=f"latent-zoo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    entries = get_registry().all("command")
    wanted = argv[0] if argv and not argv[0].startswith("-") else None  # `zoo --help list`: every command
    chosen = [e for e in entries if e.name == wanted]
    _add_commands(sub, chosen or entries)
    if chosen and wanted not in sub.choices:  # the factory named its parser otherwise: build them all
        return build_parser()
    return parser


def _add_commands(sub, entries) -> None:
    for entry in entries:
        try:
            entry.factory(sub)
        except Exception as e:  # noqa: BLE001 - a plugin's broken command must not take the CLI down
            print(f"zoo: command {entry.name!r} from {entry.owner} could not be added: {type(e).__name__}: {e}",
                  file=sys.stderr)


def _sampler_options(rest: list[str], parser: argparse.ArgumentParser) -> dict[str, str]:
    """``--name value`` pairs left over after the known flags (options of a model's samplers)."""
    options: dict[str, str] = {}
    i = 0
    while i < len(rest):
        flag = rest[i]
        if not flag.startswith("--") or len(flag) < 3:
            parser.error(f"unrecognized arguments: {' '.join(rest[i:])}")
        key, eq, value = flag[2:].partition("=")
        if not eq:
            if i + 1 >= len(rest):
                parser.error(f"argument {flag}: expected a value")
            value = rest[i + 1]
            i += 1
        options[key.replace("-", "_")] = value
        i += 1
    return options


def warn_plugin_failures() -> None:
    """One line on stderr per plugin that failed to load or was refused."""
    from zoo.registry import get_registry

    for line in get_registry().failure_lines():
        print(f"zoo: warning: {line}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    restore = _sigterm_as_interrupt()
    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM outside a command's own handling (README: 130)
        print("zoo: interrupted", file=sys.stderr)
        return 130
    finally:
        restore()


def _main(argv: list[str] | None) -> int:
    try:
        parser = build_parser(sys.argv[1:] if argv is None else argv)
    except ZooError as e:  # ZOO_STRICT_PLUGINS=1 and a plugin failed: named, no traceback
        print(f"zoo: error: {e}", file=sys.stderr)
        return 1
    args, rest = parser.parse_known_args(argv)
    if rest:
        if not getattr(args, "accepts_options", False):
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        args.sampler_options = _sampler_options(rest, parser)
    if args.command != "plugins":
        warn_plugin_failures()
    from zoo.progress import progress_bars
    from zoo.errors import TrainingInterrupted  # no torch: zoo list / --help stay light

    try:
        with progress_bars(False if getattr(args, "quiet", False) else None):  # --quiet: no bars, downloads too
            args.func(args)
    except (UsageError, CardError, UnknownModelError) as e:  # what the command line names cannot work
        print(f"zoo {args.command}: error: {e}", file=sys.stderr)
        return 2
    except TrainingInterrupted as e:  # SIGINT / SIGTERM: a checkpoint of the current step was written
        print(f"zoo {args.command}: {e}", file=sys.stderr)
        return 130
    except ZooError as e:  # a runtime failure, named
        print(f"zoo {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"zoo {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `zoo info X --json | head`: the reader left; leave quietly
        _silence_stdout()
        return 0
    except (MemoryError, RuntimeError, OSError) as e:  # allocation and disk errors, named; others propagate
        message = _resource_error(e)
        if message is None:
            raise
        print(f"zoo {args.command}: error: {message}", file=sys.stderr)
        return 1
    return 0


def _resource_error(e: BaseException) -> str | None:
    """A one-line name for running out of memory or disk, or None for any other error."""
    import errno

    text = str(e).splitlines()[0] if str(e) else ""
    if isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and (
            "out of memory" in text.lower() or "alloc" in text.lower())):
        return f"out of memory ({type(e).__name__}: {text[:200]}); ask for less (fewer samples, a smaller --batch-size)"
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" writing {e.filename}" if e.filename else ""
        return f"the disk is full{where} ({e.strerror}); free some space and run again"
    return None


def _sigterm_as_interrupt():
    """SIGTERM raises KeyboardInterrupt while the command runs (the trainer checkpoints on either); returns
    the function that puts the previous handler back."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def on_term(signum, frame):
        raise KeyboardInterrupt

    try:
        saved = signal.signal(signal.SIGTERM, on_term)
    except (ValueError, OSError):
        return lambda: None
    return lambda: signal.signal(signal.SIGTERM, saved)


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
