"""The core's own commands, registered through the ``zoo`` entry-point group like a plugin's.

    list, info, plugins, sample, diagnose      (here)
    train                                      (zoo.cli.train)
    push, download                             (zoo.cli.hub)
    sweep                                      (zoo.cli.sweep)
    fit-prior                                  (zoo.cli.fit_prior)
    evaluate, compare                          (zoo.cli.evaluate, zoo.cli.compare)
    traverse, interpolate                      (zoo.cli.explore)
"""
from __future__ import annotations

import json
import sys

from zoo.errors import UsageError, ZooError
from zoo.hookspecs import hookimpl


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (the flag is named by argparse in the error)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def count_int(text: str) -> int:
    """argparse type: an integer >= 0 (0 switches the thing off, e.g. ``--k 0``: no IWAE estimate)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


@hookimpl
def register_commands(register):
    register("list", add_list)
    register("info", add_info)
    register("plugins", add_plugins)
    register("train", "zoo.cli.train:add_parser")
    register("sample", add_sample)
    register("diagnose", add_diagnose)
    register("push", "zoo.cli.hub:add_push")
    register("download", "zoo.cli.hub:add_download")
    register("sweep", "zoo.cli.sweep:add_parser")
    register("fit-prior", "zoo.cli.fit_prior:add_parser")
    register("evaluate", "zoo.cli.evaluate:add_parser")
    register("compare", "zoo.cli.compare:add_parser")
    register("traverse", "zoo.cli.explore:add_traverse")
    register("interpolate", "zoo.cli.explore:add_interpolate")


# -- list / info / plugins ------------------------------------------------------------------------
def cmd_list(args) -> None:
    from zoo.cards.listing import list_models

    names = list_models(args.pattern, pretrained=args.pretrained)
    if args.names:
        for name in names:
            print(name)
        return
    if not names:
        what = "with weights on this machine " if args.pretrained else ""
        print(f"no model {what}matches {args.pattern!r} (see `zoo list`)", file=sys.stderr)
        return
    from zoo.cards.listing import format_table, listing_rows

    print(format_table(listing_rows(names), ("name", "family", "parameters", "data", "weights", "here")))
    if args.pretrained:
        print("(--pretrained: the models whose weights load on this machine now, without a download; a Hub card "
              "not in the cache gets there with `zoo download NAME`)", file=sys.stderr)


def add_list(sub) -> None:
    p = sub.add_parser("list", help="list named models: name, family, parameters, data, where the weights come from "
                                    "and whether they are on this machine")
    p.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'vae-*'")
    p.add_argument("--pretrained", action="store_true",
                   help="only models whose weights load here now without a download (packaged with latent-zoo, or "
                        "a Hub file already in the Hugging Face cache)")
    p.add_argument("--names", action="store_true", help="names only, one a line (for scripts)")
    p.set_defaults(func=cmd_list)


def cmd_info(args) -> None:
    from zoo.cards.catalog import get_card

    card = get_card(args.name)
    check_buildable(card)  # a card that validates but cannot be built is an error here, not "fine"
    if args.json:
        print(json.dumps({"name": card.name, "zoo": card.zoo, "metadata": card.metadata}, indent=2))
        return
    s, z = card.spec, card.zoo  # z: the blocks as the card writes them, shown as they are
    print(f"{card.name}: {s.description or ''}".rstrip(": "))
    print(f"  card      {card.path}")
    print(f"  data      {s.data.source}  shape {list(s.data.shape)}")
    print(f"  latent    shape {list(s.latent.shape)}")
    for kind in ("encoder", "decoder", "prior"):
        name, kwargs = card.component(kind)
        print(f"  {kind:9s} {name} {kwargs if kwargs else ''}".rstrip())
    o = s.objective
    named = o.name if o.registered else o.loss
    what = {"elbo": "the beta-ELBO" if o.beta != 1 else "the ELBO",
            "simple": "the surrogate L_simple (elbo() still reports the bound)"}.get(named, named)
    if o.iwae_k > 1:
        what = f"the {o.iwae_k}-sample importance-weighted bound (IWAE)"
    options = {**({"gradient": o.gradient} if o.gradient != "reparam" else {}), **o.arguments()}
    rest = ", ".join(f"{k}={v}" for k, v in options.items() if k not in ("beta", "iwae_k"))
    print(f"  objective {what}, beta={o.beta}{'; ' + rest if rest else ''}")
    if z.get("train"):
        print(f"  train     {z['train']}")
    if z.get("sampler"):
        print(f"  sampler   {z['sampler']}")
    from zoo.cards.listing import weights_availability

    w = s.weights
    files = ", ".join(f"{k}: {v}" if k else v for k, v in w.files().items()) if w and w.file else None
    found = weights_availability(card)
    if found.source == "packaged":
        print(f"  weights   packaged with latent-zoo: {w.packaged} (sha256 {w.sha256[:12]}); on the Hub as "
              f"{w.repo} once published" if w.repo else f"  weights   packaged: {w.packaged}")
    elif found.source == "hub":
        print(f"  weights   {found.label.removeprefix('Hub ')}/{files}"
              + (f" (converted: {w.converter})" if w.converter else ""))
    else:
        print(f"  weights   none published (train it: zoo train {card.name})")
    if found.source != "none":
        print(f"  here      {'yes' if found.here else 'no'}: {found.note}")
    for key, value in (z.get("results") or {}).items():
        print(f"  result    {key}: {value}")


def check_buildable(card) -> None:
    """Build the card's model without weights or memory (meta device): its components must accept their arguments
    (CardError naming the field otherwise).  A card naming its own Python modules is not imported here.  A card
    whose architecture was already built once (the ``zoo list`` cache, zoo.cards.listing) is not built again, so
    ``zoo info`` of a known card imports no torch."""
    from zoo.cards.listing import card_facts

    if card_facts([card])[card.name]["parameters"] is not None:
        return
    from zoo.assemble import build_model
    from zoo.errors import UntrustedCodeError

    try:
        build_model(card, empty=True)
    except UntrustedCodeError:
        pass


def add_info(sub) -> None:
    p = sub.add_parser("info", help="show a model's card")
    p.add_argument("name", help="model name (see `zoo list`) or a card file path/to/NAME.md")
    p.add_argument("--json", action="store_true", help="the card as JSON")
    p.set_defaults(func=cmd_info)


def cmd_plugins(args) -> None:
    from zoo.registry import KINDS, get_registry

    reg = get_registry()
    rows = [(e.kind, e.name, e.qualified_name, str(e.owner)) for kind in KINDS for e in reg.all(kind)]
    rows += [("card", c.name, f"{c.owner.distribution}:{c.name}", str(c.owner))
             for c in sorted(reg.cards.values(), key=lambda c: c.name)]
    if args.json:
        print(json.dumps([{"kind": k, "name": n, "qualified_name": q, "plugin": o} for k, n, q, o in rows]
                         + [{"failure": str(f)} for f in reg.failures], indent=2))
        return
    width = max((len(n) for _, n, _, _ in rows), default=4)
    qwidth = max((len(q) for _, _, q, _ in rows), default=14)
    print(f"{'KIND':10s} {'NAME':{width}s}  {'QUALIFIED NAME':{qwidth}s}  PROVIDED BY (distribution (module))")
    for kind, name, qualified, owner in rows:
        print(f"{kind:10s} {name:{width}s}  {qualified:{qwidth}s}  {owner}")
    counts = {}
    for kind, *_ in rows:
        counts[kind] = counts.get(kind, 0) + 1
    print(f"{len(rows)} registrations from {len(reg.plugins)} plugins: "
          + ", ".join(f"{n} {k}" for k, n in counts.items()))
    for (kind, name), owners in reg.conflicts.items():
        print(f"CONFLICT {kind} {name!r}: " + " and ".join(str(o) for o in owners)
              + "; select one as DIST:NAME")
    for failure in reg.failures:
        print(f"FAILED   {failure}", file=sys.stderr)


def add_plugins(sub) -> None:
    p = sub.add_parser("plugins", help="list everything the plugins register (encoders, decoders, priors, "
                                       "likelihoods, converters, fitters, samplers, data sources, commands, cards)")
    p.add_argument("--json", action="store_true", help="as JSON, with the failures")
    p.set_defaults(func=cmd_plugins)


# -- sample ---------------------------------------------------------------------------------------
def cmd_sample(args) -> None:
    import torch

    from zoo.loading import load
    from zoo.sampling import model_samplers, run_sampler, sampler_for
    from zoo.store.images import save_grid

    from zoo.store.images import check_png_path

    check_png_path(args.out, "--out")
    model = load(args.model, pretrained=True, trust_modules=args.trust_modules)
    check_allocation(args.n, model, "--n")
    generator = torch.Generator(device=model.device).manual_seed(args.seed)
    given = args.sampler_options
    name = args.sampler or sampler_for(model, given)
    if name is None:
        images = model.sample(args.n, generator=generator)
    else:
        sampler = model_samplers(model).get(name)
        options = {}
        for key, text in given.items():
            spec = sampler.options.get(key) if sampler is not None else None
            if spec is None:
                continue  # run_sampler names the unknown option
            try:
                options[key] = spec.type(text)
            except ValueError:
                raise UsageError(f"--{key.replace('_', '-')}: expected {spec.type.__name__}, got {text!r}") from None
        options.update({k: v for k, v in given.items() if k not in options})
        try:
            images = run_sampler(model, name, args.n, generator=generator, **options)
        except ValueError as e:
            raise UsageError(str(e)) from None
    path = save_grid(images, args.out, scale=args.scale)
    print(f"wrote {path} ({args.n} samples from {model.name})")


def add_sample(sub) -> None:
    p = sub.add_parser("sample", help="write a PNG grid of samples",
                       description="Sample from a model. Options of the samplers its prior declares are given as "
                                   "--OPTION VALUE, e.g. --steps 50 --eta 0 for DDIM on a diffusion prior "
                                   "(`zoo plugins` lists the samplers).")
    p.add_argument("model", help="run folder, model name or Hub repo")
    p.add_argument("--n", type=positive_int, default=64, help="how many samples (>= 1)")
    p.add_argument("--out", default="samples.png", help="PNG file to write (not a folder)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling noise")
    p.add_argument("--scale", type=positive_int, default=2, help="enlarge each pixel this many times (>= 1)")
    p.add_argument("--sampler", help="a registered sampler the model's prior declares (default: the one whose "
                                     "options are given, else the prior's own sample)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--trust-modules", action="store_true", help="allow a run whose card names its own Python "
                                                                "classes (bring your own module) to import them")
    p.set_defaults(func=cmd_sample, sampler_options={}, accepts_options=True)


def available_bytes() -> int | None:
    """Memory this process could still get (MemAvailable), or None where it is not known."""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import os

        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_allocation(n: int, model, flag: str) -> None:
    """Refuse ``n`` images that could not be held in memory (float32 samples, their latents and the grid: about
    three copies), naming the flag, before anything is allocated."""
    import math

    per_image = 4 * (math.prod(model.data_shape) * 3 + math.prod(model.latent_shape))
    need, have = n * per_image, available_bytes()
    if have is not None and need > have:
        raise ZooError(f"{flag} {n}: {n} samples of shape {list(model.data_shape)} need about {need / 2**30:.1f} GiB "
                       f"of memory, more than the {have / 2**30:.1f} GiB available; ask for fewer "
                       f"(at most about {max(1, have // per_image)})")


# -- diagnose -------------------------------------------------------------------------------------
def run_data(name: str, model) -> str:
    """The default ``--data`` of a command on ``name``: a run folder's own training data (its card's
    ``results.dataset``: what ``zoo train --data`` used), else the card's data source."""
    from zoo.loading import resolve

    try:
        kind, _ = resolve(name)
    except Exception:  # noqa: BLE001 - loaded already; only the default is decided here
        kind = None
    results = model.card.spec.results if getattr(model, "card", None) is not None else None
    if kind == "folder" and results is not None and results.dataset is not None:
        return results.dataset
    return model.card.spec.data.source


def cmd_diagnose(args) -> None:
    from zoo.allocator import tune_allocator

    tune_allocator()  # before torch allocates anything (zoo.allocator)
    from zoo.diagnostics import diagnose, format_report
    from zoo.loading import load

    if args.plot:
        from zoo.store.images import check_png_path

        check_png_path(args.plot, "--plot")
    model = load(args.model, pretrained=True, trust_modules=args.trust_modules)
    data = args.data or run_data(args.model, model)
    try:
        report = diagnose(model, data, split=args.split, iwae_k=args.k, max_points=args.max_points,
                          image_key=args.image_key, seed=args.seed, data_config=args.data_config,
                          fit_points=args.fit_points, mi_split=None if args.mi_split == "same" else args.mi_split)
    except ValueError as e:
        if "fit_points" not in str(e):
            raise
        raise UsageError(f"--fit-points: {e}") from None
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    if args.plot:
        from zoo.plots import plot_report

        try:
            print(f"wrote {plot_report(report, args.plot)}", file=sys.stderr if args.json else sys.stdout)
        except ValueError as e:
            raise ZooError(f"--plot: {e}") from None


def add_diagnose(sub) -> None:
    p = sub.add_parser("diagnose", help="ELBO, rate/distortion, MI, active units, IWAE NLL")
    p.add_argument("model", help="run folder, model name or Hub repo")
    p.add_argument("--data", help="data spec (default: a run folder's own training data, else the model card's)")
    p.add_argument("--split", default="test", help="split to measure on")
    p.add_argument("--image-key", help="the image column of --data (default: the card's, else the first image column)")
    p.add_argument("--data-config", help="the configuration of a Hub dataset with several (datasets' name=)")
    p.add_argument("--iwae-k", "--k", dest="k", type=count_int, default=100,
                   help="IWAE samples (zoo.diagnose(..., iwae_k=)); 0: skip the IWAE estimate")
    p.add_argument("--seed", type=int, help="seed of every random draw (default: one of the model's own, from its name)")
    p.add_argument("--max-points", type=positive_int, default=10000, help="evaluate at most this many images (>= 1)")
    p.add_argument("--fit-points", type=count_int, default=None, metavar="N",
                   help="for a likelihood with fitted parameters (e.g. the noise scale of a deterministic decoder): "
                        "fit them on the first N images and evaluate the rest (default: a quarter; 0: keep the "
                        "card's values)")
    p.add_argument("--mi-split", default="auto", metavar="SPLIT",
                   help="split of the I_q terms (I_q, marginal KL, total correlation): 'auto' (default: --split's, "
                        "or the train split's more points when --split's I_q is saturated), 'same', or a split name")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.add_argument("--plot", metavar="PNG", help="also draw the series the model declares (per-step bound terms, KL per layer, ...) "
                                                      "and KL per dimension / active units")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--trust-modules", action="store_true", help="allow a run whose card names its own Python "
                                                                "classes (bring your own module) to import them")
    p.set_defaults(func=cmd_diagnose)
