"""The typed card: a card's ``zoo:`` block as frozen dataclasses, with every field's type, default and allowed
values declared here, once.

``parse_zoo(raw, source)`` turns the block (its ``extends`` chain already merged, zoo.cards.schema) into a
:class:`ZooSpec`; a field of the wrong type, an unknown field or a missing one is refused with a
:class:`~zoo.errors.CardError` naming ``source`` and the field path::

    cards/vae-mnist.md: field 'zoo.train.lr': must be a positive number, got 'fast'

What the card format fixes is typed here: the data, the latent, each component's ``name`` (or the ``module`` of
a bring-your-own one) and provenance, the objective's generic fields, the training recipe, the weights and the
measured results.  What a plugin defines stays a mapping the plugin validates when the model is built: a
component's arguments (``ComponentSpec.args``), a registered objective's or a surrogate loss's options
(``ObjectiveSpec.options``), a sampler's options, and any result a plugin adds (``ResultsSpec.extra``).
Whether a name is registered, or a torch optimiser exists, is decided where it is used (the assembler, the
trainer), not here.

This module imports nothing of the zoo but its errors (the cards layer sits under the assembler).
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import numbers
import re
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, Protocol

from zoo.errors import CardError

COMPONENTS = ("encoder", "decoder", "prior")
ZOO_FIELDS = {"name", "description", "extends", "data", "latent", "encoder", "decoder", "prior",
              "objective", "train", "sampler", "weights", "results"}
REQUIRED = ("data", "latent", "encoder", "decoder", "prior")
OBJECTIVE_FIELDS = {"beta", "iwae_k", "loss", "gradient", "name"}  # with a name other than elbo: + its options
GRADIENTS = ("reparam", "dreg")  # objective.gradient of the iwae_k bound
# a component spec is {name: REGISTERED, **args} or {module: "pkg.mod:ClassName", args: {...}} (bring your own);
# either may carry provenance that is not passed to the component (fitted_from: what a fitted prior was fitted on)
PROVENANCE_FIELDS = ("fitted_from",)
MODULE_FIELDS = {"module", "args", *PROVENANCE_FIELDS}
PRECISIONS = {"no": "no", "fp32": "no", "bf16": "bf16", "fp16": "fp16"}
SCHEDULES = ("constant", "cosine", "linear")
_IMPORT_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.<>]*")  # <locals>: built in Python, refused on save
_SHA256 = re.compile(r"[0-9a-f]{64}")
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")
# License ids the Hub accepts in a model card (https://huggingface.co/docs/hub/repositories-licenses).
HUB_LICENSES = frozenset("""
apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0 bigcode-openrail-m
afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear c-uda cc cc0-1.0 cc-by-2.0 cc-by-2.5
cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0 cc-by-nc-3.0 cc-by-nc-4.0 cc-by-nd-4.0 cc-by-nc-nd-3.0
cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 cc-by-nc-sa-4.0 cdla-sharing-1.0 cdla-permissive-1.0
cdla-permissive-2.0 wtfpl ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1 eupl-1.2 agpl-3.0 gfdl gpl gpl-2.0 gpl-3.0 lgpl
lgpl-2.1 lgpl-3.0 isc h-research intel-research lppl-1.3c ms-pl apple-ascl apple-amlr mpl-2.0 odc-by odbl openrail++
osl-3.0 postgresql ofl-1.1 ncsa unlicense zlib pddl lgpl-lr deepfloyd-if-license fair-noncommercial-research-license
llama2 llama3 llama3.1 llama3.2 llama3.3 llama4 gemma unknown other
""".split())


class _Bad(Exception):
    """A field's value is wrong: ``path`` (relative to the block being parsed) and why."""

    def __init__(self, path: str, why: str):
        super().__init__(why)
        self.path, self.why = path, why


# -- field kinds: each returns the value as the spec stores it, or raises _Bad("", why) -----------------------------
def _got(v: Any) -> str:
    return f"got {v!r}"


def _is_int(v: Any) -> bool:
    return type(v) is int or (isinstance(v, numbers.Integral) and not isinstance(v, bool))


def _is_number(v: Any) -> bool:
    return type(v) in (float, int) or (isinstance(v, numbers.Real) and not isinstance(v, bool))


def integer(low: int | None = None) -> Callable[[Any], int]:
    what = "an integer" if low is None else ("a positive integer" if low == 1 else
                                              "a non-negative integer" if low == 0 else f"an integer >= {low}")

    def check(v: Any) -> int:
        if not _is_int(v) or (low is not None and v < low):
            raise _Bad("", f"must be {what}, {_got(v)}")
        return int(v)
    check.what = what
    return check


def number(low: float | None = None, *, positive: bool = False, below: float | None = None,
           what: str | None = None) -> Callable[[Any], float]:
    """A real number (not a bool); with a bound, also finite and within it (NaN is refused there)."""
    what = what or ("a positive number" if positive else "a number" if low is None else f"a number >= {low:g}")
    bounded = positive or low is not None or below is not None

    def check(v: Any) -> float:
        if not _is_number(v) or (bounded and (v != v or (positive and not 0 < v < float("inf"))
                                              or (low is not None and v < low) or (below is not None and v >= below))):
            raise _Bad("", f"must be {what}, {_got(v)}")
        return v
    check.what = what
    return check


def text(what: str = "a non-empty string") -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if not isinstance(v, str) or not v:
            raise _Bad("", f"must be {what}, {_got(v)}")
        return v
    check.what = what
    return check


def string(v: Any) -> str:
    """Any string, the empty one included (a measured result's label)."""
    if not isinstance(v, str):
        raise _Bad("", f"must be a string, {_got(v)}")
    return v


def boolean(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _Bad("", f"must be true or false, {_got(v)}")
    return v


def one_of(*choices: Any) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if v not in choices:
            raise _Bad("", f"must be one of {', '.join(map(str, choices))}, {_got(v)}")
        return v
    check.choices = choices
    return check


def mapping(v: Any) -> Mapping[str, Any]:
    if not isinstance(v, Mapping):
        raise _Bad("", f"must be a mapping, {_got(v)}")
    return frozen_mapping(v)


def shape(length: int | None = None) -> Callable[[Any], tuple[int, ...]]:
    def check(v: Any) -> tuple[int, ...]:
        if _is_int(v):
            v = [v]
        if not isinstance(v, (list, tuple)) or not v or not all(_is_int(d) and d > 0 for d in v):
            raise _Bad("", f"must be a list of positive integers, {_got(v)}")
        if length is not None and len(v) != length:
            raise _Bad("", f"must have {length} entries (channels, height, width), got {list(v)}")
        return tuple(int(d) for d in v)
    return check


def optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def opt(v: Any) -> Any:
        return None if v is None else check(v)
    opt.choices = getattr(check, "choices", None)
    return opt


class FrozenMapping(Mapping):
    """A read-only mapping (a plugin's free options, a result's nested record) that copies and pickles."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] = ()):
        object.__setattr__(self, "_data", dict(data))

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return repr(self._data)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a typed card's mapping is read-only (set {name!r} on the raw card's zoo block)")

    def __reduce__(self):
        return FrozenMapping, (self._data,)


def frozen_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only deep copy: nested mappings frozen, lists as tuples (the spec shares nothing mutable with the
    raw card; :func:`thaw` gives plain Python back)."""
    return FrozenMapping({k: _frozen(v) for k, v in value.items()})


class FrozenList(tuple):
    """A list of the raw card, frozen (a tuple that :func:`thaw` turns back into a list; a tuple stays a tuple)."""

    __slots__ = ()


_SCALARS = (str, int, float, bool, type(None))


def plain_copy(value: Any) -> Any:
    """A deep copy of card data (dicts, lists, scalars: fast), other objects by ``copy.deepcopy``."""
    if isinstance(value, _SCALARS):
        return value
    if type(value) is dict:
        return {k: plain_copy(v) for k, v in value.items()}
    if type(value) is list:
        return [plain_copy(v) for v in value]
    return copy.deepcopy(value)


def _frozen(value: Any) -> Any:
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, Mapping):
        return frozen_mapping(value)
    if isinstance(value, list):
        return FrozenList(_frozen(v) for v in value)
    if isinstance(value, tuple):
        return tuple(_frozen(v) for v in value)
    return copy.deepcopy(value)


def thaw(value: Any) -> Any:
    """A spec value as plain Python, as the raw card holds it (dicts, lists; tuples stay tuples), e.g. to hand a
    plugin its arguments."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, FrozenList):
        return [thaw(v) for v in value]
    if isinstance(value, tuple):
        return tuple(thaw(v) for v in value)
    return value if isinstance(value, _SCALARS) else copy.deepcopy(value)


def spec_field(default: Any = dataclasses.MISSING, help: str = "", *, check: Callable[[Any], Any] | None = None,
               choices: tuple | None = None, flag: bool = True, factory: Callable[[], Any] | None = None, **kw: Any):
    """A typed card field: its default (none: required), help text, check (type and allowed values) and, for
    ``zoo.train``, whether ``zoo train`` has a flag for it."""
    meta = {"help": help, "check": check, "choices": choices or getattr(check, "choices", None), "flag": flag, **kw}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@functools.lru_cache(maxsize=None)
def _fields(cls, extra: str | None) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init and f.name != extra}


def _parse_block(cls, raw: Any, *, what: str = "must be a mapping", extra: str | None = None, free: bool = False,
                 unknown_what: str = "unknown field") -> Any:
    """``cls`` (a frozen spec dataclass) from a mapping: each field checked, unknown fields refused (or, with
    ``free``, kept as a read-only mapping in the field ``extra`` names)."""
    if not isinstance(raw, dict):
        raise _Bad("", f"{what}, {_got(raw)}")
    fields = _fields(cls, extra)
    unknown = sorted(set(raw) - set(fields), key=str)
    if unknown and not free:
        raise _Bad(str(unknown[0]), f"{unknown_what}; allowed: {', '.join(sorted(fields))}")
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name in raw:
            check = f.metadata.get("check")
            try:
                values[name] = check(raw[name]) if check is not None else raw[name]
            except _Bad as e:
                raise _Bad(f"{name}.{e.path}" if e.path else name, e.why) from None
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _Bad(name, f"missing{f.metadata.get('missing', '')}")
    if extra is not None:
        values[extra] = frozen_mapping({k: raw[k] for k in unknown})
    spec = cls(**values)
    problem = spec.problem() if hasattr(spec, "problem") else None
    if problem is not None:
        raise _Bad(*problem)
    return spec


# -- the blocks ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataSpec:
    """``zoo.data``: what the model is trained and measured on."""

    source: str = spec_field(help="a Hub dataset id, a local folder, zoo:NAME (a registered data set) or unspecified",
                             check=text("a data set: a Hub dataset id, a local path, zoo:mnist-5k or zoo:digits"),
                             missing=" (a Hub dataset id, a local path, zoo:mnist-5k or zoo:digits)")
    shape: tuple[int, int, int] = spec_field(help="channels, height, width", check=shape(3))
    image_key: str | None = spec_field(None, "the column holding the images", check=text())
    revision: str | None = spec_field(None, "the data set's pinned Hub revision", check=text())
    config: str | None = spec_field(None, "the Hub data set's configuration", check=text())
    split: str = spec_field("train", "the split trained on", check=text())
    test_split: str = spec_field("test", "the split measured on", check=text())


@dataclass(frozen=True)
class LatentSpec:
    """``zoo.latent``: the shape of z."""

    shape: tuple[int, ...] = spec_field(help="the latent's shape", check=shape())


@dataclass(frozen=True)
class ComponentSpec:
    """``zoo.encoder`` / ``zoo.decoder`` / ``zoo.prior``: a registered component (``name``) with its arguments, or a
    bring-your-own one (``module: "pkg.mod:ClassName"``, ``args``).  The arguments are the plugin's to check."""

    kind: str
    name: str | None = None
    module: str | None = None
    args: Mapping[str, Any] = field(default_factory=FrozenMapping)
    fitted_from: Mapping[str, Any] | None = None

    @property
    def target(self) -> str:
        """The registered name, or the import path of a bring-your-own module."""
        return self.module if self.module is not None else self.name

    def arguments(self) -> dict[str, Any]:
        """The component's arguments as plain Python (a copy), as its factory is called with them."""
        return thaw(self.args)

    @classmethod
    def parse(cls, kind: str, raw: Any) -> "ComponentSpec":
        if not isinstance(raw, dict):
            raise _Bad("", "must be a mapping with a 'name' and the component's arguments")
        fitted = raw.get("fitted_from")
        if fitted is not None and not isinstance(fitted, dict):
            raise _Bad("fitted_from", "must be a mapping (the run and codes the prior was fitted on)")
        fitted = frozen_mapping(fitted) if fitted is not None else None
        if "module" in raw:
            unknown = sorted(set(raw) - MODULE_FIELDS, key=str)
            if unknown:
                raise _Bad(str(unknown[0]), f"unknown field; allowed: {', '.join(sorted(MODULE_FIELDS))}")
            module = raw["module"]
            if not isinstance(module, str) or not _IMPORT_PATH.fullmatch(module):
                raise _Bad("module", f"must be an import path 'package.module:ClassName', got {module!r}")
            args = raw.get("args", {})
            if not isinstance(args, dict):
                raise _Bad("args", "must be a mapping of the module's constructor arguments")
            return cls(kind, module=module, args=frozen_mapping(args), fitted_from=fitted)
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise _Bad("name", "missing or not a string (or give 'module: package.module:ClassName')")
        args = {k: v for k, v in raw.items() if k != "name" and k not in PROVENANCE_FIELDS}
        return cls(kind, name=name, args=frozen_mapping(args), fitted_from=fitted)


@dataclass(frozen=True)
class SamplerSpec:
    """``zoo.sampler``: ``model.sample``'s default sampler (a registered name) and its options."""

    name: str = spec_field(check=text("the name of a registered sampler"))
    options: Mapping[str, Any] = field(default_factory=FrozenMapping)


@dataclass(frozen=True)
class ObjectiveSpec:
    """``zoo.objective``: the built-in (beta-)ELBO / IWAE bound and its fields, a prior's surrogate ``loss``, or a
    registered objective (``name``); the last two take options of their own (``options``: a surrogate loss's
    fields besides the generic ones, a registered objective's every field but ``name``)."""

    name: str = spec_field("elbo", "a registered objective, or elbo",
                           check=text("the name of a registered objective (or 'elbo')"))
    beta: float = spec_field(1.0, "weight of the rate", check=number(0))
    iwae_k: int = spec_field(1, "importance samples of the bound (1: the ELBO)", check=integer(1))
    loss: str = spec_field("elbo", "elbo, or a surrogate the prior's training_loss knows (e.g. simple)",
                           check=text("a name ('elbo', or one the prior's training_loss knows)"))
    gradient: str = spec_field("reparam", "the gradient of the iwae_k bound", check=text())
    options: Mapping[str, Any] = field(default_factory=FrozenMapping)

    @property
    def registered(self) -> bool:
        """A registered objective (not the built-in elbo) computes the loss."""
        return self.name != "elbo"

    def arguments(self) -> dict[str, Any]:
        """The options as plain Python (a copy): a registered objective's keyword arguments, or a surrogate loss's."""
        return thaw(self.options)

    @classmethod
    def parse(cls, raw: Any) -> "ObjectiveSpec":
        if not isinstance(raw, dict):
            raise _Bad("", f"must be a mapping, {_got(raw)}")
        named = raw.get("name", "elbo") != "elbo"
        # a surrogate loss the prior defines (loss other than elbo) takes its own options beside it
        surrogate = raw.get("loss", "elbo") != "elbo"
        spec = _parse_block(cls, raw, extra="options", free=named or surrogate)
        if not named and spec.gradient not in GRADIENTS:
            raise _Bad("gradient", f"must be one of {', '.join(GRADIENTS)}, got {spec.gradient!r}")
        if not named and spec.gradient == "dreg" and spec.iwae_k <= 1:
            raise _Bad("gradient", "'dreg' is a gradient of the importance-weighted bound; set iwae_k > 1 beside it")
        if named:  # every field but the name is the registered objective's keyword argument (beta included)
            spec = dataclasses.replace(spec, options=frozen_mapping({k: v for k, v in raw.items() if k != "name"}))
        return spec


@dataclass(frozen=True)
class TrainSpec:
    """``zoo.train``: the training recipe (zoo.training.TrainConfig is its mutable copy, one ``zoo train`` flag per
    field).  The optimiser and schedule names are looked up in torch when training starts."""

    epochs: int | None = spec_field(None, "passes over the training data (default 10 when steps is not set)",
                                    check=optional(integer(1)))
    steps: int | None = spec_field(None, "optimiser steps (takes precedence over --epochs)", check=optional(integer(1)))
    batch_size: int = spec_field(128, "global batch of one optimiser step (all processes and grad_accum together)",
                                 check=integer(1))
    lr: float = spec_field(1e-3, "learning rate", check=number(positive=True))
    seed: int = spec_field(0, "seed of the initialisation, the data order and the noise", check=integer(0))
    device: str = spec_field("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps", check=text())
    grad_clip: float | None = spec_field(None, "clip the global gradient norm to this value",
                                         check=optional(number(positive=True)))
    weight_decay: float = spec_field(0.0, "weight decay of the optimiser", check=number(0))
    eval_iwae_k: int = spec_field(100, "importance samples of the final NLL estimate (IWAE k)", check=integer(1))
    eval_batch_size: int = spec_field(500, "batch size of the held-out evaluation", check=integer(1))
    optimizer: str = spec_field("adam", "optimiser: any torch.optim class by name, case-insensitive (adam, adamw, sgd, "
                                        "rmsprop, ...)",
                                check=text("the name of a torch.optim optimiser (adam, adamw, sgd, ...)"))
    optimizer_args: dict | None = spec_field(None, "keyword arguments of the optimiser besides lr and weight_decay, as "
                                                   "JSON on the command line, e.g. '{\"betas\": [0.9, 0.99]}'",
                                             check=optional(mapping))
    precision: str | None = spec_field(None, "mixed precision no | bf16 | fp16 (fp16: GPU only); default: "
                                             "accelerate's setting (accelerate launch --mixed_precision / accelerate "
                                             "config), else no",
                                       check=optional(text()))
    grad_accum: int = spec_field(1, "micro-batches per optimiser step", check=integer(1))
    lr_schedule: str = spec_field("constant", "learning-rate schedule after warm-up: constant, cosine, linear, or a "
                                              "torch.optim.lr_scheduler class by name (e.g. StepLR with "
                                              "lr_schedule_args)",
                                  check=text(f"{', '.join(SCHEDULES)} or a torch.optim.lr_scheduler class name"))
    lr_schedule_args: dict | None = spec_field(None, "keyword arguments of a torch.optim.lr_scheduler class, as JSON",
                                               check=optional(mapping))
    warmup_steps: int = spec_field(0, "steps of linear learning-rate warm-up from 0", check=integer(0))
    ema: float | None = spec_field(None, "EMA decay of the weights, e.g. 0.9999 (0 or unset: off)",
                                   check=optional(number(0, below=1, what="a decay in (0, 1), e.g. 0.9999, or "
                                                                          "0/null for off")))
    checkpoint_every: int = spec_field(1000, "steps between checkpoints (one is also written at the end)",
                                       check=integer(1))
    keep_checkpoints: int = spec_field(3, "how many checkpoints to keep", check=integer(1))
    log_every: int = spec_field(50, "steps between metric rows", check=integer(1))
    eval_every: int = spec_field(1000, "steps between held-out ELBO evaluations (0: at the end only)", check=integer(0))
    eval_points: int = spec_field(1000, "held-out images in the periodic evaluation", check=integer(1))
    sample_every: int = spec_field(1000, "steps between sample grids (0: at the end only)", check=integer(0))
    num_samples: int = spec_field(64, "images in each sample grid", check=integer(1))
    streaming: bool = spec_field(False, "stream the data set with Hugging Face datasets instead of loading it into "
                                        "memory", check=boolean)
    stream_buffer: int = spec_field(1000, "shuffle buffer of a streamed data set", check=integer(1))
    algorithm: str = spec_field("gradient", "gradient (the optimiser on the card's objective) or a registered "
                                            "fitting algorithm, e.g. em for Gaussian mixtures",
                                check=text("'gradient' or the name of a registered fitting algorithm"))
    em_iters: int = spec_field(100, "fitting algorithms: at most this many iterations", check=integer(1))
    em_tol: float = spec_field(1e-6, "fitting algorithms: stop when an iteration gains less (nats per image)",
                               check=number(0))
    keep_best: bool = spec_field(False, "also keep the weights of the best held-out ELBO (periodic evaluations and "
                                        "the end) as model_best.safetensors, with its step in the card", check=boolean)
    validation: int = spec_field(0, "hold out this many training images (a fixed seeded draw, never trained on) for "
                                    "the periodic evaluations and keep_best, so model selection never sees the test "
                                    "split (0: the periodic evaluations use the test split)", check=integer(0))
    restore_best: bool = spec_field(False, "at the end, evaluate and save the weights of the best held-out ELBO "
                                           "instead of the last ones (early stopping; needs keep_best)", check=boolean)
    report_to: str = spec_field("auto", "trackers: comma-separated tensorboard, wandb, trackio, mlflow, all (those "
                                        "installed), none, or auto (tensorboard when installed); metrics.csv is "
                                        "always written", check=text())
    init_from: str | None = spec_field(None, "a card name or run folder whose weights initialise this model before "
                                             "training (every tensor of it must exist here with the same name and "
                                             "shape, e.g. a VAE's encoder and decoder under a new prior; the rest "
                                             "keeps its initialisation)",
                                       check=optional(text("a card name or a run folder")))
    freeze: tuple[str, ...] | None = spec_field(None, "components not updated by the optimiser, e.g. [encoder, "
                                                      "decoder] (for freeze_steps steps, or the whole run)",
                                                flag=False, check=optional(lambda v: _freeze(v)))
    freeze_steps: int = spec_field(0, "steps during which the 'freeze' components stay fixed (0: the whole run)",
                                   check=integer(0))
    threads: int | None = spec_field(None, "torch CPU threads per process (default: torch's for one process; cores "
                                           "// processes when several share the machine)", check=optional(integer(1)))

    def problem(self) -> tuple[str, str] | None:
        """The fields that go together (each field was checked as it was parsed)."""
        return train_problem(self, each=False)

    @classmethod
    def parse(cls, raw: Any) -> "TrainSpec":
        return _parse_block(cls, raw, unknown_what="unknown training option")


def _freeze(v: Any) -> tuple[str, ...]:
    if not isinstance(v, (list, tuple)) or not v or not all(part in COMPONENTS for part in v):
        raise _Bad("", f"must be a non-empty list of components: encoder, decoder, prior, {_got(v)}")
    return FrozenList(v)


def train_problem(recipe: Any, *, each: bool = True) -> tuple[str, str] | None:
    """(field, what is wrong) for the first ``zoo.train`` field of ``recipe`` (a TrainSpec or a TrainConfig) that
    cannot work, or None: each field's check (type, range, allowed values; ``each``), then the fields that go
    together."""
    for f in dataclasses.fields(TrainSpec) if each else ():
        value = getattr(recipe, f.name)
        check = f.metadata.get("check")
        if check is None or value is None and f.default is None:
            continue
        try:
            check(list(value) if f.name == "freeze" and isinstance(value, tuple) else value)
        except _Bad as e:
            return f.name, e.why.rsplit(", got ", 1)[0]
    if recipe.precision is not None and recipe.precision not in PRECISIONS:
        return "precision", f"must be one of {', '.join(PRECISIONS)} (or unset: accelerate's setting)"
    if recipe.restore_best and not recipe.keep_best:
        return "restore_best", "needs keep_best (the best weights are the ones keep_best keeps)"
    if recipe.validation and recipe.streaming:
        return "validation", "cannot carve a validation set from a streamed data set (use streaming false)"
    return None


@dataclass(frozen=True)
class WeightsSpec:
    """``zoo.weights``: a Hub file (repo, file, revision, sha256, converter) and/or a file shipped beside the card
    (``packaged``, sha256 required).  With both, a pinned Hub revision is preferred and the packaged file is the
    same bytes (one sha256), used when the Hub cannot be reached."""

    repo: str | None = spec_field(None, "the Hub repo", check=text("a Hub repo id (org/name)"))
    revision: str | None = spec_field(None, "the pinned Hub revision (a commit)", check=text())
    file: str | Mapping[str, str] | None = spec_field(None, "the weights file, or part -> file for a checkpoint in "
                                                            "several files", check=lambda v: _weights_file(v))
    sha256: str | Mapping[str, str] | None = spec_field(None, "the file's sha256 (or part -> digest)",
                                                        check=lambda v: _digest(v))
    converter: str | None = spec_field(None, "a registered converter from an upstream layout", check=text())
    packaged: str | None = spec_field(None, "a .safetensors file shipped beside the card", check=lambda v: _packaged(v))

    def files(self) -> dict[str | None, str]:
        """``{None: file}``, or part -> file for a checkpoint in several files."""
        return dict(self.file) if isinstance(self.file, Mapping) else {None: self.file}

    def problem(self) -> tuple[str, str] | None:
        if self.packaged is not None and (not isinstance(self.sha256, str) or not _SHA256.fullmatch(self.sha256)):
            return "sha256", "a packaged weights file needs its sha256 (64 hex digits)"
        if self.packaged is None or self.repo is not None:
            if self.repo is None:
                return "repo", "missing or not a string (or give 'packaged': a file shipped beside the card)"
            if self.file is None:
                return "file", ("missing, or neither a file name nor a mapping part -> file name (a checkpoint in "
                                "several files, e.g. {vqvae: vqvae/x.safetensors, unet: ...})")
        return None


def _weights_file(v: Any) -> str | Mapping[str, str]:
    if isinstance(v, str) and v:
        return v
    if isinstance(v, dict) and v and all(isinstance(k, str) and k and isinstance(f, str) for k, f in v.items()):
        return frozen_mapping(v)
    raise _Bad("", "missing, or neither a file name nor a mapping part -> file name (a checkpoint in several files, "
                   f"e.g. {{vqvae: vqvae/x.safetensors, unet: ...}}), {_got(v)}")


def _digest(v: Any) -> str | Mapping[str, str]:
    if isinstance(v, str):
        return v
    if isinstance(v, dict) and all(isinstance(d, str) for d in v.values()):
        return frozen_mapping(v)
    raise _Bad("", f"must be a hex digest (or a mapping part -> digest for several files), {_got(v)}")


def _packaged(v: Any) -> str:
    parts = str(v).replace("\\", "/").split("/")
    if not isinstance(v, str) or not v.endswith(".safetensors") or v.startswith("/") or ".." in parts:
        raise _Bad("", f"must be a .safetensors file relative to the card's folder, got {v!r}")
    return v


_NUM, _INT, _STR, _BOOL, _MAP = (optional(number()), optional(integer(0)), optional(string),
                                 optional(boolean), optional(mapping))


@dataclass(frozen=True)
class ResultsSpec:
    """``zoo.results``: what was measured (zoo.diagnose, zoo evaluate) and by which run.  The numbers the zoo itself
    writes are typed here; anything else a plugin or a later measurement adds is kept in ``extra``."""

    # the headline numbers (nats per image unless the name says bits/dim)
    elbo: float | None = spec_field(None, check=_NUM)
    elbo_se: float | None = spec_field(None, check=_NUM)
    elbo_bpd: float | None = spec_field(None, check=_NUM)
    nll: float | None = spec_field(None, check=_NUM)
    nll_se: float | None = spec_field(None, check=_NUM)
    nll_bpd: float | None = spec_field(None, check=_NUM)
    nll_kind: str | None = spec_field(None, check=_STR)
    nll_estimator: str | None = spec_field(None, check=_STR)
    iwae_k: int | None = spec_field(None, check=_INT)
    distortion: float | None = spec_field(None, check=_NUM)
    rate: float | None = spec_field(None, check=_NUM)
    rate_se: float | None = spec_field(None, check=_NUM)
    rate_kind: str | None = spec_field(None, check=_STR)
    rate_estimator: str | None = spec_field(None, check=_STR)
    mutual_information: float | None = spec_field(None, check=_NUM)
    mutual_information_se: float | None = spec_field(None, check=_NUM)
    mutual_information_upper: float | None = spec_field(None, check=_NUM)
    mutual_information_kind: str | None = spec_field(None, check=_STR)
    mi_estimator: str | None = spec_field(None, check=_STR)
    mi_saturated: bool | None = spec_field(None, check=_BOOL)
    mi_saturation: str | None = spec_field(None, check=_STR)
    mi_split: str | None = spec_field(None, check=_STR)
    mi_n: int | None = spec_field(None, check=_INT)
    mi_rate: float | None = spec_field(None, check=_NUM)
    mi_first: Mapping[str, Any] | None = spec_field(None, check=_MAP)
    marginal_kl: float | None = spec_field(None, check=_NUM)
    marginal_kl_se: float | None = spec_field(None, check=_NUM)
    marginal_kl_lower: float | None = spec_field(None, check=_NUM)
    marginal_kl_kind: str | None = spec_field(None, check=_STR)
    marginal_kl_estimator: str | None = spec_field(None, check=_STR)
    index_code_mi: float | None = spec_field(None, check=_NUM)
    index_code_mi_se: float | None = spec_field(None, check=_NUM)
    total_correlation: float | None = spec_field(None, check=_NUM)
    total_correlation_se: float | None = spec_field(None, check=_NUM)
    total_correlation_kind: str | None = spec_field(None, check=_STR)
    tc_estimator: str | None = spec_field(None, check=_STR)
    dimension_wise_kl: float | None = spec_field(None, check=_NUM)
    dimension_wise_kl_se: float | None = spec_field(None, check=_NUM)
    active_units: int | None = spec_field(None, check=_INT)
    latent_dims: int | None = spec_field(None, check=_INT)
    mig: float | None = spec_field(None, check=_NUM)
    mig_per_factor: Mapping[str, Any] | None = spec_field(None, check=_MAP)
    # sample quality (zoo evaluate)
    fid: float | None = spec_field(None, check=_NUM)
    kid: float | None = spec_field(None, check=_NUM)
    kid_std: float | None = spec_field(None, check=_NUM)
    precision: float | None = spec_field(None, check=_NUM)
    recall: float | None = spec_field(None, check=_NUM)
    quality_features: str | None = spec_field(None, check=_STR)
    quality_features_sha256: str | None = spec_field(None, check=_STR)
    quality_n: int | None = spec_field(None, check=_INT)
    quality_split: str | None = spec_field(None, check=_STR)
    quality_metrics_by: str | None = spec_field(None, check=_STR)
    # where and by which run
    dataset: str | None = spec_field(None, check=_STR)
    dataset_revision: str | None = spec_field(None, check=_STR)
    split: str | None = spec_field(None, check=_STR)
    split_label: str | None = spec_field(None, check=_STR)
    n: int | None = spec_field(None, check=_INT)
    seed: int | None = spec_field(None, check=_INT)
    eval_seed: int | None = spec_field(None, check=_INT)
    beta: float | None = spec_field(None, check=_NUM)
    steps: int | None = spec_field(None, check=_INT)
    batch_size: int | None = spec_field(None, check=_INT)
    processes: int | None = spec_field(None, check=_INT)
    train_seconds: float | None = spec_field(None, check=_NUM)
    ema: float | None = spec_field(None, check=_NUM)
    weights: str | None = spec_field(None, check=_STR)
    mixed_precision: str | None = spec_field(None, check=_STR)
    zoo_version: str | None = spec_field(None, check=_STR)
    command: str | None = spec_field(None, check=_STR)
    best: Mapping[str, Any] | None = spec_field(None, check=_MAP)
    measured: bool | None = spec_field(None, check=_BOOL)
    extra: Mapping[str, Any] = field(default_factory=FrozenMapping)

    def get(self, key: str, default: Any = None) -> Any:
        """A result by key, typed or extra (None when absent)."""
        if key != "extra" and key in _RESULT_FIELDS:
            value = getattr(self, key)
            return default if value is None else value
        return self.extra.get(key, default)

    @classmethod
    def parse(cls, raw: Any) -> "ResultsSpec":
        return _parse_block(cls, raw, extra="extra", free=True)


_RESULT_FIELDS = {f.name for f in dataclasses.fields(ResultsSpec)}


@dataclass(frozen=True)
class ZooSpec:
    """A card's ``zoo:`` block, parsed and checked (:func:`parse_zoo`)."""

    data: DataSpec
    latent: LatentSpec
    encoder: ComponentSpec
    decoder: ComponentSpec
    prior: ComponentSpec
    objective: ObjectiveSpec = field(default_factory=lambda: ObjectiveSpec())
    train: TrainSpec = field(default_factory=lambda: TrainSpec())
    sampler: SamplerSpec | None = None
    weights: WeightsSpec | None = None
    results: ResultsSpec | None = None
    name: str | None = None
    description: str | None = None

    BLOCKS: ClassVar[tuple[str, ...]] = ("data", "latent", *COMPONENTS, "objective", "train", "sampler", "weights",
                                         "results")

    def component(self, kind: str) -> ComponentSpec:
        if kind not in COMPONENTS:
            raise KeyError(f"{kind!r} is not a component; the components are {', '.join(COMPONENTS)}")
        return getattr(self, kind)



class CardLike(Protocol):
    """What the card writers (render, hub_schema, weights_spec) read of a ``zoo.cards.Card``: declared here, below
    them, so they name no module above their own (zoo.cards.schema imports them to write a card)."""

    name: str
    metadata: dict[str, Any]
    spec: ZooSpec

    @property
    def beta(self) -> float: ...

def parse_zoo(raw: Any, source: Any) -> ZooSpec:
    """The typed card of a ``zoo`` block (``extends`` already merged); errors name ``source`` and the field path."""
    def fail(path: str, why: str) -> CardError:
        return CardError(f"{source}: field 'zoo{'.' + path if path else ''}': {why}")

    if not isinstance(raw, dict):
        raise CardError(f"{source}: field 'zoo' must be a mapping")
    unknown = sorted(set(raw) - ZOO_FIELDS, key=str)
    if unknown:
        raise fail(str(unknown[0]), f"unknown field; allowed: {', '.join(sorted(ZOO_FIELDS))}")
    for key in REQUIRED:
        if key not in raw:
            raise fail(key, "missing")
    parsers: dict[str, Callable[[Any], Any]] = {
        "data": lambda v: _parse_block(DataSpec, v),
        "latent": lambda v: _parse_block(LatentSpec, v),
        **{kind: (lambda v, kind=kind: ComponentSpec.parse(kind, v)) for kind in COMPONENTS},
        "objective": ObjectiveSpec.parse,
        "train": TrainSpec.parse,
        "sampler": lambda v: _parse_block(SamplerSpec, v, what="must be a mapping with the 'name' of a registered "
                                                                "sampler and its options", extra="options", free=True),
        "weights": lambda v: _parse_block(WeightsSpec, v),
        "results": ResultsSpec.parse,
    }
    values: dict[str, Any] = {}
    for key, parse in parsers.items():
        if key not in raw:
            continue
        try:
            values[key] = parse(raw[key])
        except _Bad as e:
            raise fail(f"{key}.{e.path}" if e.path else key, e.why) from None
    for key in ("name", "description"):
        if key in raw and raw[key] is not None and not isinstance(raw[key], str):
            raise fail(key, f"must be a string, got {raw[key]!r}")
        values[key] = raw.get(key)
    return ZooSpec(**values)


def normalized(raw: dict[str, Any], spec: ZooSpec) -> dict[str, Any]:
    """A deep copy of the raw block with the shapes as the spec reads them (lists of ints)."""
    out = plain_copy(raw)
    out["data"]["shape"] = list(spec.data.shape)
    out["latent"]["shape"] = list(spec.latent.shape)
    return out


def check_metadata(meta: dict[str, Any], source: Any) -> None:
    """The Hub metadata beside the ``zoo`` block (licence, tags, data sets, base model, ...): the types and values the
    Hub accepts, checked when a card is read and again on the README that ``zoo push`` uploads (there with the
    ``model-index``, zoo.cards.hub_schema.check_hub_metadata).  Errors name ``source`` and the field."""
    def fail(fieldname: str, msg: str) -> CardError:
        return CardError(f"{source}: field '{fieldname}': {msg}")

    lic = meta.get("license")
    if lic is not None:
        if not isinstance(lic, str):
            raise fail("license", f"must be one license id (a string), got {lic!r}")
        if lic not in HUB_LICENSES:
            raise fail("license", f"{lic!r} is not a license id the Hub knows (e.g. apache-2.0, mit, cc-by-4.0); "
                                  f"for another license use 'other' with license_name and license_link")
        if lic == "other" and not meta.get("license_name"):
            raise fail("license_name", "required when license is 'other'")
    for key in ("tags", "datasets", "base_model", "language", "metrics"):
        value = meta.get(key)
        if value is None:
            continue
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) and v for v in items):
            raise fail(key, f"must be a string or a list of strings, got {value!r}")
        if key in ("datasets", "base_model"):
            bad = [v for v in items if not _REPO_ID.fullmatch(v)]
            if bad:
                raise fail(key, f"{bad[0]!r} is not a Hub repo id (org/name)")
    for key in ("library_name", "pipeline_tag"):
        if key in meta and not isinstance(meta[key], str):
            raise fail(key, f"must be a string, got {meta[key]!r}")
