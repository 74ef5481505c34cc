"""The plugin registry: reads the ``zoo`` entry points once and collects everything they register.

Kinds (one hook each, :mod:`zoo.hookspecs`; contracts in :mod:`zoo.contracts`): encoder,
decoder, prior, likelihood, converter, fitter, prior-fitter, sampler, data (sources), command, and cards.

Each plugin is isolated: one that fails to import, fails pluggy's validation, or raises anything
(``SystemExit`` included; only ``KeyboardInterrupt`` passes) at import or in a hook is recorded by
distribution and module and skipped, and whatever it registered in that hook is rolled back.

Names: a name registered by latent-zoo itself (a *built-in*) stays with the built-in; another
plugin registering it is refused and recorded.  Two third-party plugins registering one name make
it ambiguous: looking it up raises an error naming both.  ``DIST:NAME`` (distribution and name)
always selects one.  ``strict=True`` (or ``ZOO_STRICT_PLUGINS=1``) raises instead of recording.
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

from zoo import hookspecs
from zoo.errors import PluginError

BUILTIN_DISTRIBUTION = "latent-zoo"
KINDS = ("encoder", "decoder", "prior", "likelihood", "converter", "fitter", "prior-fitter", "sampler", "data",
         "command", "objective", "features")
COMPONENT_KINDS = ("encoder", "decoder", "prior")
HOOKS = {"encoder": "register_encoders", "decoder": "register_decoders", "prior": "register_priors",
         "likelihood": "register_likelihoods", "converter": "register_converters",
         "fitter": "register_fitters", "prior-fitter": "register_prior_fitters", "sampler": "register_samplers",
         "data": "register_data_sources", "command": "register_commands", "objective": "register_objectives",
         "card": "register_cards", "features": "register_feature_networks"}


@dataclass(frozen=True)
class Owner:
    """Who registered something: entry-point name, distribution (and its version) and module."""

    plugin: str
    distribution: str
    module: str
    version: str | None = None

    @property
    def builtin(self) -> bool:
        return self.distribution == BUILTIN_DISTRIBUTION

    def __str__(self) -> str:
        return f"{self.distribution} ({self.module})"


# optional packages of the built-in plugin -> the latent-zoo extra that installs them
_EXTRAS = {"timm": "timm", "torchvision": "timm", "mlxtend": "embedded", "sklearn": "embedded",
           "matplotlib": "plots", "tensorboard": "train"}


@dataclass(frozen=True)
class LazyFactory:
    """An object registered as ``"module:attribute"``, imported on first use, so listing the zoo
    (``zoo list``, ``zoo plugins``) imports no plugin's heavy dependencies."""

    target: str

    def resolve(self) -> Any:
        module, _, attr = self.target.partition(":")
        try:
            obj: Any = import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except Exception as e:  # noqa: BLE001 - an import that fails in any way names the target
            hint = ""
            if isinstance(e, ModuleNotFoundError) and e.name in _EXTRAS:
                hint = f" (pip install 'latent-zoo[{_EXTRAS[e.name]}]')"
            raise PluginError(f"cannot import {self.target!r}: {type(e).__name__}: {e}{hint}") from e
        return obj

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # e.g. a sampler's ``options``
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.resolve(), name)

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(self.resolve())



def import_path(obj: Any) -> str:
    """``"pkg.mod:ClassName"`` of an object's class (of a class itself): the target a LazyFactory resolves, and
    how a card names a bring-your-own module (zoo.byo)."""
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def module_args(module: Any) -> dict[str, Any]:
    """The constructor arguments a module declares in its ``config`` dict attribute (empty when it has none):
    with :func:`import_path`, what a card records to rebuild a bring-your-own module."""
    import copy

    config = getattr(module, "config", None)
    return copy.deepcopy(config) if isinstance(config, dict) else {}

@dataclass(frozen=True)
class Component:
    """One registered thing: ``factory`` is what the plugin passed (a factory, function or object)."""

    kind: str
    name: str
    factory: Any
    owner: Owner

    @property
    def qualified_name(self) -> str:
        return f"{self.owner.distribution}:{self.name}"

    def resolve(self) -> Any:
        """The registered object itself (imports a ``"module:attribute"`` registration)."""
        return self.factory.resolve() if isinstance(self.factory, LazyFactory) else self.factory


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

    def one_line(self) -> str:
        return (f"plugin {self.owner.plugin} from {self.owner.distribution} failed: {self.error.splitlines()[0]}"
                f"; see `zoo plugins`")


@dataclass
class Registry:
    """Everything the installed plugins provide, by kind and name."""

    strict: bool = False
    entries: dict[str, dict[str, list[Component]]] = field(default_factory=lambda: {k: {} for k in KINDS})
    cards: dict[str, CardEntry] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)
    plugins: list[Owner] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._card_conflicts: dict[str, list[Owner]] = {}
        self._card_owners: dict[str, list[CardEntry]] = {}  # every accepted or conflicting card, for DIST:NAME

    # -- loading -------------------------------------------------------------------------------
    def load_entry_points(self, group: str = hookspecs.PROJECT) -> "Registry":
        """Import every plugin of the entry-point group once (built-ins first), recording failures by name."""
        eps = sorted(metadata.entry_points(group=group),
                     key=lambda e: (_dist_name(e) != BUILTIN_DISTRIBUTION, e.name))
        for ep in eps:
            owner = Owner(ep.name, _dist_name(ep), ep.value, getattr(ep.dist, "version", None))
            try:
                module = _within_limit(ep.load, f"importing plugin {ep.name} ({ep.value})")
            except PluginTimeout as e:
                self._fail(owner, "import", e)
                continue
            except BaseException as e:  # noqa: BLE001 - a broken plugin (even sys.exit or KeyboardInterrupt raised
                self._fail(owner, "import", e)  # by its own code) must not take the others down
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
        staged: list[tuple[Any, Any]] = []

        def register(name: str | os.PathLike, factory: Any = None) -> None:
            staged.append((name, factory))

        try:
            _within_limit(lambda: impl(register=register), f"hook {hook} of plugin {owner.plugin} ({owner.module})")
            entries = [e for n, f in list(staged) for e in self._entry(kind, n, f, owner)]
        except BaseException as e:  # noqa: BLE001 - KeyboardInterrupt raised by the hook's own code included
            self._fail(owner, hook, e)
            return
        for entry in entries:
            self._commit(kind, entry, owner)

    def _entry(self, kind: str, name: Any, factory: Any, owner: Owner) -> list:
        if kind == "card":
            path = Path(name)
            if not path.exists():
                raise PluginError(f"card path {path} does not exist")
            files = sorted(path.glob("*.md")) if path.is_dir() else [path]
            return [CardEntry(p.stem, p, owner) for p in files if p.name.lower() != "readme.md"]
        if not isinstance(name, str) or not name or ":" in name:
            raise PluginError(f"{kind} name must be a non-empty string without ':', got {name!r}")
        if isinstance(factory, str):
            if ":" not in factory:
                raise PluginError(f"{kind} {name!r}: an object given as a string must be 'module:attribute', "
                                  f"got {factory!r}")
            factory = LazyFactory(factory)
        if factory is None or (kind not in ("data", "features") and not callable(factory)):
            raise PluginError(f"{kind} {name!r}: {factory!r} is not callable")
        return [Component(kind, name, factory, owner)]

    def _commit(self, kind: str, entry: Any, owner: Owner) -> None:
        if kind == "card":
            self._commit_card(entry, owner)
            return
        existing = self.entries[kind].setdefault(entry.name, [])
        if not owner.builtin and any(e.owner.builtin for e in existing):
            self._fail(owner, HOOKS[kind], PluginError(
                f"{kind} name {entry.name!r} belongs to the built-in {existing[0].owner}; the registration "
                f"by {owner} is refused (use another name)"))
            return
        if owner.builtin:  # a built-in displaces third-party registrations of its name
            existing[:] = [e for e in existing if e.owner.builtin]
        existing.append(entry)

    def _commit_card(self, entry: CardEntry, owner: Owner) -> None:
        prior = self.cards.get(entry.name)
        if prior is not None and prior.owner.builtin and not owner.builtin:
            self._fail(owner, "register_cards", PluginError(
                f"card name {entry.name!r} belongs to the built-in {prior.owner}; the card {entry.path} from "
                f"{owner} is refused (rename the file)"))
            return
        self._card_owners.setdefault(entry.name, []).append(entry)
        if prior is not None or entry.name in self._card_conflicts:
            owners = self._card_conflicts.setdefault(entry.name, [prior.owner] if prior else [])
            owners.append(owner)
            self.cards.pop(entry.name, None)
            self._fail(owner, "register_cards", PluginError(self._card_conflict(entry.name)))
            return
        self.cards[entry.name] = entry

    def _fail(self, owner: Owner, stage: str, error: BaseException) -> None:
        failure = PluginFailure(owner, stage, f"{type(error).__name__}: {error}" if str(error)
                                else f"{type(error).__name__} raised by the plugin's own code")
        self.failures.append(failure)
        if self.strict:
            raise PluginError(str(failure)) from (error if isinstance(error, Exception) else None)

    def _card_conflict(self, name: str) -> str:
        owners = " and ".join(str(o) for o in self._card_conflicts[name])
        return f"card name {name!r} is registered by more than one plugin: {owners}"

    # -- lookup --------------------------------------------------------------------------------
    def get(self, kind: str, name: str) -> Component:
        """The ``kind`` registered as ``name`` (or ``DIST:NAME``); clear errors for unknown or ambiguous names."""
        if kind not in KINDS:
            raise PluginError(f"unknown registry kind {kind!r}; expected one of {KINDS}")
        if not isinstance(name, str):
            raise PluginError(f"{kind} name must be a string, got {name!r}")
        table = self.entries[kind]
        dist, sep, short = name.rpartition(":")
        if sep:
            for entry in table.get(short, []):
                if entry.owner.distribution == dist:
                    return entry
            owners = ", ".join(e.qualified_name for e in table.get(short, [])) or "none"
            raise PluginError(f"unknown {kind} {name!r}: distribution {dist!r} registers no {kind} {short!r} "
                              f"(registered as: {owners}){self._failure_hint()}")
        found = table.get(name, [])
        if not found:
            raise PluginError(f"unknown {kind} {name!r}{suggest(name, self.names(kind))}{self._failure_hint()}")
        if len(found) > 1:
            raise PluginError(f"{kind} name {name!r} is registered by more than one plugin: "
                              + " and ".join(str(e.owner) for e in found)
                              + "; select one as " + " or ".join(repr(e.qualified_name) for e in found))
        return found[0]

    def card(self, name: str) -> CardEntry | None:
        """The card registered as ``name``, or as ``DIST:NAME`` (a distribution and a card name: selects one of
        several plugins' cards of that name, as for components); None when there is none."""
        dist, sep, short = str(name).rpartition(":")
        if not sep:
            return self.cards.get(name)
        for entry in self._card_owners.get(short, []):
            if entry.owner.distribution == dist:
                return entry
        return None

    def find(self, kind: str, name: str) -> Component | None:
        """Like :meth:`get`, or None for an unknown name."""
        try:
            return self.get(kind, name)
        except PluginError:
            return None

    def names(self, kind: str) -> list[str]:
        """Registered names of ``kind`` (``"card"`` for cards)."""
        if kind == "card":
            return sorted(self.cards)
        return sorted(n for n, e in self.entries.get(kind, {}).items() if e)

    def all(self, kind: str) -> list[Component]:
        """Every registration of ``kind`` (ambiguous names included), sorted by name."""
        return sorted((e for es in self.entries.get(kind, {}).values() for e in es),
                      key=lambda e: (e.name, e.owner.distribution))

    @property
    def components(self) -> dict[str, dict[str, Component]]:
        """kind -> name -> the one unambiguous registration (ambiguous names left out)."""
        return {k: {n: es[0] for n, es in t.items() if len(es) == 1} for k, t in self.entries.items()}

    @property
    def conflicts(self) -> dict[tuple[str, str], list[Owner]]:
        """(kind, name) -> owners, for every name more than one third-party plugin registered."""
        out = {(k, n): [e.owner for e in es] for k, t in self.entries.items() for n, es in t.items() if len(es) > 1}
        out.update({("card", n): owners for n, owners in self._card_conflicts.items()})
        return out

    def failure_lines(self) -> list[str]:
        """One line per failed or refused plugin registration, for stderr."""
        return [f.one_line() for f in self.failures]

    def _failure_hint(self) -> str:
        if not self.failures:
            return ""
        return "; note: " + "; ".join(str(f) for f in self.failures)


PLUGIN_TIMEOUT_ENV = "ZOO_PLUGIN_TIMEOUT"


class PluginTimeout(PluginError):
    """A plugin's import or hook that did not return within the time limit."""


def _within_limit(fn: Callable[[], Any], what: str) -> Any:
    """``fn()`` with a time limit (``$ZOO_PLUGIN_TIMEOUT`` seconds, default 30; 0: none).  It runs in a daemon
    thread, so a plugin that hangs is named (PluginTimeout) and left behind instead of blocking the command,
    and anything it raises -- KeyboardInterrupt and SystemExit included -- comes back here as its failure, while
    the user's own Ctrl-C still interrupts the waiting command."""
    import threading

    try:
        limit = float(os.environ.get(PLUGIN_TIMEOUT_ENV, "30"))
    except ValueError:
        raise PluginError(f"${PLUGIN_TIMEOUT_ENV}={os.environ[PLUGIN_TIMEOUT_ENV]!r}: expected a number of seconds")
    if limit <= 0 or threading.current_thread() is not threading.main_thread():
        return fn()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            box["error"] = e

    thread = threading.Thread(target=run, name=f"zoo-plugin: {what}", daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        raise PluginTimeout(f"{what} did not return within {limit:g} s (set ${PLUGIN_TIMEOUT_ENV} to allow more); "
                            f"it is skipped")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _dist_name(ep: Any) -> str:
    return ep.dist.name if getattr(ep, "dist", None) is not None else "(unknown distribution)"


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
        import warnings

        from zoo.errors import PluginWarning

        for line in _REGISTRY.failure_lines():  # named wherever the user is (the CLI prints its own line)
            warnings.warn(line, PluginWarning, stacklevel=2)
    return _REGISTRY


def reset_registry(registry: Registry | None = None) -> None:
    """Drop (or replace) the process-wide registry; the next use reads the entry points again."""
    global _REGISTRY
    _REGISTRY = registry
