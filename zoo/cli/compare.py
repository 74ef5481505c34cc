"""``zoo compare vae-digits-8bit hvae-digits-8bit ddpm-digits --data zoo:digits --out DIR``: one table and one
figure per data space, each with the baselines of its space."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path


def cmd_compare(args) -> None:
    from zoo.compare import compare

    overrides = {k: v for k, v in (("steps", args.steps), ("epochs", args.epochs)) if v is not None}
    command = shlex.join(["zoo", *sys.argv[1:]]) if sys.argv[0].endswith("zoo") else None
    result = compare(args.models, args.data, args.out, split=args.split, mi_split=args.mi_split,
                     quality_n=args.n, features=args.features, overrides=overrides, command=command,
                     seeds=args.seeds, one_table=args.one_table, progress=False if args.quiet else None,
                     sampler={"name": args.sampler, **({"steps": args.sampler_steps} if args.sampler_steps else {})}
                     if args.sampler else None)
    print((Path(args.out) / "compare.md").read_text())
    print(f"wrote {args.out}/compare.md, compare.json"
          + "".join(f", {Path(f).name}" for f in result.get("figures", [])))


def add_parser(sub) -> None:
    from zoo.cli.commands import positive_int

    p = sub.add_parser("compare", help="bits/dim, rate, I_q bracket, active units, FID and diffusion's I(x_0;x_t) "
                                       "for several models: one table and figure per data space, with baselines",
                       description="Loads each model (run folder, or a card's shipped weights) or trains it with "
                                   "`zoo train`'s recipe into OUT/runs/NAME (reused when there), then measures it "
                                   "as `zoo diagnose` and `zoo evaluate` do. Models are grouped by data space (data, shape, "
                                   "8-bit / binarised / continuous likelihood): one table per space, each with the "
                                   "no-latent baselines of its space and the test-vs-train floor of FID.")
    p.add_argument("models", nargs="+", help="model names or run folders")
    p.add_argument("--data", default="zoo:digits", help="data spec (default zoo:digits)")
    p.add_argument("--out", required=True, help="folder for compare.md, compare.json, compare.png and runs/")
    p.add_argument("--split", default="test", help="split of bits/dim, rate, active units, FID (default test)")
    p.add_argument("--mi-split", default="train", help="split of I_q and I(x_0;x_t): more images, a higher "
                                                       "log N ceiling (default train)")
    p.add_argument("--n", type=positive_int, help="samples and reference images for FID (default: the split)")
    p.add_argument("--features", help="feature network for FID (default: the one of --data)")
    p.add_argument("--steps", type=positive_int, help="training steps of models trained here (default: the card's)")
    p.add_argument("--epochs", type=positive_int, help="training epochs of models trained here (default: the card's)")
    p.add_argument("--seeds", type=positive_int, default=5, help="sample draws of FID and precision/recall, "
                                                                 "reported as mean +- SE (default 5)")
    p.add_argument("--one-table", action="store_true", help="one table: refuse, by name, a model on another data "
                                                            "space than the first model's")
    p.add_argument("--sampler", help="registered sampler for the FID samples of models whose prior declares it "
                                     "(e.g. ddim); the others sample ancestrally (default: each model's own)")
    p.add_argument("--sampler-steps", type=positive_int, help="steps of --sampler (e.g. 50)")
    p.add_argument("--quiet", action="store_true", help="no progress bar (there is none when stderr is not a terminal)")
    p.set_defaults(func=cmd_compare)
