"""Figures of a ``diagnose`` report (PNG, matplotlib's Agg backend): ``plot_report(report, path)``.

What the report holds decides the figure: a diffusion model's per-timestep bound terms L_t (log
scale), else the KL of each latent dimension (and of each layer for hierarchical models) with the
active-unit threshold of Burda et al. (2015) marked on the posterior-mean variances.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo.store.atomic import save_atomic


def plot_report(report: dict[str, Any], path: str | Path) -> Path:
    """Write the figure that fits ``report`` to ``path``; raise ValueError if it has nothing to draw."""
    if isinstance(report.get("L_t"), list):
        return plot_bound_curve(report, path)
    if report.get("kl_per_dim") or report.get("posterior_mean_variance"):
        return plot_latent_units(report, path)
    raise ValueError("the report has neither per-timestep terms (L_t) nor per-dimension terms to plot")


def plot_bound_curve(report: dict[str, Any], path: str | Path) -> Path:
    """The per-timestep bound terms L_t of a diffusion model (``report["L_t"]``), log scale."""
    plt = _pyplot()
    pts = [(t, v) for t, v in enumerate(report.get("L_t") or []) if v is not None]
    if not pts:
        raise ValueError("the report has no per-timestep terms 'L_t' (not a diffusion model's report?)")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([t + 1 for t, _ in pts], [max(v, 1e-6) for _, v in pts], ".-", ms=3)
    ax.set_xlabel("paper timestep t (term L_(t-1) = KL at step t -> t-1)")
    ax.set_ylabel("nats per image")
    ax.set_yscale("log")
    prior = f", L_T = {report['L_T']:.3g}" if isinstance(report.get("L_T"), float) else ""
    ax.set_title(f"{report.get('model', '')}: per-timestep bound terms{prior}", fontsize=9)
    return _save(fig, path)


def plot_latent_units(report: dict[str, Any], path: str | Path) -> Path:
    """KL per latent dimension (bars) and Cov_x E_q[z_d] against the active-unit threshold."""
    plt = _pyplot()
    kl, var = report.get("kl_per_dim") or [], report.get("posterior_mean_variance") or []
    panels = [p for p in (kl, var) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.2), squeeze=False)
    axes = list(axes[0])
    if kl:
        ax = axes.pop(0)
        ax.bar(range(len(kl)), kl)
        ax.set_xlabel("latent dimension d")
        ax.set_ylabel("KL(q(z_d|x) || p(z_d))  [nats]")
        layers = report.get("kl_per_layer")
        ax.set_title("KL per dimension" + (f"; per layer {[round(v, 2) for v in layers]}" if layers else ""), fontsize=9)
    if var:
        ax = axes.pop(0)
        ax.bar(range(len(var)), [max(v, 1e-8) for v in var])
        ax.axhline(report.get("active_threshold", 0.01), color="k", ls="--", lw=1)
        ax.set_yscale("log")
        ax.set_xlabel("latent dimension d")
        ax.set_ylabel("Cov_x E_q[z_d]")
        ax.set_title(f"active units: {report.get('active_units')} / {report.get('latent_dims')} (above the line)",
                     fontsize=9)
    fig.suptitle(f"{report.get('model', '')} on {report.get('data', '')}", fontsize=10)
    return _save(fig, path)


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        from zoo.errors import ZooError

        raise ZooError("figures need matplotlib: pip install 'latent-zoo[plots]'") from None

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    fig.tight_layout()
    save_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    _pyplot().close(fig)
    return path
