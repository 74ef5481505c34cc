"""The plugin registry: reads the ``zoo`` entry points once and collects every component.

Each plugin is isolated: one that fails to import, fails pluggy's validation, or raises in a
hook is recorded (by distribution and module) and skipped, and whatever it registered in that
hook is rolled back.  Two plugins registering one name make that name ambiguous: looking it up
raises an error naming both.  ``strict=True`` (or ``ZOO_STRICT_PLUGINS=1``) raises instead.
"""
from __future__ import annotations

import difflib
import inspect
import os
from dataclasses import dataclass, field
from importlib import import_module, metadata
from pathlib import Path
from typing import Any, Callable

import pluggy

from . import hookspecs
from .errors import PluginError

KINDS = ("encoder", "decoder", "prior")
HOOKS = {"encoder": "register_encoders", "decoder": "register_decoders",
         "prior": "register_priors", "card": "register_cards"}


@dataclass(frozen=True)
class Owner:
    """Who registered something: entry-point name, distribution and module."""

    plugin: str
    distribution: str
    module: str

    def __str__(self) -> str:
        return f"{self.distribution} ({self.module})"


@dataclass(frozen=True)
class LazyFactory:
    """A factory registered as ``"module:attribute"``, imported on first use, so listing the zoo
    (``zoo list``, ``zoo plugins``) imports no plugin's heavy dependencies."""

    target: str

    def resolve(self) -> Callable[..., Any]:
        module, _, attr = self.target.partition(":")
        try:
            obj: Any = import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as e:
            raise PluginError(f"cannot import the factory {self.target!r}: {e}") from e
        return obj

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(self.resolve())


@dataclass(frozen=True)
class Component:
    kind: str
    name: str
    factory: Callable[..., Any]
    owner: Owner


@dataclass(frozen=True)
class CardEntry:
    name: str
    path: Path
    owner: Owner


@dataclass(frozen=True)
class PluginFailure:
    owner: Owner
    stage: str  # "import", "validate" or a hook name
    error: str

    def __str__(self) -> str:
        return f"plugin {self.owner.plugin!r} from {self.owner} failed in {self.stage}: {self.error}"


@dataclass
class Registry:
    """Every encoder, decoder, prior and card the installed plugins provide."""

    strict: bool = False
    components: dict[str, dict[str, Component]] = field(default_factory=lambda: {k: {} for k in KINDS})
    cards: dict[str, CardEntry] = field(default_factory=dict)
    conflicts: dict[tuple[str, str], list[Owner]] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)
    plugins: list[Owner] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)

    # -- loading -------------------------------------------------------------------------------
    def load_entry_points(self, group: str = hookspecs.PROJECT) -> "Registry":
        """Import every plugin of the entry-point group once, recording failures by name."""
        for ep in sorted(metadata.entry_points(group=group), key=lambda e: (e.name != "builtin", e.name)):
            dist = ep.dist.name if ep.dist is not None else "(unknown distribution)"
            owner = Owner(ep.name, dist, ep.value)
            try:
                module = ep.load()
            except Exception as e:  # noqa: BLE001 - a broken plugin must not take the others down
                self._fail(owner, "import", e)
                continue
            self.add_plugin(module, owner=owner)
        return self

    def add_plugin(self, plugin: object, *, owner: Owner | None = None, name: str | None = None) -> Owner:
        """Register a plugin object (module or instance) in-process and run its hooks."""
        owner = owner or Owner(name or getattr(plugin, "__name__", repr(plugin)), "(in-process)",
                               getattr(plugin, "__name__", type(plugin).__name__))
        try:
            plugin_name = self._pm.register(plugin, name=f"{owner.plugin}:{owner.module}")
        except Exception as e:  # noqa: BLE001 - pluggy validation error, or registered twice
            self._fail(owner, "validate", e)
            return owner
        self.plugins.append(owner)
        for kind, hook in HOOKS.items():
            for impl in getattr(self._pm.hook, hook).get_hookimpls():
                if impl.plugin_name == plugin_name:
                    self._run_hook(owner, kind, hook, impl.function)
        return owner

    def _run_hook(self, owner: Owner, kind: str, hook: str, impl: Callable) -> None:
        staged: list[tuple[str, Any]] = []

        def register(name: str | os.PathLike, factory: Any = None) -> None:
            staged.append((name, factory))

        try:
            impl(register=register)
            entries = [self._entry(kind, n, f, owner) for n, f in staged]
        except Exception as e:  # noqa: BLE001
            self._fail(owner, hook, e)
            return
        for entry in entries:
            self._commit(kind, entry, owner)

    def _entry(self, kind: str, name: Any, factory: Any, owner: Owner) -> list:
        if kind == "card":
            path = Path(name)
            files = sorted(path.glob("*.md")) if path.is_dir() else [path]
            if not path.exists():
                raise PluginError(f"card path {path} does not exist")
            return [CardEntry(p.stem, p, owner) for p in files if p.name.lower() != "readme.md"]
        if not isinstance(name, str) or not name:
            raise PluginError(f"{kind} name must be a non-empty string, got {name!r}")
        if isinstance(factory, str):
            if ":" not in factory:
                raise PluginError(f"{kind} {name!r}: a factory given as a string must be 'module:attribute', "
                                  f"got {factory!r}")
            factory = LazyFactory(factory)
        if not callable(factory):
            raise PluginError(f"{kind} {name!r}: factory {factory!r} is not callable")
        return [Component(kind, name, factory, owner)]

    def _commit(self, kind: str, entries: list, owner: Owner) -> None:
        table = self.cards if kind == "card" else self.components[kind]
        for entry in entries:
            prior = table.get(entry.name)
            if prior is not None or (kind, entry.name) in self.conflicts:
                owners = self.conflicts.setdefault((kind, entry.name), [prior.owner] if prior else [])
                owners.append(owner)
                table.pop(entry.name, None)
                self._fail(owner, HOOKS[kind], PluginError(self._conflict_message(kind, entry.name)))
                continue
            table[entry.name] = entry

    def _fail(self, owner: Owner, stage: str, error: BaseException) -> None:
        failure = PluginFailure(owner, stage, f"{type(error).__name__}: {error}")
        self.failures.append(failure)
        if self.strict:
            raise PluginError(str(failure)) from error

    def _conflict_message(self, kind: str, name: str) -> str:
        owners = " and ".join(str(o) for o in self.conflicts[(kind, name)])
        return f"{kind} name {name!r} is registered by more than one plugin: {owners}"

    # -- lookup --------------------------------------------------------------------------------
    def get(self, kind: str, name: str) -> Component:
        """The component ``name`` of ``kind``; clear errors for unknown or ambiguous names."""
        if kind not in KINDS:
            raise PluginError(f"unknown component kind {kind!r}; expected one of {KINDS}")
        if (kind, name) in self.conflicts:
            raise PluginError(self._conflict_message(kind, name))
        table = self.components[kind]
        if name not in table:
            raise PluginError(f"unknown {kind} {name!r}{suggest(name, table)}"
                              f"{self._failure_hint()}")
        return table[name]

    def names(self, kind: str) -> list[str]:
        return sorted(self.components[kind]) if kind in KINDS else sorted(self.cards)

    def _failure_hint(self) -> str:
        if not self.failures:
            return ""
        return "; note: " + "; ".join(str(f) for f in self.failures)


def suggest(name: str, choices) -> str:
    """'; did you mean ...?' with close matches, or the full list when it is short."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    if close:
        return f"; did you mean {', '.join(repr(c) for c in close)}?"
    if choices and len(choices) <= 12:
        return f"; available: {', '.join(sorted(choices))}"
    return ""


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, built from the entry points on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        strict = os.environ.get("ZOO_STRICT_PLUGINS", "").lower() in ("1", "true", "yes")
        _REGISTRY = Registry(strict=strict).load_entry_points()
    return _REGISTRY


def reset_registry(registry: Registry | None = None) -> None:
    """Drop (or replace) the process-wide registry; the next use reads the entry points again."""
    global _REGISTRY
    _REGISTRY = registry
