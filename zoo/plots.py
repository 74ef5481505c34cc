"""Figures of a ``diagnose`` report (PNG, matplotlib's Agg backend): ``plot_report(report, path)``.

What the report holds decides the figure: one panel per series the model's components declare
(zoo.contracts.Series: per-layer KL, per-step bound terms, ...; bars for a few items, a curve for many,
on a log axis where the declaration asks), then the KL of each latent dimension and the posterior-mean
variances against the active-unit threshold of Burda et al. (2015).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo import contracts as c
from zoo.store.atomic import save_atomic

BARS = 16  # a series of at most this many items is drawn as bars (+- 2 SE), a longer one as a curve


def plot_report(report: dict[str, Any], path: str | Path) -> Path:
    """Write the figure that fits ``report`` to ``path``; raise ValueError if it has nothing to draw."""
    series = [r for r in c.declared_results(report) if isinstance(r, c.Series)]
    kl, var = report.get("kl_per_dim") or [], report.get("posterior_mean_variance") or []
    panels = len(series) + bool(kl) + bool(var)
    if not panels:
        raise ValueError("the report has neither declared series (zoo.contracts.Series) nor per-dimension terms "
                         "to plot")
    plt = _pyplot()
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 3.4), squeeze=False)
    axes = list(axes[0])
    for result in series:
        _series_panel(axes.pop(0), result, report)
    if kl:
        _kl_panel(axes.pop(0), kl)
    if var:
        _variance_panel(axes.pop(0), var, report)
    fig.suptitle(_title(report), fontsize=9)
    return _save(fig, path)


def plot_series(report: dict[str, Any], path: str | Path) -> Path:
    """One panel per declared series of ``report`` (zoo.contracts.Series), e.g. a diffusion model's per-step bound
    terms or a hierarchical VAE's KL per layer; raise ValueError when it declares none."""
    series = [r for r in c.declared_results(report) if isinstance(r, c.Series)]
    if not series:
        raise ValueError("the report declares no series (zoo.contracts.Series) to plot")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(series), figsize=(6 * len(series), 3.5), squeeze=False)
    for ax, result in zip(axes[0], series):
        _series_panel(ax, result, report)
    fig.suptitle(_title(report), fontsize=9)
    return _save(fig, path)


def plot_latent_units(report: dict[str, Any], path: str | Path) -> Path:
    """KL per latent dimension (bars) and Cov_x E_q[z_d] against the active-unit threshold."""
    plt = _pyplot()
    kl, var = report.get("kl_per_dim") or [], report.get("posterior_mean_variance") or []
    panels = [p for p in (kl, var) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.2), squeeze=False)
    axes = list(axes[0])
    if kl:
        _kl_panel(axes.pop(0), kl)
    if var:
        _variance_panel(axes.pop(0), var, report)
    fig.suptitle(f"{report.get('model', '')} on {report.get('data', '')}", fontsize=10)
    return _save(fig, path)


def _title(report: dict[str, Any]) -> str:
    """The model and data, and the declared scalar terms (zoo.contracts.Term) with their values."""
    terms = [f"{r.label} = {report[r.name]:.3g} {r.unit}" for r in c.declared_results(report)
             if isinstance(r, c.Term) and isinstance(report.get(r.name), float)]
    return "; ".join([f"{report.get('model', '')} on {report.get('data', '')}", *terms])


def _series_panel(ax, result: c.Series, report: dict[str, Any]) -> None:
    values = report[result.name]
    pts = [(result.start + i, v) for i, v in enumerate(values) if v is not None]
    if not pts:
        raise ValueError(f"the report's series {result.name!r} has no evaluated item to plot")
    xs = [i for i, _ in pts]
    ys = [max(v, 1e-6) if result.log_scale else v for _, v in pts]
    if len(values) <= BARS:
        ses = report.get(f"{result.name}_se") or [None] * len(values)
        err = [ses[i - result.start] or 0.0 for i in xs]
        ax.bar(xs, ys, yerr=[2 * e for e in err], capsize=3)
        ax.set_xticks(xs)
    else:
        ax.plot(xs, ys, ".-", ms=3)
    if result.log_scale:
        ax.set_yscale("log")
    ax.set_xlabel(f"{result.index} ({result.note})" if result.note else result.index)
    ax.set_ylabel(f"{result.unit} per image")
    evaluated = "" if len(pts) == len(values) else f" ({len(pts)} of {len(values)} {result.items} evaluated)"
    ax.set_title(f"{result.label}{evaluated}" + (" (+- 2 SE)" if len(values) <= BARS else ""), fontsize=9)


def _kl_panel(ax, kl: list[float]) -> None:
    ax.bar(range(len(kl)), kl)
    ax.set_xlabel("latent dimension d")
    ax.set_ylabel("KL(q(z_d|x) || p(z_d))  [nats]")
    ax.set_title("KL per dimension", fontsize=9)


def _variance_panel(ax, var: list[float], report: dict[str, Any]) -> None:
    ax.bar(range(len(var)), [max(v, 1e-8) for v in var])
    ax.axhline(report.get("active_threshold", 0.01), color="k", ls="--", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("latent dimension d")
    ax.set_ylabel("Cov_x E_q[z_d]")
    ax.set_title(f"active units: {report.get('active_units')} / {report.get('latent_dims')} (above the line)",
                 fontsize=9)


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
