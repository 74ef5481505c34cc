"""``zoo train NAME --out DIR``: the trainer on the command line; one flag per TrainConfig field."""
from __future__ import annotations

import shlex
import sys


def cmd_train(args) -> None:
    from zoo.allocator import tune_allocator

    tune_allocator()  # before torch allocates anything (zoo.allocator)
    from zoo.diagnostics import format_report
    from zoo.training import train
    from zoo.training.config import flag_values

    result = train(args.name, out=args.out, data=args.data, beta=args.beta, resume=args.resume,
                   overwrite=args.overwrite, progress=not args.quiet, image_key=args.image_key,
                   data_config=args.data_config, data_shape=args.data_shape,
                   command=shlex.join(["zoo", *sys.argv[1:]]) if sys.argv[0].endswith("zoo") else None,
                   **flag_values(args))
    if not result.report:  # not the main process of a distributed run
        return
    if args.json:
        import json

        print(json.dumps({**result.report, "folder": str(result.folder)}, indent=2, default=str))
        return
    print(format_report(result.report))
    extra = ", model_raw.safetensors" if result.report.get("weights") == "ema" else ""
    print(f"wrote {result.folder}/ (model.safetensors [{result.report.get('weights', 'raw')} weights]{extra}, "
          f"config.json, README.md, checkpoints/, metrics.csv, tensorboard/, samples/)")


def _shape(text: str) -> tuple[int, ...]:
    """argparse type of --data-shape: C,H,W positive integers (argparse names the flag in the error)."""
    import argparse

    from zoo.errors import ShapeError
    from zoo.training.reshape import parse_shape

    try:
        return parse_shape(text)
    except ShapeError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--data-shape: ")) from None


def add_parser(sub) -> None:
    from zoo.training.config import add_flags

    p = sub.add_parser("train", help="train a named model",
                       description="Train a named model with its card's recipe; every flag below overrides one "
                                   "field of the card's zoo.train block. Multi-GPU / multi-node: accelerate launch "
                                   "--multi_gpu --num_processes N -m zoo.cli train ... (or torchrun "
                                   "--nproc_per_node N -m zoo.cli train ...)")
    p.add_argument("name", help="model name (see `zoo list`) or a card file path/to/NAME.md")
    p.add_argument("--data", help="zoo:mnist-5k, zoo:digits, a Hub dataset id or a local path (default: the card's)")
    p.add_argument("--out", required=True, help="run folder to write")
    p.add_argument("--resume", action="store_true", help="continue from the newest good checkpoint in --out")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--beta", type=float, help="override the card's beta (objective.beta)")
    p.add_argument("--image-key", help="the image column of --data (default: the card's, else the first image column)")
    p.add_argument("--data-config", help="the configuration of a Hub dataset with several (datasets' name=)")
    p.add_argument("--data-shape", metavar="C,H,W", type=_shape,
                   help="train the card's architecture on images of this shape, e.g. 1,28,28 (default: the card's)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the final report as JSON")
    add_flags(p)
    p.set_defaults(func=cmd_train)
