"""``zoo sweep``: one model per beta, with table and plots (the seed's experiment)."""
from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path


def cmd_sweep(args) -> None:
    from zoo.allocator import tune_allocator

    tune_allocator()  # before torch allocates anything (zoo.allocator)
    from zoo.training.sweep import parse_betas, sweep

    betas = parse_betas(args.beta)
    overrides = {k: v for k, v in (("epochs", args.epochs), ("steps", args.steps), ("seed", args.seed),
                                   ("lr", args.lr), ("batch_size", args.batch_size), ("device", args.device),
                                   ("threads", args.threads))
                 if v is not None}
    command = shlex.join(["zoo", *sys.argv[1:]]) if sys.argv[0].endswith("zoo") else None
    started = time.perf_counter()
    rows = sweep(args.name, betas, data=args.data, out=args.out, split=args.split, progress=not args.quiet,
                 command=command, overwrite=args.overwrite, **overrides)
    out = Path(args.out)
    if args.json:
        import json

        print(json.dumps({"rows": rows, "folder": str(out)}, indent=2, default=str))
        return
    print((out / "sweep.md").read_text())
    print(f"wrote {out}/ (sweep.csv, sweep.md, sweep.json, rate_distortion.png, mi_active_units.png, "
          f"{'mig.png, ' if (out / 'mig.png').is_file() else ''}sweep.png) "
          f"in {time.perf_counter() - started:.1f} s for {len(rows)} models")


def add_parser(sub) -> None:
    from zoo.cli.commands import count_int, positive_int

    p = sub.add_parser("sweep", help="train one model per beta; table + plots of rate, distortion, MI, active units")
    p.add_argument("name", help="model name (card), e.g. vae-digits")
    p.add_argument("--beta", default="0.5,1,2,4,8", help="comma-separated betas (default 0.5,1,2,4,8)")
    p.add_argument("--data", help="data spec (default: the card's)")
    p.add_argument("--out", default=None, help="output folder (default runs/sweep-NAME)")
    p.add_argument("--split", default="train", help="split the measurements use (default train: MI over more points)")
    p.add_argument("--epochs", type=positive_int, help="passes over the training data of each run")
    p.add_argument("--steps", type=positive_int, help="optimiser steps of each run (takes precedence over --epochs)")
    p.add_argument("--batch-size", type=positive_int, help="global batch of one optimiser step")
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--seed", type=int, help="seed of every run")
    p.add_argument("--device", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps")
    p.add_argument("--threads", type=count_int, help="torch CPU threads (default: 1 for models under 2M parameters; 0: torch's default)")
    p.add_argument("--overwrite", action="store_true", help="replace earlier runs in OUT/beta-*")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the table rows as JSON")
    p.set_defaults(func=_run)


def _run(args) -> None:
    if args.out is None:
        args.out = f"runs/sweep-{args.name}"
    cmd_sweep(args)
