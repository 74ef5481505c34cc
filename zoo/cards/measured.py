"""A card's measured results (``zoo.results``): which numbers they hold, and measuring them again from a
model's weights exactly as ``zoo train`` does at the end of a run (same data split, IWAE k, seed)."""
from __future__ import annotations

from typing import Any

# the diagnose() numbers a card keeps (the rest of a report stays in the run folder's results)
RESULT_KEYS = ("elbo", "elbo_se", "distortion", "rate", "rate_kind", "mutual_information", "mutual_information_se",
               "mutual_information_upper", "mi_saturated", "marginal_kl", "active_units", "latent_dims", "nll",
               "nll_se", "nll_kind", "iwae_k", "elbo_bpd", "nll_bpd", "mi_estimator", "nll_estimator", "n",
               "index_code_mi", "total_correlation", "total_correlation_se", "dimension_wise_kl",
               "mig", "mig_per_factor", "rate_se", "rate_estimator", "mutual_information_kind", "mi_saturation",
               "marginal_kl_se", "marginal_kl_lower", "marginal_kl_kind", "marginal_kl_estimator", "index_code_mi_se",
               "total_correlation_kind", "dimension_wise_kl_se", "tc_estimator", "mi_split", "mi_n", "mi_rate",
               "mi_first")
DEFAULT_EVAL_IWAE_K = 100      # TrainConfig.eval_iwae_k (zoo.cards.spec.TrainSpec)
DEFAULT_EVAL_BATCH_SIZE = 500  # TrainConfig.eval_batch_size


def rounded(value: Any) -> Any:
    """A number as a card stores it (4 decimals)."""
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return round(value, 4) if isinstance(value, float) else value


def card_results(report: dict[str, Any]) -> dict[str, Any]:
    """The card's share of a diagnose() report, rounded, with the seed of its random draws (``eval_seed``)."""
    results = {k: rounded(report.get(k)) for k in RESULT_KEYS if report.get(k) is not None}
    if report.get("seed") is not None:
        results["eval_seed"] = report["seed"]
    return results


def measure_results(model, card=None, *, data: str | None = None) -> dict[str, Any]:
    """The card's results measured from ``model``'s weights: ``zoo.diagnose`` on the split the card's results
    name (else the card's test split) with the card's ``eval_iwae_k`` and ``eval_batch_size`` and the seed
    the results record (else the model's own), as ``zoo train`` measures them at the end of its run."""
    from zoo.diagnostics import diagnose

    card = card if card is not None else model.card
    zoo = card.spec
    results, train = zoo.results, zoo.train
    spec = data or (results and results.dataset) or zoo.data.source
    split = (results and results.split) or zoo.data.test_split
    report = diagnose(model, spec, split=split, iwae_k=train.eval_iwae_k, batch_size=train.eval_batch_size,
                      seed=results.eval_seed if results is not None else None)
    return card_results(report)
