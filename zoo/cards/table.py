"""The model catalogue as a Markdown table, generated from the installed cards (README's model table).

One row per model: name, family, parameters, data, the headline result with its estimator, where the
weights come from, and the licence.  Every number is read from a card: the parameter count from the
architecture the card builds (on the meta device: nothing is allocated), the results from ``zoo.results``
(measured from the weights the card names), so the table cannot drift from the cards.
"""
from __future__ import annotations

from typing import Any

from zoo.cards.schema import Card
from zoo.cards.spec import ResultsSpec

TABLE_START = "<!-- latent-zoo:models:start -->"
TABLE_END = "<!-- latent-zoo:models:end -->"
HEADER = ("| model | family | parameters | data | headline result (estimator) | weights | licence |\n"
          "|---|---|---:|---|---|---|---|")


def parameter_count(card: Card) -> int:
    """The number of parameters of the architecture the card builds (built on the meta device)."""
    from zoo.assemble import build_model

    model = build_model(card, empty=True)
    return sum(p.numel() for p in model.parameters())


def _millions(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def headline(results: Any) -> str:
    """The card's headline numbers with how each was estimated; 'not measured' without results (``results``: the
    typed ``card.spec.results``, or a results mapping)."""
    from zoo.cards.render import nll_label

    if not isinstance(results.get("elbo"), (int, float)) or results.get("measured") is False:
        return "not measured here"
    se = f" ± {results.get('elbo_se'):.2f}" if isinstance(results.get("elbo_se"), (int, float)) else ""
    text = f"ELBO {results.get('elbo'):.2f}{se} nats"
    if isinstance(results.get("nll"), (int, float)) and results.get("nll_kind") != "negative ELBO":
        text += f"; {nll_label(results)} {results.get('nll'):.2f}"
    bpd = results.get("nll_bpd", results.get("elbo_bpd"))
    if isinstance(bpd, (int, float)):
        text += f" ({bpd:.3f} bits/dim)"
    split = results.get("split", "test")
    return f"{text}; {split} split, N={results.get('n')}"


def weights_cell(card: Card) -> str:
    from zoo.cards.weights_spec import weights_source

    spec = card.spec.weights
    source = weights_source(card)
    if source is None:
        return f"none (`zoo train {card.name}`)"
    if source == "packaged":
        return f"packaged with latent-zoo (sha256 `{spec.sha256[:12]}`)"
    revision = f"@{str(spec.revision)[:7]}" if spec.revision else ""
    converted = f", converted ({spec.converter})" if spec.converter else ""
    return f"Hub `{spec.repo}{revision}`{converted}"


def licence_cell(card: Card) -> str:
    licence = card.metadata.get("license") or "not stated"
    upstream = card.metadata.get("base_model")
    weights = card.spec.weights
    return f"{licence} (upstream: `{upstream}`)" if upstream and weights is not None and weights.converter \
        else str(licence)


def row(card: Card) -> str:
    from zoo.cards.hub_schema import model_family

    data = card.spec.data
    shape = "x".join(str(v) for v in data.shape)
    cells = (f"`{card.name}`", model_family(card), _millions(parameter_count(card)), f"`{data.source}` {shape}",
             headline(_results(card)), weights_cell(card), licence_cell(card))
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def model_table(names: list[str] | None = None) -> str:
    """The Markdown table of the installed models (all of them, or ``names``), sorted by name."""
    from zoo.cards.catalog import get_card, model_names

    return "\n".join([HEADER] + [row(get_card(n)) for n in (names or model_names())])


RESULTS_START = "<!-- latent-zoo:results:start -->"
RESULTS_END = "<!-- latent-zoo:results:end -->"
RESULTS_HEADER = ("| model | data | ELBO ± SE | NLL (estimator) | I_q [lower, upper] | active units | TC "
                  "| training (s, 1 thread) |\n|---|---|---:|---|---|---:|---:|---:|")


def _num(value: Any, spec: str = ".2f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) and not isinstance(value, bool) else "n/a"


def _results(card: Card) -> ResultsSpec:
    """The card's measured results, typed (none measured: every field None)."""
    return card.spec.results if card.spec.results is not None else ResultsSpec()


def results_row(card: Card) -> str:
    """One card's measured results (``zoo.results``): the numbers diagnose gave on the card's split."""
    from zoo.cards.render import nll_label

    r = _results(card)
    label = nll_label(r).removeprefix("NLL ")
    label = label[1:-1] if label.startswith("(") and label.endswith(")") else label
    nll = f"{_num(r.get('nll'))} ({label})" if isinstance(r.get("nll"), (int, float)) else "n/a"
    mi = (f"[{_num(r.get('mutual_information'), '.3f')}, {_num(r.get('mutual_information_upper'), '.3f')}]"
          + (" saturated" if r.get("mi_saturated") else "")
          + (f" ({r.get('mi_split')})" if r.get("mi_split") not in (None, r.get("split", "test")) else "")
          ) if r.get("mutual_information") is not None else "n/a"
    units = f"{r.get('active_units')}/{r.get('latent_dims', '?')}" if r.get("active_units") is not None else "n/a"
    cells = (f"`{card.name}`", f"`{card.spec.data.source}`", f"{_num(r.get('elbo'))} ± {_num(r.get('elbo_se'))}",
             nll, mi, units, ("≤ " if r.get("total_correlation_kind") == "upper bound" else "")
             + _num(r.get("total_correlation"), ".3f"), _num(r.get("train_seconds"), ".0f"))
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def card_space(card: Card):
    """The data space (zoo.data_space) the card's likelihood scores, from the architecture built on the meta device."""
    from zoo.assemble import build_model
    from zoo.data_space import DataSpace, likelihood_kind

    model = build_model(card, empty=True)
    return DataSpace(card.spec.data.source, tuple(card.spec.data.shape),
                     likelihood_kind(model.decoder.likelihood))


def baseline_row(row: dict[str, Any]) -> str:
    """A no-latent baseline (zoo.baselines) as a results row: its exact NLL, no latent terms."""
    cells = (f"*baseline: {row['model']}*", row["description"], "—",
             f"{_num(row['nll'])} ± {_num(row['nll_se'])} (exact, {row['bpd']:.3f} bits/dim)", "no latent", "", "", "")
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def results_table(sources: tuple[str, ...] = ("zoo:mnist-5k", "zoo:digits", "zoo:shapes")) -> str:
    """The measured results of every card trained on ``sources`` (the cards that ship weights): one table per data
    space (zoo.data_space: data, shape and discretisation; numbers of two spaces are never in one table), each with
    the space's no-latent baselines (zoo.baselines, fitted on the train split, scored on the test split) first, then
    its cards by name."""
    from zoo.baselines import baselines
    from zoo.cards.catalog import get_card, model_names

    cards = [get_card(n) for n in model_names()]
    spaces: dict[Any, list[Card]] = {}
    for card in sorted((c for c in cards if c.spec.data.source in sources),
                       key=lambda c: (sources.index(c.spec.data.source), c.name)):
        spaces.setdefault(card_space(card), []).append(card)
    order = sorted(spaces, key=lambda sp: (sources.index(sp.data), sp.kind))
    parts = []
    for space in order:
        rows = [baseline_row(b) for b in baselines(space.data, space.kind)] if space.kind != "continuous" else []
        parts.append("\n".join([f"**{space.label}**", "", RESULTS_HEADER, *rows,
                                 *(results_row(c) for c in spaces[space])]))
    return "\n\n".join(parts)


def with_table(text: str, start: str, end: str, table: str) -> str:
    """``text`` with what lies between the markers ``start`` and ``end`` replaced by ``table``."""
    if start not in text or end not in text:
        raise ValueError(f"no table markers ({start} ... {end}) in the text")
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    return f"{head}{start}\n{table}\n{end}{tail}"


def with_model_table(text: str, table: str | None = None) -> str:
    """``text`` (README.md) with the model table and the results table between their markers regenerated."""
    text = with_table(text, TABLE_START, TABLE_END, table if table is not None else model_table())
    return with_table(text, RESULTS_START, RESULTS_END, results_table()) if RESULTS_START in text else text
