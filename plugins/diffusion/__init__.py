"""Diffusion building blocks: the DDPM UNet, the noise schedule / variational bound, samplers
and the diffusers checkpoint converter; :mod:`.ddpm` wires them into the zoo's triple (prior
``ddpm``, encoder ``ddpm-noising``, decoder ``ddpm-decoder``) and :func:`sample` draws images
(ancestral or DDIM) from any model with a ddpm prior."""
from pathlib import Path

from .convert import config_from_diffusers, diffusers_ddpm_to_zoo, diffusers_unet_to_zoo, load_diffusers_unet
from .ddpm import DDPMDecoder, DDPMPrior, NoisingEncoder, NoisingPosterior, sample
from .sampling import ddim_sample, ddim_step, ddpm_sample
from .schedule import (
    BoundTerms,
    NoiseSchedule,
    bits_per_dim,
    cosine_betas,
    ddim_timesteps,
    linear_betas,
    variational_bound,
)
from .unet import UNet, UNetConfig

__all__ = [
    "UNet", "UNetConfig", "NoiseSchedule", "linear_betas", "cosine_betas", "ddim_timesteps",
    "variational_bound", "BoundTerms", "bits_per_dim", "ddpm_sample", "ddim_sample", "ddim_step",
    "diffusers_unet_to_zoo", "config_from_diffusers", "load_diffusers_unet", "diffusers_ddpm_to_zoo",
    "DDPMPrior", "NoisingEncoder", "NoisingPosterior", "DDPMDecoder", "sample", "plot_bound_curve",
]


def plot_bound_curve(report: dict, path) -> Path:
    """PNG of the per-timestep bound terms L_t (``report["L_t"]`` of ``zoo.diagnose``), log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = report.get("L_t") or []
    pts = [(t, v) for t, v in enumerate(curve) if v is not None]
    if not pts:
        raise ValueError("the report has no per-timestep terms 'L_t' (not a DDPM report?)")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([t + 1 for t, _ in pts], [max(v, 1e-6) for _, v in pts], ".-", ms=3)
    ax.set_xlabel("paper timestep t (term L_(t-1) = KL at step t -> t-1)")
    ax.set_ylabel("nats per image")
    ax.set_yscale("log")
    ax.set_title(f"{report.get('model', '')}: per-timestep bound terms" + (f", L_T = {report['L_T']:.3g}" if
                 isinstance(report.get("L_T"), float) else ""), fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
