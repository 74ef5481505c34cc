"""Print the no-latent baselines of a built-in data set (``zoo.baselines``): fitted on the training split, scored
on the test split, with their standard errors.

    python tools/pixel_baselines.py zoo:mnist-5k binarised   # uniform and per-pixel Bernoulli
    python tools/pixel_baselines.py zoo:digits 8-bit         # uniform (256 / used levels), per-pixel categoricals

Every model card on these spaces quotes its baselines from this command (and README's results tables carry the
same rows, through zoo.cards.table).
"""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from zoo.baselines import baselines

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="data spec, e.g. zoo:digits")
    parser.add_argument("space", choices=("8-bit", "binarised"), help="the data space the models score")
    parser.add_argument("--split", default="test")
    args = parser.parse_args(argv)
    for row in baselines(args.data, args.space, split=args.split):
        print(f"{row['model']:>20}: {row['nll']:.2f} +- {row['nll_se']:.2f} nats, {row['bpd']:.3f} bits/dim "
              f"[{row['split']}, N={row['n']}]  {row['description']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
