"""L_0 of a pixel DDPM under both choices of sigma_1^2 (the prior's ``first_variance``), same weights and draws.

    python tools/first_variance_l0.py runs/ddpm-digits [--split test]

L_0 = -log p(x_0|x_1) is the distortion of the DDPM's ELBO (the discretized Gaussian decoder at t = 1); it is the
only term the choice moves.  Prints L_0 in nats per image and bits/dim for beta_tilde_2 (Ho et al.'s code, the
default) and beta_1 (diffusers' fixed_large).
"""
from __future__ import annotations

import argparse
import dataclasses

import torch


def main() -> None:
    import zoo
    from zoo.data import load_tensors

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a run folder or model name of a pixel DDPM (encoder ddpm-noising)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = zoo.load(args.run)
    model.eval()
    x = load_tensors(model.config["data"]["source"], args.split)
    for choice in ("beta_tilde_2", "beta_1"):
        model.prior.schedule = dataclasses.replace(model.prior.schedule, first_variance=choice)
        with torch.no_grad():
            torch.manual_seed(args.seed)
            q = model.encode(x)                       # x_1 ~ q(x_1|x_0), the same draw for both choices
            z = q.rsample()
            l0 = -model.decoder(z).log_prob(model.prepare(x)).double()
        mean, se = float(l0.mean()), float(l0.std() / len(l0) ** 0.5)
        print(f"first_variance {choice:12s}  L_0 = {mean:.3f} +- {se:.3f} nats/image  "
              f"= {float(model.bits_per_dim(mean)):.4f} bits/dim  (N={len(x)}, {args.split})")


if __name__ == "__main__":
    main()
