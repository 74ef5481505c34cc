"""Test ELBO of a latent-diffusion card beside the VAE whose encoder and decoder it shares, image by image.

    python tools/paired_prior_gain.py ldm-mnist vae-mnist --eval-timesteps 200

Both models are loaded from their packaged weights and scored on the same test images with the same
z ~ q(z|x) draws (same seed): the paired difference of the ELBOs is then the prior's part alone,
E_q[log p_diffusion(z)] (its bound -L(z)) - E_q[log N(z; 0, I)]-as-KL, with a standard error over the
images far smaller than either ELBO's.  ``--eval-timesteps K`` sets the diffusion prior's strata for this
measurement (the card's value is used otherwise); every K gives an unbiased estimate of the same bound.
"""
from __future__ import annotations

import argparse
import math

import torch


def paired_gain(diffusion: str, vae: str, *, eval_timesteps: int | None = None, seed: int = 1) -> dict:
    import zoo
    from zoo.data import load_tensors

    a, b = zoo.load(diffusion).eval(), zoo.load(vae).eval()
    if eval_timesteps is not None:
        a.prior.eval_timesteps = eval_timesteps
    x = load_tensors(a.card.zoo["data"]["source"], "test")
    with torch.no_grad():
        torch.manual_seed(seed)
        ea = a.elbo(x)
        torch.manual_seed(seed)
        eb = b.elbo(x)
    if not torch.allclose(ea.distortion, eb.distortion):
        raise ValueError(f"{diffusion} and {vae} do not share their encoder and decoder: no paired comparison")
    d = ea.elbo - eb.elbo
    n = math.sqrt(len(d))
    return {"n": len(d), diffusion: (float(ea.elbo.mean()), float(ea.elbo.std() / n)),
            vae: (float(eb.elbo.mean()), float(eb.elbo.std() / n)), "gain": (float(d.mean()), float(d.std() / n))}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("diffusion")
    p.add_argument("vae")
    p.add_argument("--eval-timesteps", type=int, default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    r = paired_gain(args.diffusion, args.vae, eval_timesteps=args.eval_timesteps)
    for k, v in r.items():
        print(f"{k:>12}: {v[0]:.3f} +- {v[1]:.3f}" if isinstance(v, tuple) else f"{k:>12}: {v}")
