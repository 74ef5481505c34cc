"""The results section of a card body: measured numbers, how each was measured, and the commands
that reproduce them (between markers, so re-rendering replaces it)."""
from __future__ import annotations

from typing import Any

from zoo.cards.hub_schema import ELBO_ESTIMATOR, METRICS, dataset_revision
from zoo.cards.spec import CardLike as Card  # a card is read through its typed spec; this module never builds one

RESULTS_START = "<!-- latent-zoo:results:start -->"
RESULTS_END = "<!-- latent-zoo:results:end -->"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:.4g}"
    return str(value)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def nll_label(r: Any) -> str:
    """What the NLL row of a card holds: exact, a bound from the ELBO, or IWAE with k samples (``r``: a results
    mapping, or the typed ``card.spec.results``)."""
    kind = r.get("nll_kind")
    if kind == "exact":
        return "NLL (exact)"
    if kind == "negative ELBO":
        return "NLL <= -ELBO (bound)"
    return f"NLL (IWAE, k={r.get('iwae_k')})"


def results_section(card: Card, *, repo_id: str | None = None) -> str:
    """Markdown: the measured numbers, how each was measured and the commands that reproduce them."""
    r = card.spec.results
    if r is None or not any(isinstance(r.get(k), (int, float)) for k in METRICS):
        return ""
    data, split = r.dataset or card.spec.data.source, r.split or "test"

    def se(key: str) -> str:
        value = r.get(key + "_se")
        return f" (± {_fmt(value)} standard error over the N points)" if isinstance(value, float) else ""

    rows = [("ELBO", r.elbo, r.elbo_bpd, ELBO_ESTIMATOR + "; bits/dim of the negative ELBO" + se("elbo"))]
    if r.nll is not None:
        rows.append((nll_label(r), r.nll, r.nll_bpd, (r.nll_estimator or "") + se("nll")))
    rate_label = "rate KL(q(z|x) ‖ p(z))" if r.rate_kind != "upper bound" else "rate (an upper bound on the KL)"
    mi_how = (r.mi_estimator or "") + se("mutual_information")
    if r.mutual_information_upper is not None:
        mi_how += f"; bracket up to {_fmt(r.mutual_information_upper)} (leave-one-out upper bound)"
    where = f" [split {r.mi_split}, N={r.mi_n}]" if r.mi_split not in (None, split) else ""
    lower = r.mutual_information_kind == "lower bound"
    kl_upper = r.marginal_kl_kind == "upper bound"
    tc_upper = r.total_correlation_kind == "upper bound"
    rows += [("distortion -E_q log p(x|z)", r.distortion, None, "same z as the ELBO"),
             (rate_label, r.rate, None, "same z as the ELBO" + (
                 f"; {r.rate_estimator}" if r.rate_estimator else "") + se("rate")),
             (("mutual information I_q(x;z) ≥ (a lower bound)" if lower else "mutual information I_q(x;z)") + where,
              r.mutual_information, None, mi_how),
             (("marginal KL(q(z) ‖ p(z)) ≤ (an upper bound)" if kl_upper else "marginal KL(q(z) ‖ p(z))") + where,
              r.marginal_kl, None, (r.marginal_kl_estimator or "rate - I_q(x;z)")
              + (f" on that split's rate {_fmt(r.mi_rate)}" if where and r.mi_rate is not None else "")
              + se("marginal_kl")),
             (("total correlation ≤ (an upper bound)" if tc_upper else "total correlation") + where,
              r.total_correlation, None, (r.tc_estimator or "") + se("total_correlation")),
             ("dimension-wise KL" + where, r.dimension_wise_kl, None,
              "the third term of the same split (see total correlation)" + se("dimension_wise_kl"))]
    lines = [RESULTS_START, "## Results", ""]
    where = f"`{data}`, split `{split}`"
    if r.n:
        where += f", N={r.n} points"
    rev = dataset_revision(card)
    where += f", data revision `{rev}`" if rev else (", built-in data set (fixed seeded split)"
                                                      if str(data).startswith("zoo:") else "")
    run = ", ".join(f"{label} {_fmt(r.get(k))}" for k, label in
                    (("steps", "steps"), ("seed", "seed"), ("beta", "beta"), ("train_seconds", "training seconds"),
                     ("zoo_version", "latent-zoo")) if r.get(k) is not None)
    lines += [f"Measured on {where}." + (f" Run: {run}." if run else ""), "",
              "| quantity | nats | bits/dim | how it was measured |", "|---|---:|---:|---|"]
    for label, nats, bpd, how in rows:
        if nats is not None:
            lines.append(f"| {_cell(label)} | {_fmt(nats)} | {_fmt(bpd) if bpd is not None else ''} | "
                         f"{_cell(how)} |")
    if r.active_units is not None:
        lines.append(f"| active units | {r.active_units}"
                     f"{' of ' + str(r.latent_dims) if r.latent_dims else ''} |  | "
                     f"units with Cov_x E_q[z_d] > 0.01 (Burda et al. 2015) |")
    if r.mig is not None:
        per = ", ".join(f"{k} {_fmt(v)}" for k, v in (r.mig_per_factor or {}).items())
        lines.append(f"| MIG (known factors) | {_fmt(r.mig)} |  | mutual information gap of the posterior means "
                     f"(Chen et al. 2018; histogram estimator, 20 bins){': ' + per if per else ''} |")
    if r.command:
        lines += ["", "Every number above was measured at the end of the training run this command makes; "
                  "it reproduces them:", "", f"    {r.command}", ""]
    else:
        lines += ["", "No command was recorded with these numbers; train and measure the model with:", "",
                  f"    zoo train {card.name} --data {data} --out RUN_DIR", ""]
    target = f"hf://{repo_id}" if repo_id else "RUN_DIR"
    k = f" --k {r.iwae_k}" if r.iwae_k else ""
    lines += ["Re-measure the published weights (same estimators and seed) with:", "",
              f"    zoo diagnose {target} --data {data} --split {split}{k}", "", RESULTS_END]
    return "\n".join(lines)


def with_results_section(body: str, card: Card, *, repo_id: str | None = None) -> str:
    """``body`` with its results section (between the latent-zoo markers) replaced by a fresh one."""
    if RESULTS_START in body and RESULTS_END in body:
        head, rest = body.split(RESULTS_START, 1)
        tail = rest.split(RESULTS_END, 1)[1]
        body = head.rstrip("\n") + ("\n" if head.strip() else "") + tail.lstrip("\n")
    section = results_section(card, repo_id=repo_id)
    if not section:
        return body
    return f"{body.rstrip()}\n\n{section}\n" if body.strip() else f"\n{section}\n"
