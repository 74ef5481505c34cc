"""The hooks a latent-zoo plugin may implement; what each registers is specified in :mod:`zoo.contracts`.

A plugin is any module registered under the ``zoo`` entry-point group.  Each hook receives a
``register`` callback; call it once per thing the plugin provides, with a name and the object
(or a ``"module:attribute"`` string, imported on first use so listing the zoo stays fast)::

    from zoo import hookimpl

    @hookimpl
    def register_priors(register):
        register("laplace", LaplacePrior)   # factory(latent_shape=..., data_shape=..., **card_args)

Names are looked up as written in a card; ``DIST:NAME`` (the distribution that registered it)
always selects one, and a name a built-in already has stays with the built-in.
"""
from __future__ import annotations

from pluggy import HookimplMarker, HookspecMarker

PROJECT = "zoo"

hookspec = HookspecMarker(PROJECT)
hookimpl = HookimplMarker(PROJECT)


@hookspec
def register_encoders(register):
    """``register(name, factory)``; ``factory(data_shape=, latent_shape=, **args)`` -> a contracts.Encoder."""


@hookspec
def register_decoders(register):
    """``register(name, factory)``; ``factory(data_shape=, latent_shape=, **args)`` -> a contracts.Decoder."""


@hookspec
def register_priors(register):
    """``register(name, factory)``; ``factory(latent_shape=, data_shape=, **args)`` -> a contracts.Prior."""


@hookspec
def register_likelihoods(register):
    """``register(name, factory)``; ``factory(**args)`` -> a contracts.ParametricLikelihood (``likelihood: NAME``)."""


@hookspec
def register_converters(register):
    """``register(name, fn)``; ``fn(state) -> state`` maps an upstream checkpoint (card ``weights.converter``)."""


@hookspec
def register_fitters(register):
    """``register(name, fit)``; a contracts.Fitter run by ``zoo train --algorithm NAME`` (e.g. EM)."""


@hookspec
def register_prior_fitters(register):
    """``register(name, fit)``; a contracts.PriorFitter run by ``zoo fit-prior RUN --prior NAME`` on a run's latents."""


@hookspec
def register_samplers(register):
    """``register(name, sampler)``; a contracts.Sampler for priors that list it in ``samplers``."""


@hookspec
def register_data_sources(register):
    """``register(name, source)``; a contracts.DataSource, loaded as ``--data zoo:NAME``."""


@hookspec
def register_feature_networks(register):
    """``register(name, network)``; a zoo.quality.features.FeatureNetwork for FID-like numbers (``zoo evaluate``)."""


@hookspec
def register_commands(register):
    """``register(name, add_parser)``; ``add_parser(subparsers)`` adds ``zoo NAME`` (set ``func`` default)."""


@hookspec
def register_objectives(register):
    """``register(name, factory)``; ``factory(data_shape=, latent_shape=, **args)`` -> a contracts.Objective (``objective: {name: NAME}``)."""


@hookspec
def register_cards(register):
    """``register(path)`` for a card file or a folder of ``*.md`` cards."""
