"""Benchmark: start-up of the commands that only list, inform or print help, each a fresh process.

    python tools/bench_startup.py [--repeats 7]

Times ``zoo --help``, ``zoo list``, ``zoo plugins`` and ``zoo info vae-mnist`` (run as ``python -m zoo.cli``, what the
``zoo`` script runs) beside two references measured in the same run: ``python -c pass`` (the interpreter alone)
and ``python -c "import torch"`` (what these commands used to pay).  All commands alternate within every repeat
(machine load hits them alike); printed: the median wall seconds of each and its ratio to ``import torch``, by wall clock and by the child's CPU time (user + system; on a shared
machine the CPU time is the figure other jobs do not inflate).
Goal (issue 22): ``zoo --help`` and ``zoo list`` under 0.5 s.

The children compile their modules once into a temporary bytecode cache (``PYTHONPYCACHEPREFIX``, even where
``PYTHONDONTWRITEBYTECODE`` is set, as on the project's build machine), as an installed package has its ``.pyc``
files; ``--no-bytecode`` times them compiling every module from source at every start (what that variable costs).
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    "zoo --help": [sys.executable, "-m", "zoo.cli", "--help"],
    "zoo list": [sys.executable, "-m", "zoo.cli", "list"],
    "zoo plugins": [sys.executable, "-m", "zoo.cli", "plugins"],
    "zoo info vae-mnist": [sys.executable, "-m", "zoo.cli", "info", "vae-mnist"],
}


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child: robust to other jobs on a shared machine)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=ENV)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--no-bytecode", action="store_true", help="no bytecode cache: every module compiled at every start")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-startup-pyc-") as pyc:
        if args.no_bytecode:
            ENV["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            ENV.pop("PYTHONDONTWRITEBYTECODE", None)
            ENV["PYTHONPYCACHEPREFIX"] = pyc
        return _run(args)


def _run(args) -> int:
    for cmd in COMMANDS.values():  # warm the OS file cache and .pyc files
        timed(cmd)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in COMMANDS}
    for r in range(args.repeats):
        names = list(COMMANDS)
        for name in names[r % len(names):] + names[:r % len(names)]:
            times[name].append(timed(COMMANDS[name]))
    ref = [statistics.median(t[i] for t in times["python -c 'import torch'"]) for i in (0, 1)]
    print(f"{'':28s} {'wall s':>7s} {'/torch':>7s} {'cpu s':>7s} {'/torch':>7s}")
    for name, ts in times.items():
        m = [statistics.median(t[i] for t in ts) for i in (0, 1)]
        goal = ("  goal < 0.5 s: " + ("met" if m[0] < 0.5 else "MISSED by wall, " + ("met" if m[1] < 0.5 else "MISSED")
                                     + " by cpu") if name in ("zoo --help", "zoo list") else "")
        print(f"{name:28s} {m[0]:7.2f} {m[0] / ref[0]:7.2f} {m[1]:7.2f} {m[1] / ref[1]:7.2f}{goal}")
    print(f"median of {args.repeats} fresh processes each, "
          + ("compiling every module from source (--no-bytecode)" if args.no_bytecode else "with a bytecode cache"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
