"""``compare``: the seed's question on one data space: do diffusion models, unlike VAEs, escape the collapse of I(x;z)?

Models are grouped by data space (data, shape and how the likelihood discretises pixels: 8-bit, binarised or a
continuous density; zoo.data_space) and each space gets its own table and figure: two spaces never share one.
With ``one_table=True`` a model on another space than the first model's is refused by name.  Every table
carries the baseline rows with no latent of its space (zoo.baselines: uniform, per-pixel categorical or
Bernoulli fitted on the training split) scored on the same split, and the test-vs-train floor of its
sample-quality metrics.

Each model is loaded (a run folder, or a card's shipped weights) or trained with ``zoo train``'s machinery
into ``OUT/runs/NAME`` (reused when already there), then measured with the same code as ``zoo diagnose``
and ``zoo evaluate``:

  bits/dim      the negative ELBO (a bound on -log2 p(x) per dimension) with its SE, on ``split``
  rate          E KL(q(z|x)||p(z)) (for a diffusion model its variational bound: an upper bound)
  I_q bracket   paired lower / leave-one-out upper bound on ``mi_split`` (more images: a higher log N ceiling)
  active units  Cov_x E_q[z_d] > 0.01 (Burda et al. 2015)
  declared      the results the model's components declare (zoo.contracts.Series / Term: KL per layer, per-step
                bound terms, ...): short series in the table, the others in the notes below it
  FID, P/R      torch-fidelity on the data set's feature network (zoo.quality), mean +- SE over ``seeds``
                sample draws, against the split in the models' own space (zoo.quality.seeds)
  I(x_0; x_t)   for a pixel diffusion model, over t, with the same estimator (zoo.forward_information)

Writes ``OUT/compare.md`` (one table per space), ``OUT/compare.json`` and one figure per space
(``OUT/compare.png`` when all models share one space, else ``OUT/compare-<space>.png``).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

from zoo import contracts as c
from zoo.errors import UsageError, WeightsError
from zoo.store.atomic import write_atomic

COLUMNS = ("model", "family", "obtained", "bpd", "bpd_se", "nll_bpd", "nll_kind", "rate", "rate_se", "rate_kind",
           "mi_lower", "mi_lower_se", "mi_upper", "mi_saturated", "mi_log_n", "active_units", "latent_dims",
           "declared_results", "fid", "fid_se", "precision", "precision_se", "recall", "recall_se", "quality_features",
           "information_curve", "space")


def obtain(name: str, data: str, out: Path, *, overrides: dict[str, Any] | None = None):
    """(model, how): a run folder loaded; a card's shipped weights (pretrained=True); else trained into
    ``out/runs/NAME`` (a finished run already there is reused)."""
    from zoo.cards.catalog import get_card
    from zoo.loading import load, resolve

    kind, target = resolve(name)
    if kind != "card":
        return load(name), f"loaded {target}"
    card = get_card(target)
    if card.spec.weights is not None:
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
            features: str | None = None, curve_samples: int = 4, seeds: int = 5,
            progress: Callable[[], None] | None = None, sampler: dict[str, Any] | None = None) -> dict[str, Any]:
    """One row of the table (and the diffusion curve) for ``model``."""
    from zoo.data import load_tensors
    from zoo.diagnostics import diagnose
    from zoo.quality.seeds import SEEDED, evaluate_over_seeds

    report = diagnose(model, data, split=split, mi_split="same")  # the I_q terms are measured on mi_split below
    row: dict[str, Any] = {
        "model": model.name, "family": c.family_of(model.prior) or c.family_of(model.encoder) or "vae",
        "bpd": report.get("elbo_bpd"), "bpd_se": _bpd_se(model, report.get("elbo_se")),
        "nll_bpd": report.get("nll_bpd"), "nll_kind": report.get("nll_kind"),
        "rate": report.get("rate"), "rate_se": report.get("rate_se"), "rate_kind": report.get("rate_kind"),
        "active_units": report.get("active_units"), "latent_dims": report.get("latent_dims"),
        "n": report.get("n"), "seed": report.get("seed")}
    for result in c.declared_results(report):  # per-layer KL, per-step terms, ...: whatever the model declares
        row.update({result.name: report[result.name], f"{result.name}_se": report.get(f"{result.name}_se")})
    if report.get("declared_results"):
        row["declared_results"] = report["declared_results"]
    if report.get("mutual_information") is not None:
        mi = diagnose(model, data, split=mi_split, iwae_k=0)
        row.update({"mi_lower": mi["mutual_information"], "mi_lower_se": mi.get("mutual_information_se"),
                    "mi_upper": mi.get("mutual_information_upper"), "mi_saturated": mi.get("mi_saturated"),
                    "mi_log_n": mi.get("mi_log_n"), "mi_rate": mi.get("rate"), "mi_n": mi.get("n")})
    else:
        row["mi_note"] = report.get("mi_estimator")
    if progress:
        progress()
    quality = evaluate_over_seeds(model, data, split=split, n=quality_n, features=features, seeds=seeds,
                                  floor=False, progress=progress, sampler=sampler)
    row.update({f"{k}{s}": quality.get(f"{k}{s}") for k in SEEDED for s in ("", "_se")})
    row.update({"quality_features": quality["features"], "quality_seeds": quality["seeds"],
                "quality_sampler": quality["sampler"]})
    if report.get("learned_information"):  # what the denoiser learned (I-MMSE), for every diffusion prior
        row["learned_information"] = report["learned_information"]
    first = model.encode(load_tensors(data, split)[:1])
    if c.has(model.prior, c.GaussianForwardProcess) and c.is_fixed(first):
        from zoo.forward_information import model_information_curve

        row["information_curve"] = model_information_curve(model, load_tensors(data, mi_split),
                                                           samples=curve_samples, seed=report["seed"])
    return row


def compare(names: list[str], data: str, out: str | Path, *, split: str = "test", mi_split: str = "train",
            quality_n: int | None = None, features: str | None = None, overrides: dict[str, Any] | None = None,
            curve_samples: int = 4, command: str | None = None, seeds: int = 5, one_table: bool = False,
            progress: bool | None = None, sampler: dict[str, Any] | None = None) -> dict[str, Any]:
    """Obtain every model, group them by data space, measure them beside their space's baselines and floor;
    write ``compare.md`` (one table per space), ``compare.json`` and one figure per space into ``out``.

    ``one_table``: refuse (UsageError, naming them) the models whose space is not the first model's.
    ``progress``: a tqdm bar on stderr (None: when stderr is a terminal).
    ``sampler``: e.g. ``{"name": "ddim", "steps": 50}``, used for the FID samples of models whose prior declares it
    (the others sample ancestrally); each row says which sampler made its samples."""
    from zoo.store.run_lock import FolderGuard

    if not (isinstance(seeds, int) and seeds >= 1):
        raise UsageError(f"--seeds: expected a positive number of sample seeds, got {seeds!r}")
    out = Path(out)
    check_names(names)  # an unknown name is refused before anything is measured or trained
    with FolderGuard(out, kind="compare", overwrite_flag=None) as guard:  # never into a folder of the user's files
        guard.mark()
        return _compare(names, data, out, split=split, mi_split=mi_split, quality_n=quality_n, features=features,
                        overrides=overrides, curve_samples=curve_samples, command=command, seeds=seeds,
                        one_table=one_table, progress=progress, sampler=sampler)


def check_names(names: list[str]) -> None:
    """Every model name resolves (an unknown card is an UnknownModelError naming it); read-only."""
    from zoo.cards.catalog import get_card
    from zoo.loading import resolve

    for name in names:
        kind, target = resolve(name)
        if kind == "card":
            get_card(target)


def _compare(names, data, out, *, split, mi_split, quality_n, features, overrides, curve_samples, command, seeds,
             one_table, progress, sampler):
    from zoo.baselines import baselines
    from zoo.data_space import data_space
    from zoo.quality.seeds import floor_over_seeds

    bar = _bar(len(names) * (seeds + 2), progress)
    try:
        obtained = []
        for name in names:
            bar.set_description(f"obtain {name}")
            model, how = obtain(name, data, out, overrides=overrides)
            obtained.append((model, how, data_space(model, data)))
            bar.update()
        groups: dict[str, list] = {}
        for item in obtained:
            groups.setdefault(item[2].key, []).append(item)
        if one_table and len(groups) > 1:
            first = obtained[0][2]
            others = [f"{m.name!r} ({sp.label})" for m, _, sp in obtained if sp.key != first.key]
            raise UsageError(f"one table holds one data space: {first.label} (of {obtained[0][0].name!r}); refused "
                             f"{', '.join(others)}; leave out --one-table to get one table per space")
        bar.total += len(groups) * seeds
        spaces, rows = [], []
        for key, items in groups.items():
            space = items[0][2]
            group_rows = []
            for model, how, _ in items:
                bar.set_description(f"measure {model.name}")
                row = measure(model, data, split=split, mi_split=mi_split, quality_n=quality_n, features=features,
                              curve_samples=curve_samples, seeds=seeds, progress=bar.update, sampler=sampler)
                row.update({"obtained": how, "space": key})
                group_rows.append(row)
            bar.set_description(f"floor of {key}")
            floor = floor_over_seeds(items[0][0], data, split=split, n=quality_n, features=features, seeds=seeds,
                                     progress=bar.update)
            base = baselines(data, space.kind, split=split) if space.kind != "continuous" else []
            spaces.append({"space": key, "label": space.label, "kind": space.kind, "shape": list(space.shape),
                           "baselines": base, "floor": floor, "models": group_rows})
            rows += group_rows
    finally:
        bar.close()
    result = {"data": data, "split": split, "mi_split": mi_split, "command": command, "seeds": seeds,
              "spaces": spaces, "models": rows}
    write_atomic(out / "compare.json", json.dumps(result, indent=2, default=str) + "\n")
    write_atomic(out / "compare.md", format_table(result))
    figures = []
    try:
        for sp in spaces:
            path = out / ("compare.png" if len(spaces) == 1 else f"compare-{_slug(sp['space'])}.png")
            plot_compare({**result, "models": sp["models"], "space_label": sp["label"],
                          "baselines": sp["baselines"]}, path)
            figures.append(str(path))
    except Exception as e:  # noqa: BLE001 - no matplotlib: the table and JSON stand
        from zoo.errors import ZooError

        if not isinstance(e, ZooError):
            raise
        result["figure_error"] = str(e)
    result["figures"] = figures
    return result


def _slug(key: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9]+", "-", key).strip("-")


class _NoBar:
    total = 0

    def update(self, n: int = 1) -> None:
        pass

    def set_description(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(total: int, progress: bool | None):
    """A tqdm bar on stderr: on when ``progress`` is True, or None and stderr is a terminal."""
    import sys

    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="compare", unit="step", file=sys.stderr, leave=False)


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


def _learned_cell(li: dict[str, Any]) -> str:
    """The I-MMSE curve of a denoiser (zoo.denoiser_information) in one line: a few points with SE and the -log p
    estimate it gives (an estimate, not a bound)."""
    n = len(li["log_snr"])
    picks = sorted({round(i * (n - 1) / 3) for i in range(4)})
    text = ("I(x; z_snr) by I-MMSE on the model's denoiser (nats; over-states the true information where the "
            "denoiser is not Bayes-optimal): " + ", ".join(f"log-snr {li['log_snr'][j]:.1f}: {li['information'][j]:.2f}"
                                                         f" +- {li['information_se'][j]:.2f}" for j in picks))
    if li.get("nll") is not None:
        text += f"; -log p(x) estimate (Kong et al. 2023) {li['nll']:.2f} +- {li['nll_se']:.2f} nats"
    return text


def _last_saturated(curve: dict[str, Any]) -> int | None:
    sat = [t for t, s in zip(curve["t"], curve["saturated"]) if s]
    return sat[-1] if sat else None


def _pm(r: dict[str, Any], key: str, spec: str = ".2f") -> str:
    if r.get(key) is None:
        return "n/a"
    se = r.get(f"{key}_se")
    return format(r[key], spec) + (f" +- {se:.2g}" if se is not None else "")


def _short_series(row: dict[str, Any]) -> list:
    """The declared series of a row that fit a table cell: every item evaluated, at most SHORT_SERIES of them."""
    from zoo.diagnostics import SHORT_SERIES

    return [s for s in c.declared_results(row) if isinstance(s, c.Series) and len(row[s.name]) <= SHORT_SERIES
            and all(v is not None for v in row[s.name])]


def format_table(result: dict[str, Any]) -> str:
    """The Markdown of a compare result: one table per data space, its baseline rows and its floor."""
    from zoo.diagnostics import format_result

    split, mi_split = result["split"], result["mi_split"]
    spaces = result.get("spaces") or [{"space": result["data"], "label": result["data"], "baselines": [],
                                       "floor": {}, "models": result["models"]}]
    lines = [f"# compare on {result['data']}", "",
             f"bits/dim, rate, active units and sample quality on [{split}]; I_q and I(x_0;x_t) on [{mi_split}]. "
             f"One table per data space: bits/dim and FID of different spaces are not comparable. "
             f"FID and precision / recall: mean +- SE over {result.get('seeds', 1)} sample seeds, against "
             f"[{split}] in the space's own pixels.", ""]
    for sp in spaces:
        models = sp["models"]
        log_n = next((r.get("mi_log_n") or (r.get("information_curve") or {}).get("log_n") for r in models
                      if r.get("mi_log_n") or r.get("information_curve")), None)
        features = sorted({r["quality_features"] for r in models if r.get("quality_features")})
        lines += [f"## {sp['label']}", "",
                  f"log N of the I_q bounds = {_f(log_n, '.2f')}.", "",
                  f"| model | family | -ELBO bits/dim (+- SE) [{split}] | NLL bits/dim | rate nats | I_q(x;z) "
                  f"[lower +- SE, upper] [{mi_split}] | active units | declared series | FID | "
                  "precision / recall |",
                  "|---|---|---:|---:|---:|---|---:|---|---:|---|"]
        for r in models:
            rate = f"{_f(r.get('rate'))}" + (" (upper bound)" if r.get("rate_kind") == "upper bound" else "")
            au = f"{r['active_units']} / {r['latent_dims']}" if r.get("active_units") is not None else "n/a"
            layers = "; ".join(f"{s.label}{f' ({s.note})' if s.note else ''}: " + ", ".join(f"{v:.2f}" for v in r[s.name])
                               for s in _short_series(r))
            lines.append(f"| {r['model']} | {r['family']} | {_f(r.get('bpd'), '.3f')} +- {_f(r.get('bpd_se'), '.3f')} | "
                         f"{_f(r.get('nll_bpd'), '.3f')} ({r.get('nll_kind')}) | {rate} | {_mi_cell(r)} | {au} | "
                         f"{layers} | {_pm(r, 'fid')} | {_pm(r, 'precision')} / {_pm(r, 'recall')} |")
        for b in sp.get("baselines") or []:
            lines.append(f"| baseline: {b['model']} | no latent | {_f(b['bpd'], '.3f')} +- {_f(b['bpd_se'], '.3f')} | "
                         f"{_f(b['bpd'], '.3f')} (exact) | | | | | | |")
        floor = sp.get("floor") or {}
        if floor.get("floor_fid") is not None:
            lines.append(f"| floor: {split} vs train images | real data | | | | | | | {_pm(floor, 'floor_fid')} | "
                         f"{_pm(floor, 'floor_precision')} / {_pm(floor, 'floor_recall')} |")
        lines.append("")
        for b in sp.get("baselines") or []:
            lines.append(f"- baseline {b['model']}: {b['description']}; exact NLL {b['nll']:.2f} +- {b['nll_se']:.2f} "
                         f"nats on [{b['split']}]" + (f" ({b['note']})" if b.get("note") else "") + ".")
        if floor.get("floor"):
            lines.append(f"- floor: {floor['floor']}.")
        for r in models:
            short = _short_series(r)
            for declared in c.declared_results(r):
                if declared not in short:
                    lines.append(f"- {r['model']}: {format_result(declared, r)}.")
        for r in models:
            if r.get("learned_information"):
                lines.append(f"- learned information of {r['model']}: {_learned_cell(r['learned_information'])}.")
        if features:
            lines.append("- features of FID and precision/recall: " + "; ".join(features) + ".")
        lines.append("- samples of FID: " + "; ".join(f"{r['model']}: {r.get('quality_sampler', 'ancestral')}"
                                                      for r in models) + ".")
        lines += ["- obtained: " + "; ".join(f"{r['model']}: {r['obtained']}" for r in models) + ".", ""]
    if result.get("command"):
        lines += [f"Made by `{result['command']}`."]
    return "\n".join(lines).rstrip("\n") + "\n"


def plot_compare(result: dict[str, Any], path: str | Path) -> Path:
    """Left: I(x_0; x_t) over t for each diffusion model (saturated part marked); middle: rate and I_q bracket;
    right: -ELBO bits/dim (+- 2 SE) beside the baselines of the space (one space per figure)."""
    from zoo.plots import _pyplot, _save

    plt = _pyplot()
    fig, (left, right, third) = plt.subplots(1, 3, figsize=(15, 3.8))
    named = [r for r in result["models"] if r.get("bpd") is not None]
    third.bar(range(len(named)), [r["bpd"] for r in named], yerr=[2 * (r.get("bpd_se") or 0) for r in named],
              color="tab:blue", capsize=3)
    for i, b in enumerate(result.get("baselines") or []):
        if math.isfinite(b["bpd"]):
            third.axhline(b["bpd"], ls=("--", ":", "-.", (0, (1, 3)))[i % 4], color="k", lw=0.9,
                          label=f"{b['model']} {b['bpd']:.2f}")
    third.set_xticks(list(range(len(named))))
    third.set_xticklabels([r["model"] for r in named], fontsize=7, rotation=15)
    third.set_ylabel("-ELBO bits/dim (+- 2 SE)")
    third.set_title("bits/dim beside the no-latent baselines", fontsize=9)
    if result.get("baselines"):
        third.legend(fontsize=6)
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
    fig.suptitle(f"compare on {result.get('space_label') or result['data']}", fontsize=10)
    return _save(fig, path)
