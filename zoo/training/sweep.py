"""``zoo sweep``: the seed's experiment -- one model per beta, and how the information in z falls.

    zoo sweep vae-digits --beta 0.5,1,2,4,8 --data zoo:digits --out runs/sweep-digits

trains the named model once per beta (the beta-ELBO distortion + beta * rate), then measures
every run with ``diagnose`` (the true ELBO, beta = 1) and writes into ``out``:

  sweep.csv, sweep.md         ELBO, distortion, rate, I_q(x;z), KL(q(z)||p(z)), active units per beta
  rate_distortion.png         the rate-distortion curve, each point labelled with its beta
  mi_active_units.png         I_q(x;z) and active units against beta
  mig.png                     on data with known factors (zoo:shapes): MIG against beta, per factor
  series.png                  for a model whose components declare short series (zoo.contracts.Series, e.g.
                              KL per layer): each item against beta
  sweep.png                   both panels side by side (the README's figure)
  beta-<b>/                   each trained run (weights, config, card with results)
"""
from __future__ import annotations

import csv
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

COLUMNS = [("beta", "beta"), ("elbo", "ELBO"), ("distortion", "distortion"), ("rate", "rate"),
           ("mutual_information", "I_q(x;z)"), ("mutual_information_upper", "I_q upper"),
           ("marginal_kl", "KL(q(z)||p(z))"),
           ("active_units", "active units"), ("latent_dims", "latent dims"), ("mig", "MIG"),
           ("test_elbo", "test ELBO"), ("train_seconds", "train s")]


def columns(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The table's columns: MIG only when the data has known factors (some row measured it); then one per result
    the model declares (zoo.contracts.Term, and Series short enough for a cell), before the timing columns."""
    base = [(k, label) for k, label in COLUMNS if k != "mig" or any(r.get("mig") is not None for r in rows)]
    declared = [(r.name, r.label) for r in _declared(rows)]
    return base[:-2] + declared + base[-2:]


def _declared(rows: list[dict[str, Any]]) -> list:
    """The results the first row declares that fit a table cell (terms; series of at most SHORT_SERIES items)."""
    from zoo import contracts as c
    from zoo.diagnostics import SHORT_SERIES

    first = rows[0] if rows else {}
    return [r for r in c.declared_results(first)
            if isinstance(r, c.Term) or len(first[r.name]) <= SHORT_SERIES]


def parse_betas(text: str) -> list[float]:
    """'0.5,1,2' -> [0.5, 1.0, 2.0]; every beta must be a number >= 0."""
    from zoo.errors import UsageError

    try:
        betas = [float(b) for b in text.replace(" ", "").split(",") if b]
    except ValueError:
        raise UsageError(f"--beta must be comma-separated numbers, e.g. 0.5,1,2,4,8; got {text!r}") from None
    if not betas or any(b < 0 or not math.isfinite(b) for b in betas):
        raise UsageError(f"--beta needs one or more finite numbers >= 0, got {text!r}")
    return betas


def sweep(name: str, betas: list[float], *, data: str | None = None, out: str | Path,
          split: str = "train", mi_samples: int = 10, iwae_k: int = 0, progress: bool = False,
          command: str | None = None, threads: int | None = None, overwrite: bool = False, **overrides: Any) -> list[dict[str, Any]]:
    """Train ``name`` once per beta and measure each run on ``split``; write table and plots to ``out``.

    ``split`` "train" (default) measures I_q(x;z) with the exact aggregate posterior of the
    training set, so its log N cap is high; the held-out ELBO is in the ``test_elbo`` column.
    ``overrides`` go to ``zoo.train`` (epochs, steps, lr, seed, batch_size, ...).
    ``overwrite`` replaces earlier runs in ``out/beta-<b>``.
    ``threads``: CPU threads for torch while the sweep runs; default 1 for models under 2M
    parameters (small MLPs train several times faster on one thread, above all on a shared
    machine), else torch's default; 0 keeps torch's setting.  ``out`` is guarded as zoo.store.run_lock.FolderGuard
    says (a folder of the user's files is refused)."""
    from zoo.cards.catalog import get_card
    from zoo.store.run_lock import FolderGuard

    out = Path(out)
    card = get_card(name) if isinstance(name, str) else name
    with FolderGuard(out, kind="sweep", overwrite=overwrite) as guard:  # refused before any training
        guard.mark(card.name)
        return _sweep(card, betas, data, out, split, mi_samples, iwae_k, progress, command, threads, overwrite,
                      overrides)


def _sweep(card, betas, data, out, split, mi_samples, iwae_k, progress, command, threads, overwrite, overrides):
    import torch

    from zoo.assemble import build_model
    from zoo.data import load_factors, load_tensors

    spec = data or card.spec.data.source
    eval_x = load_tensors(spec, split)
    factors = load_factors(spec, split)
    if threads is None:
        threads = 1 if sum(p.numel() for p in build_model(card).parameters()) < 2_000_000 else 0
    saved_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    if overwrite:
        overrides["overwrite"] = True
    try:
        rows, total = _run_betas(card, betas, spec, (eval_x, factors), out, iwae_k, mi_samples, progress, overrides)
    finally:
        torch.set_num_threads(saved_threads)
    meta = {"model": card.name, "data": spec, "split": split, "n": rows[0]["n"] if rows else 0,
            "betas": betas, "seconds": round(total, 1), "threads": threads or saved_threads,
            "command": command or shlex.join(["zoo", "sweep", card.name, "--beta", ",".join(f"{b:g}" for b in betas),
                                              "--data", spec, "--out", str(out)])}
    write_table(rows, out, meta)
    plot(rows, out, meta)
    return rows


def _run_betas(card, betas, spec, eval_x, out, iwae_k, mi_samples, progress, overrides):
    from zoo import contracts as c
    from zoo.diagnostics import diagnose
    from zoo.training.loop import train

    eval_x, factors = eval_x
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for beta in betas:
        t0 = time.perf_counter()
        result = train(card, out=out / f"beta-{beta:g}", data=spec, beta=beta, progress=progress, **overrides)
        seconds = time.perf_counter() - t0
        report = diagnose(result.model, eval_x, iwae_k=iwae_k, mi_samples=mi_samples, factors=factors)
        row = {"beta": beta, **{k: report.get(k) for k, _ in COLUMNS if k in report},
               "n": report["n"], "test_elbo": result.report.get("elbo"), "train_seconds": round(seconds, 1)}
        for declared in c.declared_results(report):  # per-layer KL, ...: whatever the model's components declare
            row.update({declared.name: report[declared.name], f"{declared.name}_se": report.get(f"{declared.name}_se")})
        if report.get("declared_results"):
            row["declared_results"] = report["declared_results"]
        if report.get("mig_per_factor") is not None:
            row["mig_per_factor"] = report["mig_per_factor"]
        rows.append(row)
        if progress:
            print(f"beta {beta:g}: ELBO {row['elbo']:.2f}  rate {row['rate']:.2f}  "
                  f"MI {_fmt(row.get('mutual_information'))}  active {row.get('active_units')}", file=sys.stderr)
    return rows, time.perf_counter() - started


def _fmt(v, spec: str = ".2f") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, list):  # a declared series: its items in order
        return ", ".join(_fmt(x, spec) for x in v)
    return format(v, spec) if isinstance(v, float) else str(v)


def write_table(rows: list[dict[str, Any]], out: Path, meta: dict[str, Any]) -> None:
    """sweep.csv, sweep.md and sweep.json in ``out``."""
    keys = [k for k, _ in columns(rows)]
    with open(out / "sweep.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(keys)
        for row in rows:
            writer.writerow([json.dumps(row.get(k)) if isinstance(row.get(k), list) else row.get(k) for k in keys])
    (out / "sweep.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    (out / "sweep.md").write_text(markdown_table(rows, meta))


def markdown_table(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    cols = columns(rows)
    head = "| " + " | ".join(label for _, label in cols) + " |"
    rule = "|" + "|".join("---:" for _ in cols) + "|"
    lines = [head, rule]
    for row in rows:
        cells = [_fmt(row.get(k), {"beta": "g", "mig": ".3f"}.get(k, ".2f")) for k, _ in cols]
        lines.append("| " + " | ".join(cells) + " |")
    n = meta.get("n") or 0
    note = (f"\nModel `{meta['model']}` on `{meta['data']}`, measured on the {meta['split']} split "
            f"(N = {n}; I_q(x;z) <= log N = {math.log(n) if n else float('nan'):.2f}). All terms in nats per "
            f"image at beta = 1 (the true ELBO); rate = I_q(x;z) + KL(q(z)||p(z)). Active units: "
            f"Cov_x E_q[z_d] > 0.01.{_MIG_NOTE if any(r.get('mig') is not None for r in rows) else ''} Total time {meta['seconds']} s ({meta.get('threads')} CPU thread(s)).\n\n    {meta['command']}\n")
    return "\n".join(lines) + "\n" + note


def plot(rows: list[dict[str, Any]], out: Path, meta: dict[str, Any]) -> None:
    """rate_distortion.png, mi_active_units.png and sweep.png (both panels) in ``out``; with known factors
    also mig.png, and sweep.png gets the MIG panel too."""
    from zoo.plots import _pyplot, _save

    plt = _pyplot()
    title = f"{meta['model']} on {meta['data']} ({meta['split']})"
    figures = [("rate_distortion.png", (_rd,)), ("mi_active_units.png", (_mi,)), ("sweep.png", (_rd, _mi))]
    if any(r.get("mig") is not None for r in rows):
        figures = figures[:2] + [("mig.png", (_mig,)), ("sweep.png", (_rd, _mi, _mig))]
    from zoo import contracts as c

    series = [r for r in _declared(rows) if isinstance(r, c.Series)]
    if series:
        panels = tuple(_series_panel(r) for r in series)
        figures = figures[:-1] + [("series.png", panels), (figures[-1][0], figures[-1][1] + panels)]
    for fname, panels in figures:
        fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
        for ax, panel in zip(axes[0], panels):
            panel(ax, rows)
        fig.suptitle(title, fontsize=11)
        _save(fig, out / fname)


def _rd(ax, rows) -> None:
    rate = [r["rate"] for r in rows]
    dist = [r["distortion"] for r in rows]
    ax.plot(rate, dist, "o-", color="C0")
    groups: dict[tuple[float, float], list[str]] = {}  # betas that land on one point share a label
    for r in rows:
        groups.setdefault((round(r["rate"], 1), round(r["distortion"], 1)), []).append(f"{r['beta']:g}")
    for (x, y), labels in groups.items():
        ax.annotate("β=" + ",".join(labels), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=9)
    ax.set_xlabel("rate  KL(q(z|x) || p(z))  [nats]")
    ax.set_ylabel("distortion  -E_q log p(x|z)  [nats]")
    ax.set_title("rate-distortion")
    ax.grid(alpha=0.3)


def _mi(ax, rows) -> None:
    betas = [r["beta"] for r in rows]
    mi = [r.get("mutual_information") for r in rows]
    au = [r.get("active_units") for r in rows]
    ax.plot(betas, [m if m is not None else math.nan for m in mi], "o-", color="C1", label="I_q(x;z)")
    if all(b > 0 for b in betas):
        ax.set_xscale("log", base=2)
    ax.set_xticks(betas, [f"{b:g}" for b in betas])
    ax.minorticks_off()
    ax.set_xlabel("β")
    ax.set_ylabel("I_q(x;z)  [nats]", color="C1")
    ax.set_title("information in z against β")
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(betas, [a if a is not None else math.nan for a in au], "s--", color="C2", label="active units")
    ax2.set_ylabel("active units", color="C2")
    dims = rows[0].get("latent_dims") if rows else None
    if dims:
        ax2.set_ylim(-0.5, dims + 0.5)
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [l.get_label() for l in lines], loc="upper right", fontsize=9)


def _series_panel(result):
    """A panel of one declared series (zoo.contracts.Series): each item against beta."""
    def panel(ax, rows) -> None:
        betas = [r["beta"] for r in rows]
        for i in range(len(rows[0][result.name])):
            values = [(r.get(result.name) or [])[i:i + 1] for r in rows]
            ax.plot(betas, [v[0] if v and v[0] is not None else math.nan for v in values], "o-",
                    label=f"{result.index} {result.start + i}")
        if all(b > 0 for b in betas):
            ax.set_xscale("log", base=2)
        ax.set_xticks(betas, [f"{b:g}" for b in betas])
        ax.minorticks_off()
        if result.log_scale:
            ax.set_yscale("log")
        ax.set_xlabel("β")
        ax.set_ylabel(f"{result.label}  [{result.unit}]")
        ax.set_title(f"{result.label} against β" + (f" ({result.note})" if result.note else ""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return panel


_MIG_NOTE = (" MIG: mutual information gap of the posterior means against the known factors (Chen et al. 2018; "
             "histogram estimator, 20 bins: zoo.disentanglement).")


def _mig(ax, rows) -> None:
    betas = [r["beta"] for r in rows]
    ax.plot(betas, [r.get("mig") if r.get("mig") is not None else math.nan for r in rows], "o-", color="k", lw=2,
            label="MIG (mean)")
    names = list((rows[0].get("mig_per_factor") or {}).keys()) if rows else []
    for name in names:
        ax.plot(betas, [(r.get("mig_per_factor") or {}).get(name, math.nan) for r in rows], ".--", lw=1, label=name)
    if all(b > 0 for b in betas):
        ax.set_xscale("log", base=2)
    ax.set_xticks(betas, [f"{b:g}" for b in betas])
    ax.minorticks_off()
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("β")
    ax.set_ylabel("MIG")
    ax.set_title("disentanglement (MIG) against β")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
