"""card -> components -> LatentModel, checked at the boundary.

Each component comes from the plugin registry by name and is checked against its protocol in
:mod:`zoo.contracts` as soon as it is built; then the combination is checked (an enumerating
posterior needs a prior with a discrete support, a surrogate loss needs a prior that defines
it, ...).  Every refusal is a CardError naming the card, the field, the component, the
distribution that registered it and what is missing, before any data is read.
"""
from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from zoo import contracts as c
from zoo.cards import COMPONENTS, Card
from zoo.cards.spec import thaw
from zoo.errors import CardError, ContractError, PluginError, ShapeError, UntrustedCodeError
from zoo.model import LatentModel
from zoo.registry import Component, LazyFactory, get_registry
from zoo.sampling import run_sampler
from zoo.sizeguard import AllocationGuard, TooBig, declared_bytes, memory_bytes

_PROTOCOL = {"encoder": c.Encoder, "decoder": c.Decoder, "prior": c.Prior}


def build_model(card: Card, *, empty: bool = False, trust_modules: bool = False,
                modules: dict[str, nn.Module] | None = None) -> LatentModel:
    """Assemble the model a card describes, with freshly initialised weights: the one path from a card to a
    LatentModel (zoo.load, zoo.build, the run folder and Hub loader, zoo.testing's kit and training all come here).

    ``empty=True``: parameters on the meta device (no memory, no random initialisation; buffers stay
    real), for a model whose every weight a strict load fills next (``load_state_dict(assign=True)``),
    e.g. a 114M-parameter UNet; only accelerate's ``init_empty_weights`` context is used.

    ``modules``: components given as built ``nn.Module`` objects (kind -> module), used as they are for the card's
    ``module:`` specs (zoo.build's bring-your-own modules, the conformance kit's component under test); whoever
    gives one has checked it against its protocol.  A card's ``module: "pkg.mod:ClassName"`` spec with no module
    given is imported and constructed only with ``trust_modules=True``: importing runs that module's code."""
    if empty:
        from accelerate import init_empty_weights

        with init_empty_weights(include_buffers=False):
            return build_model(card, trust_modules=trust_modules, modules=modules)
    registry = get_registry()
    given = dict(modules or {})
    parts: dict[str, Any] = {}
    sources: dict[str, str] = {}
    plugins: dict[str, dict[str, Any]] = {}
    for kind in COMPONENTS:
        name, args = card.component(kind)
        if card.module_path(kind) is not None:
            sources[kind] = f"module {name!r}"
            plugins[kind] = {"module": name}
            if kind in given:
                parts[kind] = given.pop(kind)
                continue
            parts[kind] = module_from_card(card, kind, trust=trust_modules)
            _check_component(card, kind, parts[kind], sources[kind])
            continue
        try:
            entry = registry.get(kind, name)
        except PluginError as e:
            raise CardError(f"{where(card)}: field 'zoo.{kind}.name': {e}{_install_hint(card, kind)}") from None
        sources[kind] = f"{name!r} from {entry.owner}"
        parts[kind] = _call(entry, card, kind, name, args, sources[kind])
        _check_component(card, kind, parts[kind], sources[kind])
        plugins[kind] = {"name": name, "distribution": entry.owner.distribution,
                         "version": entry.owner.version, "module": entry.owner.module}
    if given:
        raise CardError(f"{where(card)}: a module was given for {', '.join(sorted(given))}, but the card's "
                        f"field 'zoo.{next(iter(sorted(given)))}' names no module (module: 'pkg.mod:ClassName')")
    _check_combination(card, parts, sources)
    objective = _build_objective(card, registry, sources, plugins)
    spec = card.spec
    sampler = None if spec.sampler is None else (spec.sampler.name, thaw(spec.sampler.options))
    try:
        model = LatentModel(parts["encoder"], parts["decoder"], parts["prior"],
                            data_shape=card.data_shape, latent_shape=card.latent_shape,
                            name=card.name, beta=card.beta, config=card.zoo, sources=sources,
                            objective=objective, objective_settings=spec.objective, default_sampler=sampler)
    except (ContractError, ShapeError) as e:
        raise CardError(f"{where(card)}: fields 'zoo.encoder', 'zoo.decoder', 'zoo.prior': {e}") from None
    model.plugins = plugins  # the provenance record: which distribution (and version) made each component
    model.card = card
    model.run_sampler = run_sampler  # registered samplers (model.sample(sampler=NAME)), looked up when used
    return model


def module_from_card(card: Card, kind: str, *, trust: bool) -> nn.Module:
    """Import and construct the bring-your-own component the card names (only with ``trust``), through the
    registry's resolution of ``"module:attribute"`` targets."""
    path, args = card.component(kind)
    field = f"field 'zoo.{kind}.module'"
    if not trust:
        raise UntrustedCodeError(f"{where(card)}: {field}: the card names Python code to import, {path!r}; importing "
                                 f"it runs that code, so it is only done on request: pass trust_modules=True "
                                 f"(zoo.load / LatentModel.from_pretrained; --trust-modules of zoo sample, diagnose, evaluate and "
                                 f"fit-prior) if you trust this card")
    try:
        cls = LazyFactory(path).resolve()
    except PluginError as e:  # any import failure, naming the path
        raise CardError(f"{where(card)}: {field}: {e}; install the package that defines it or put it on "
                        f"sys.path") from None
    try:
        return cls(**args)
    except Exception as e:  # noqa: BLE001
        raise CardError(f"{where(card)}: {field}: {path!r} could not be constructed with {args or 'no arguments'}: "
                        f"{type(e).__name__}: {e}") from e


def _build_objective(card: Card, registry, sources: dict[str, str], plugins: dict[str, dict[str, Any]]):
    """The registered objective ``zoo.objective.name`` names (None for the built-in ``elbo``)."""
    spec = card.spec.objective
    if not spec.registered:
        return None
    name, args = spec.name, spec.arguments()
    try:
        entry = registry.get("objective", name)
    except PluginError as e:
        raise CardError(f"{where(card)}: field 'zoo.objective.name': {e}") from None
    sources["objective"] = f"{name!r} from {entry.owner}"
    objective = _call(entry, card, "objective", name, args, sources["objective"])
    if not c.has(objective, c.Objective):
        raise CardError(f"{where(card)}: field 'zoo.objective': objective {sources['objective']} returned a "
                        f"{type(objective).__name__}, not a callable (zoo.contracts.Objective)")
    plugins["objective"] = {"name": name, "distribution": entry.owner.distribution,
                            "version": entry.owner.version, "module": entry.owner.module}
    return objective


def _call(entry: Component, card: Card, kind: str, name: str, args: dict[str, Any], who: str):
    factory = entry.factory
    try:
        signature = inspect.signature(factory)
    except PluginError as e:  # a "module:attribute" registration that does not import
        raise CardError(f"{where(card)}: field 'zoo.{kind}.name': {kind} {who}: {e}") from None
    except (TypeError, ValueError):  # no signature (a C builtin): let the call itself report
        signature = None
    if signature is not None:
        try:
            signature.bind(data_shape=card.data_shape, latent_shape=card.latent_shape, **args)
        except TypeError as e:
            raise CardError(f"{where(card)}: field 'zoo.{kind}': {kind} {who} does not accept these "
                            f"arguments: {e}") from None
    _refuse_absurd_sizes(factory, card, kind, args, who)
    guard = AllocationGuard(memory_bytes())
    try:
        with guard:
            return factory(data_shape=card.data_shape, latent_shape=card.latent_shape, **args)
    except TooBig as e:
        raise CardError(_too_big(card, kind, args, who, e.counted, e.limit, "or more (counted before allocating)")) from None
    except CardError as e:
        raise CardError(f"{where(card)}: field 'zoo.{kind}': {kind} {who}: {e}") from None
    except Exception as e:  # noqa: BLE001 - any failure of a plugin's factory is reported, named
        if guard.limit and guard.counted > guard.limit:  # a factory that swallowed TooBig and failed otherwise
            raise CardError(_too_big(card, kind, args, who, guard.counted, guard.limit, "or more")) from None
        raise CardError(f"{where(card)}: field 'zoo.{kind}': {kind} {who} could not be built with "
                        f"{args or 'no arguments'}: {type(e).__name__}: {e}") from e


def _refuse_absurd_sizes(factory, card: Card, kind: str, args: dict[str, Any], who: str) -> None:
    """Refuse, before building, a component whose declared parameter count (``parameter_count`` on its class,
    :class:`zoo.contracts.DeclaredSize`) would not fit in this machine's memory.  Components that declare
    none are checked while they build, by :class:`zoo.sizeguard.AllocationGuard` (see ``_call``)."""
    size = declared_bytes(factory, card.data_shape, card.latent_shape, args)
    limit = memory_bytes()
    if size is not None and limit and size > limit:
        raise CardError(_too_big(card, kind, args, who, size, limit, "(declared by the component)"))


def _too_big(card: Card, kind: str, args: dict[str, Any], who: str, size: int, limit: int, how: str) -> str:
    return (f"{where(card)}: field 'zoo.{kind}': {kind} {who} with {args} would hold {size / 2 ** 30:.1f} GiB of "
            f"parameters {how}, more than this machine's {limit / 2 ** 30:.1f} GiB of memory; check the sizes "
            f"in the card")


def contract_problem(kind: str, obj: Any) -> str | None:
    """What keeps ``obj`` from being a ``kind`` component under zoo.contracts (None when nothing does): not an
    nn.Module, a required member missing, or (a decoder) a likelihood lacking one."""
    protocol = _PROTOCOL[kind].__name__
    if not isinstance(obj, nn.Module):
        return f"is not a torch.nn.Module but a {type(obj).__name__} (zoo.contracts.{protocol})"
    lacking = c.missing_members(obj, _PROTOCOL[kind])
    if lacking:
        return f"lacks the required member(s) {_names(lacking)} of zoo.contracts.{protocol}"
    if kind == "decoder":
        lacking = c.missing_members(obj.likelihood, c.Likelihood)
        if lacking:
            return (f"has a likelihood {type(obj.likelihood).__name__} that lacks the required member(s) "
                    f"{_names(lacking)} of zoo.contracts.Likelihood (name, discrete, prepare, to_unit)")
    return None


def _check_component(card: Card, kind: str, obj: Any, who: str) -> None:
    problem = contract_problem(kind, obj)
    if problem:
        raise CardError(f"{where(card)}: field 'zoo.{kind}': the {kind} {who} {problem}")


def _check_combination(card: Card, parts: dict[str, Any], who: dict[str, str]) -> None:
    """What needs the built components: the card's fields were checked once, when it was read (zoo.cards.spec),
    so only their combination with what the components declare is checked here."""
    prior = parts["prior"]
    posterior = c.posterior_type(parts["encoder"])
    if (posterior is not None and issubclass(posterior, c.EnumerablePosterior)
            and not c.has(prior, c.StructuredInference) and not c.has(prior, c.DiscreteSupport)):
        raise CardError(f"{where(card)}: fields 'zoo.encoder' and 'zoo.prior': the encoder {who['encoder']} gives "
                        f"a discrete posterior the ELBO sums over exactly ({posterior.__name__}), so the prior "
                        f"must be discrete too, but the prior {who['prior']} has no support() "
                        f"(zoo.contracts.DiscreteSupport)")
    objective = card.spec.objective
    loss = objective.loss
    if loss != "elbo" and not c.has(prior, c.SurrogateLoss):
        raise CardError(f"{where(card)}: field 'zoo.objective.loss': {loss!r} needs a prior with "
                        f"training_loss(q, loss) (zoo.contracts.SurrogateLoss); the prior {who['prior']} has none "
                        f"(use 'elbo')")
    if objective.iwae_k > 1 and not c.is_exact(prior):
        raise CardError(f"{where(card)}: field 'zoo.objective.iwae_k': the importance-weighted bound needs an exact "
                        f"log p(z), but the prior {who['prior']} declares exact = False (its log_prob is a bound)")
    sampler = None if card.spec.sampler is None else card.spec.sampler.name
    if sampler is not None:
        if sampler not in c.declared_samplers(prior):
            raise CardError(f"{where(card)}: field 'zoo.sampler.name': the prior {who['prior']} declares the samplers "
                            f"{list(c.declared_samplers(prior)) or 'none'}, not {sampler!r}")
        try:
            get_registry().get("sampler", sampler)
        except PluginError as e:
            raise CardError(f"{where(card)}: field 'zoo.sampler.name': {e}") from None


def _install_hint(card: Card, kind: str) -> str:
    """For a saved model: which distribution provided the missing component when it was trained."""
    made = card.provenance.get(kind) if isinstance(card.provenance, dict) else None
    if not isinstance(made, dict) or not made.get("distribution") or made["distribution"] == "latent-zoo":
        return ""
    version = f"=={made['version']}" if made.get("version") else ""
    return (f". This model was trained with the {kind} {made.get('name')!r} from the distribution "
            f"{made['distribution']}{version}: pip install {made['distribution']}{version}")


def _names(members: list[str]) -> str:
    return ", ".join(repr(m) for m in members)


def where(card: Card) -> str:
    return str(card.path) if card.path else f"card {card.name!r}"
