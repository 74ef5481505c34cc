"""Registered samplers: other ways to draw from a prior than its own ``sample`` (e.g. DDIM).

A prior lists the samplers that fit it in ``samplers`` (:mod:`zoo.contracts`); each sampler is
registered by a plugin (``register_samplers``) with the options it takes.  ``model.sample(n,
sampler="ddim", steps=50)`` and ``zoo sample RUN --steps 50`` both come here.
"""
from __future__ import annotations

from typing import Any

from zoo import contracts as c
from zoo.errors import UsageError


def model_samplers(model) -> dict[str, Any]:
    """name -> sampler, for every registered sampler the model's prior declares."""
    from zoo.registry import get_registry

    registry = get_registry()
    found = {}
    for name in c.declared_samplers(model.prior):
        entry = registry.find("sampler", name)
        if entry is not None:
            found[name] = entry.resolve()
    return found


def sampler_for(model, options: dict[str, Any]) -> str | None:
    """The declared sampler that accepts every option given (None when no option is given)."""
    if not options:
        return None
    samplers = model_samplers(model)
    for name, sampler in samplers.items():
        if set(options) <= set(sampler.options):
            return name
    offered = {n: sorted(s.options) for n, s in samplers.items()}
    raise UsageError(f"model {model.name!r}: no sampler of its prior takes the option(s) "
                   f"{', '.join('--' + o.replace('_', '-') for o in sorted(options))}; "
                   + (f"its samplers and their options: {offered}" if offered else
                      f"its prior ({model.sources.get('prior', type(model.prior).__name__)}) declares no samplers"))


def run_sampler(model, name: str, n: int, *, generator=None, **options: Any):
    """``n`` images in [0, 1] from the sampler ``name``, which the model's prior must declare."""
    samplers = model_samplers(model)
    if name not in samplers:
        raise UsageError(f"model {model.name!r}: sampler {name!r} is not one its prior declares "
                       f"({', '.join(samplers) or 'none'})")
    sampler = samplers[name]
    unknown = sorted(set(options) - set(sampler.options))
    if unknown:
        raise UsageError(f"sampler {name!r} takes no option {unknown[0]!r}; its options: {', '.join(sampler.options)}")
    values = {k: o.default for k, o in sampler.options.items()}
    values.update(options)
    return sampler(model, n, generator=generator, **values)
