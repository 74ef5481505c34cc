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
    from zoo.cards.catalog import list_models

    for name in list_models(args.pattern, pretrained=args.pretrained):
        print(name)


def add_list(sub) -> None:
    p = sub.add_parser("list", help="list named models")
    p.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'vae-*'")
    p.add_argument("--pretrained", action="store_true",
                   help="only models with weights to load (packaged with latent-zoo, or pinned on the Hub)")
    p.set_defaults(func=cmd_list)


def cmd_info(args) -> None:
    from zoo.cards.catalog import get_card

    card = get_card(args.name)
    if args.json:
        print(json.dumps({"name": card.name, "zoo": card.zoo, "metadata": card.metadata}, indent=2))
        return
    z = card.zoo
    print(f"{card.name}: {z.get('description', '')}".rstrip(": "))
    print(f"  card      {card.path}")
    print(f"  data      {z['data']['source']}  shape {z['data']['shape']}")
    print(f"  latent    shape {z['latent']['shape']}")
    for kind in ("encoder", "decoder", "prior"):
        name, kwargs = card.component(kind)
        print(f"  {kind:9s} {name} {kwargs if kwargs else ''}".rstrip())
    print(f"  objective beta={card.beta}")
    if z.get("train"):
        print(f"  train     {z['train']}")
    if z.get("sampler"):
        print(f"  sampler   {z['sampler']}")
    w = z.get("weights")
    files = (", ".join(f"{k}: {v}" for k, v in w["file"].items()) if isinstance(w["file"], dict) else w["file"]) \
        if w else None
    print(f"  weights   {w['repo']}@{w.get('revision', 'main')}/{files}" if w
          else "  weights   none published (train it: zoo train NAME)")
    for key, value in (z.get("results") or {}).items():
        print(f"  result    {key}: {value}")


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
    qwidth = max((len(q) for _, _, q, _ in rows), default=4)
    for kind, name, qualified, owner in rows:
        print(f"{kind:10s} {name:{width}s}  {qualified:{qwidth}s}  {owner}")
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

    from pathlib import Path

    if Path(args.out).is_dir():
        raise UsageError(f"--out {args.out} is a folder; give the PNG file to write, e.g. {Path(args.out) / 'samples.png'}")
    model = load(args.model, pretrained=True)
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
    p.set_defaults(func=cmd_sample, sampler_options={}, accepts_options=True)


# -- diagnose -------------------------------------------------------------------------------------
def cmd_diagnose(args) -> None:
    from zoo.diagnostics import diagnose, format_report
    from zoo.loading import load

    model = load(args.model, pretrained=True)
    data = args.data or model.config["data"]["source"]
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
    p.add_argument("--data", help="data spec (default: the model card's)")
    p.add_argument("--split", default="test", help="split to measure on")
    p.add_argument("--image-key", help="the image column of --data (default: the card's, else the first image column)")
    p.add_argument("--data-config", help="the configuration of a Hub dataset with several (datasets' name=)")
    p.add_argument("--k", type=count_int, default=100, help="IWAE samples (0: skip the IWAE estimate)")
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
    p.add_argument("--plot", metavar="PNG", help="also draw the L_t curve (diffusion) or KL per dimension / active units")
    p.set_defaults(func=cmd_diagnose)
