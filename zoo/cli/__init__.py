"""The ``zoo`` command line.  Every subcommand is registered through the plugin registry (hook
``register_commands``): the core's own in :mod:`zoo.cli.commands`, a plugin's beside them.

Exit codes: 0 success; 1 a runtime error latent-zoo names (data, weights, the Hub, a failed run);
2 a usage error (bad flags or option values, an unknown model, a card that does not validate);
130 interrupted (after the trainer wrote a checkpoint of the current step).
"""
from __future__ import annotations

import argparse
import sys

from zoo import __version__
from zoo.errors import CardError, UnknownModelError, UsageError, ZooError


def build_parser() -> argparse.ArgumentParser:
    import warnings

    from zoo.errors import PluginWarning
    from zoo.registry import get_registry

    warnings.simplefilter("ignore", PluginWarning)  # main() prints one line per failure itself
    parser = argparse.ArgumentParser(prog="zoo", description="latent-zoo: latent-variable generative models")
    parser.add_argument("--version", action="version", version=f"latent-zoo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    registry = get_registry()
    for entry in registry.all("command"):
        try:
            entry.factory(sub)
        except Exception as e:  # noqa: BLE001 - a plugin's broken command must not take the CLI down
            print(f"zoo: command {entry.name!r} from {entry.owner} could not be added: {type(e).__name__}: {e}",
                  file=sys.stderr)
    return parser


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
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest:
        if not getattr(args, "accepts_options", False):
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        args.sampler_options = _sampler_options(rest, parser)
    if args.command != "plugins":
        warn_plugin_failures()
    from zoo.progress import progress_bars

    try:
        with progress_bars(False if getattr(args, "quiet", False) else None):  # --quiet: no bars, downloads too
            args.func(args)
    except (UsageError, CardError, UnknownModelError) as e:  # what the command line names cannot work
        print(f"zoo {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ZooError as e:  # a runtime failure, named
        print(f"zoo {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `zoo info X --json | head`: the reader left; leave quietly
        _silence_stdout()
        return 0
    return 0


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
