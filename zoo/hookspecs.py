"""The hooks a latent-zoo plugin may implement.

A plugin is any module registered under the ``zoo`` entry-point group.  Each hook receives a
``register`` callback; call it once per thing the plugin provides::

    from zoo import hookimpl

    @hookimpl
    def register_priors(register):
        register("laplace", LaplacePrior)   # a factory: factory(latent_shape=..., **card_args)
"""
from __future__ import annotations

from pluggy import HookimplMarker, HookspecMarker

PROJECT = "zoo"

hookspec = HookspecMarker(PROJECT)
hookimpl = HookimplMarker(PROJECT)


@hookspec
def register_encoders(register):
    """Register encoder factories: ``register(name, factory)``; factory(...) -> q(z|x) module."""


@hookspec
def register_decoders(register):
    """Register decoder factories: ``register(name, factory)``; factory(...) -> p(x|z) module."""


@hookspec
def register_priors(register):
    """Register prior factories: ``register(name, factory)``; factory(...) -> p(z) module."""


@hookspec
def register_cards(register):
    """Register model cards: ``register(path)`` for a card file or a folder of ``*.md`` cards."""
