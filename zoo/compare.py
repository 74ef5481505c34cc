"""``compare``: the seed's question in one table: do diffusion models, unlike VAEs, escape the collapse of I(x;z)?

Each model is loaded (a run folder, or a card's shipped weights) or trained with ``zoo train``'s machinery
into ``OUT/runs/NAME`` (reused when already there), then measured with the same code as ``zoo diagnose``
and ``zoo evaluate``:

  bits/dim      the negative ELBO (a bound on -log2 p(x) per dimension) with its SE, on ``split``
  rate          E KL(q(z|x)||p(z)) (for a diffusion model L_T + sum L_{t-1}, an upper bound)
  I_q bracket   paired lower / leave-one-out upper bound on ``mi_split`` (more images: a higher log N ceiling)
  active units  Cov_x E_q[z_d] > 0.01 (Burda et al. 2015); KL per layer for a hierarchical VAE
  FID, P/R      torch-fidelity on the data set's feature network (zoo.quality)
  I(x_0; x_t)   for a pixel diffusion model, over t, with the same estimator (zoo.forward_information)

Writes ``OUT/compare.md``, ``OUT/compare.json`` and ``OUT/compare.png``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from zoo import contracts as c
from zoo.errors import WeightsError
from zoo.store.atomic import write_atomic

COLUMNS = ("model", "family", "obtained", "bpd", "bpd_se", "nll_bpd", "nll_kind", "rate", "rate_se", "rate_kind",
           "mi_lower", "mi_lower_se", "mi_upper", "mi_saturated", "mi_log_n", "active_units", "latent_dims",
           "kl_per_layer", "fid", "precision", "recall", "quality_features", "information_curve")


def obtain(name: str, data: str, out: Path, *, overrides: dict[str, Any] | None = None):
    """(model, how): a run folder loaded; a card's shipped weights (pretrained=True); else trained into
    ``out/runs/NAME`` (a finished run already there is reused)."""
    from zoo.cards.catalog import get_card
    from zoo.loading import load, resolve

    kind, target = resolve(name)
    if kind != "card":
        return load(name), f"loaded {target}"
    card = get_card(target)
    if card.zoo.get("weights"):
        try:
            return load(target, pretrained=True), "shipped weights"
        except WeightsError:
            pass  # not packaged and not reachable: train it
    folder = out / "runs" / card.name
    if (folder / "model.safetensors").is_file():
        return load(folder), f"reused run {folder}"
    from zoo.training import train

    train(card.name, out=folder, data=data, progress=False, **(overrides or {}))
    return load(folder), f"trained here into {folder}"


def _bpd_se(model, se: float | None) -> float | None:
    return None if se is None or not math.isfinite(se) else float(model.bits_per_dim(se))


def measure(model, data: str, *, split: str = "test", mi_split: str = "train", quality_n: int | None = None,
            features: str | None = None, curve_samples: int = 4) -> dict[str, Any]:
    """One row of the table (and the diffusion curve) for ``model``."""
    from zoo.data import load_tensors
    from zoo.diagnostics import diagnose
    from zoo.quality.evaluate import evaluate_model

    report = diagnose(model, data, split=split)
    row: dict[str, Any] = {
        "model": model.name, "family": c.family_of(model.prior) or c.family_of(model.encoder) or "vae",
        "bpd": report.get("elbo_bpd"), "bpd_se": _bpd_se(model, report.get("elbo_se")),
        "nll_bpd": report.get("nll_bpd"), "nll_kind": report.get("nll_kind"),
        "rate": report.get("rate"), "rate_se": report.get("rate_se"), "rate_kind": report.get("rate_kind"),
        "active_units": report.get("active_units"), "latent_dims": report.get("latent_dims"),
        "kl_per_layer": report.get("kl_per_layer"), "n": report.get("n"), "seed": report.get("seed")}
    if report.get("mutual_information") is not None:
        mi = diagnose(model, data, split=mi_split, iwae_k=0)
        row.update({"mi_lower": mi["mutual_information"], "mi_lower_se": mi.get("mutual_information_se"),
                    "mi_upper": mi.get("mutual_information_upper"), "mi_saturated": mi.get("mi_saturated"),
                    "mi_log_n": mi.get("mi_log_n"), "mi_rate": mi.get("rate"), "mi_n": mi.get("n")})
    else:
        row["mi_note"] = report.get("mi_estimator")
    quality = evaluate_model(model, data, split=split, n=quality_n, features=features)
    row.update({k: quality.get(k) for k in ("fid", "precision", "recall")})
    row["quality_features"] = quality["features"]
    first = model.encode(load_tensors(data, split)[:1])
    if c.has(model.prior, c.GaussianForwardProcess) and c.is_fixed(first):
        from zoo.forward_information import model_information_curve

        row["information_curve"] = model_information_curve(model, load_tensors(data, mi_split),
                                                           samples=curve_samples, seed=report["seed"])
    return row


def compare(names: list[str], data: str, out: str | Path, *, split: str = "test", mi_split: str = "train",
            quality_n: int | None = None, features: str | None = None, overrides: dict[str, Any] | None = None,
            curve_samples: int = 4, command: str | None = None) -> dict[str, Any]:
    """Obtain and measure every model; write ``compare.md``, ``compare.json`` and ``compare.png`` into ``out``."""
    from zoo.store.run_lock import FolderGuard

    out = Path(out)
    check_names(names)  # an unknown name is refused before anything is measured or trained
    with FolderGuard(out, kind="compare", overwrite_flag=None) as guard:  # never into a folder of the user's files
        guard.mark()
        return _compare(names, data, out, split=split, mi_split=mi_split, quality_n=quality_n, features=features,
                        overrides=overrides, curve_samples=curve_samples, command=command)


def check_names(names: list[str]) -> None:
    """Every model name resolves (an unknown card is an UnknownModelError naming it); read-only."""
    from zoo.cards.catalog import get_card
    from zoo.loading import resolve

    for name in names:
        kind, target = resolve(name)
        if kind == "card":
            get_card(target)


def _compare(names, data, out, *, split, mi_split, quality_n, features, overrides, curve_samples, command):
    rows = []
    for name in names:
        model, how = obtain(name, data, out, overrides=overrides)
        row = measure(model, data, split=split, mi_split=mi_split, quality_n=quality_n, features=features,
                      curve_samples=curve_samples)
        row["obtained"] = how
        rows.append(row)
    result = {"data": data, "split": split, "mi_split": mi_split, "command": command, "models": rows}
    write_atomic(out / "compare.json", json.dumps(result, indent=2, default=str) + "\n")
    write_atomic(out / "compare.md", format_table(result))
    try:
        plot_compare(result, out / "compare.png")
    except Exception as e:  # noqa: BLE001 - no matplotlib: the table and JSON stand
        from zoo.errors import ZooError

        if not isinstance(e, ZooError):
            raise
        result["figure_error"] = str(e)
    return result


def _f(v: Any, spec: str = ".3f") -> str:
    return "n/a" if v is None else format(v, spec)


def _mi_cell(r: dict[str, Any]) -> str:
    if r.get("information_curve"):
        cur = r["information_curve"]
        return (f"n/a: fixed encoder; I(x_0;x_t) saturated at log N ({cur['log_n']:.2f}) up to "
                f"t={_last_saturated(cur)}, below it from t={cur['identified_from_t']}, bracket within 5% from "
                f"t={cur.get('bracket_within_5pct_from_t')}")
    if r.get("mi_lower") is None:
        return "n/a"
    sat = " SATURATED" if r.get("mi_saturated") else ""
    return f"[{r['mi_lower']:.3f} +- {_f(r.get('mi_lower_se'))}, {_f(r.get('mi_upper'))}]{sat}"


def _last_saturated(curve: dict[str, Any]) -> int | None:
    sat = [t for t, s in zip(curve["t"], curve["saturated"]) if s]
    return sat[-1] if sat else None


def format_table(result: dict[str, Any]) -> str:
    """The Markdown table of a compare result (one row per model)."""
    split, mi_split = result["split"], result["mi_split"]
    log_n = next((r.get("mi_log_n") or (r.get("information_curve") or {}).get("log_n") for r in result["models"]
                  if r.get("mi_log_n") or r.get("information_curve")), None)
    features = sorted({r["quality_features"] for r in result["models"] if r.get("quality_features")})
    lines = [f"# compare on {result['data']}", "",
             f"bits/dim, rate, active units and sample quality on [{split}]; I_q and I(x_0;x_t) on [{mi_split}] "
             f"(log N = {_f(log_n, '.2f')}).", "",
             f"| model | family | -ELBO bits/dim (+- SE) [{split}] | NLL bits/dim | rate nats | I_q(x;z) "
             f"[lower +- SE, upper] [{mi_split}] | active units | KL per layer (bottom first) | FID | "
             "precision / recall |",
             "|---|---|---:|---:|---:|---|---:|---|---:|---|"]
    for r in result["models"]:
        rate = f"{_f(r.get('rate'))}" + (" (upper bound)" if r.get("rate_kind") == "upper bound" else "")
        au = f"{r['active_units']} / {r['latent_dims']}" if r.get("active_units") is not None else "n/a"
        layers = ", ".join(f"{v:.2f}" for v in r["kl_per_layer"]) if r.get("kl_per_layer") else ""
        lines.append(f"| {r['model']} | {r['family']} | {_f(r.get('bpd'), '.3f')} +- {_f(r.get('bpd_se'), '.3f')} | "
                     f"{_f(r.get('nll_bpd'), '.3f')} ({r.get('nll_kind')}) | {rate} | {_mi_cell(r)} | {au} | "
                     f"{layers} | "
                     f"{_f(r.get('fid'), '.2f')} | {_f(r.get('precision'), '.2f')} / {_f(r.get('recall'), '.2f')} |")
    lines += ["", "Features of FID and precision/recall: " + "; ".join(features) + ".",
              "Obtained: " + "; ".join(f"{r['model']}: {r['obtained']}" for r in result["models"]) + "."]
    if result.get("command"):
        lines += ["", f"Made by `{result['command']}`."]
    return "\n".join(lines) + "\n"


def plot_compare(result: dict[str, Any], path: str | Path) -> Path:
    """Left: I(x_0; x_t) over t for each diffusion model (saturated part marked); right: rate and I_q bracket."""
    from zoo.plots import _pyplot, _save

    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    curves = [(r["model"], r["information_curve"]) for r in result["models"] if r.get("information_curve")]
    for name, cur in curves:
        line, = left.plot(cur["t"], cur["lower"], ".-", ms=3, label=f"{name}: lower bound")
        left.plot(cur["t"], [min(u, 2 * cur["log_n"]) for u in cur["upper"]], "--", color=line.get_color(), lw=1,
                  label=f"{name}: leave-one-out upper (clipped at 2 log N)")
        sat = [t for t, s in zip(cur["t"], cur["saturated"]) if s]
        if sat:
            left.axvspan(min(sat), max(sat), color="grey", alpha=0.2, label="saturated: only I >= log N")
        left.axhline(cur["log_n"], color="k", lw=0.8, ls=":", label=f"log N = {cur['log_n']:.2f}")
    left.set_xscale("log")
    left.set_xlabel("diffusion step t")
    left.set_ylabel("I(x_0; x_t) (nats)")
    left.set_title("forward process: fixed by data + schedule" if curves else "no pixel diffusion model", fontsize=9)
    if curves:
        left.legend(fontsize=6)
    rows = [r for r in result["models"] if r.get("rate") is not None]
    xs = range(len(rows))
    right.bar([x - 0.2 for x in xs], [r["rate"] for r in rows], width=0.4, label="rate (nats)")
    for x, r in zip(xs, rows):
        if r.get("mi_lower") is not None:
            top = min(r.get("mi_upper") or r["mi_lower"], r["rate"])
            right.bar(x + 0.2, r["mi_lower"], width=0.4, color="tab:orange",
                      label="I_q lower bound" if x == 0 else None)
            right.plot([x + 0.2, x + 0.2], [r["mi_lower"], top], color="k", lw=2)
            if r.get("mi_log_n"):
                right.plot([x, x + 0.4], [r["mi_log_n"]] * 2, "k:", lw=0.8)
    right.set_yscale("log")
    right.set_xticks(list(xs))
    right.set_xticklabels([r["model"] for r in rows], fontsize=7, rotation=15)
    right.set_ylabel("nats per image")
    right.set_title("rate and the I_q bracket (dotted: log N)", fontsize=9)
    right.legend(fontsize=7)
    fig.suptitle(f"compare on {result['data']}", fontsize=10)
    return _save(fig, path)
