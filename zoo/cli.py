"""The ``zoo`` command line."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from importlib import import_module

from .errors import ZooError

# modules that add their own subcommands: each defines add_commands(subparsers)
COMMAND_MODULES: tuple[str, ...] = ("zoo.hub_cli", "zoo.sweep")


def cmd_list(args) -> None:
    from .catalog import list_models

    for name in list_models(args.pattern):
        print(name)


def cmd_info(args) -> None:
    from .catalog import get_card

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
    w = z.get("weights")
    print(f"  weights   {w['repo']}@{w.get('revision', 'main')}/{w['file']}" if w else "  weights   none published (train it: zoo train NAME)")
    for key, value in (z.get("results") or {}).items():
        print(f"  result    {key}: {value}")


def cmd_plugins(args) -> None:
    from .registry import KINDS, get_registry

    reg = get_registry()
    rows = [(kind, c.name, str(c.owner)) for kind in KINDS for c in sorted(reg.components[kind].values(), key=lambda c: c.name)]
    rows += [("card", c.name, str(c.owner)) for c in sorted(reg.cards.values(), key=lambda c: c.name)]
    if args.json:
        print(json.dumps([{"kind": k, "name": n, "plugin": o} for k, n, o in rows]
                         + [{"failure": str(f)} for f in reg.failures], indent=2))
        return
    width = max((len(n) for _, n, _ in rows), default=4)
    for kind, name, owner in rows:
        print(f"{kind:8s} {name:{width}s}  {owner}")
    for (kind, name), owners in reg.conflicts.items():
        print(f"CONFLICT {kind} {name!r}: " + " and ".join(str(o) for o in owners))
    for failure in reg.failures:
        print(f"FAILED   {failure}", file=sys.stderr)


def cmd_train(args) -> None:
    from .diagnostics import format_report
    from .trainer import train

    options = {k: getattr(args, k) for k in TRAIN_OPTIONS}
    result = train(args.name, out=args.out, data=args.data, beta=args.beta, resume=args.resume,
                   overwrite=args.overwrite, progress=not args.quiet,
                   command=shlex.join(["zoo", *sys.argv[1:]]) if sys.argv[0].endswith("zoo") else None,
                   **options)
    if not result.report:  # not the main process of a distributed run
        return
    print(format_report(result.report))
    extra = ", model_raw.safetensors" if result.report.get("weights") == "ema" else ""
    print(f"wrote {result.folder}/ (model.safetensors [{result.report.get('weights', 'raw')} weights]{extra}, "
          f"config.json, README.md, checkpoints/, metrics.csv, tensorboard/, samples/)")


# `zoo train` flags that override the card's training recipe (TrainConfig fields)
TRAIN_OPTIONS = ("epochs", "steps", "batch_size", "lr", "seed", "device", "precision", "grad_clip",
                 "grad_accum", "lr_schedule", "warmup_steps", "weight_decay", "optimizer", "ema",
                 "checkpoint_every", "keep_checkpoints", "log_every", "eval_every", "sample_every",
                 "streaming", "algorithm", "em_iters")


def add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a named model",
                       description="Train a named model with its card's recipe; flags override the recipe. "
                                   "Multi-GPU / multi-node: accelerate launch --multi_gpu --num_processes N -m zoo.cli train ... (or torchrun --nproc_per_node N -m zoo.cli train ...)")
    p.add_argument("name")
    p.add_argument("--data", help="zoo:mnist-5k, zoo:digits, a Hub dataset id or a local path (default: the card's)")
    p.add_argument("--out", required=True, help="run folder to write")
    p.add_argument("--resume", action="store_true", help="continue from the newest good checkpoint in --out")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--epochs", type=int)
    p.add_argument("--steps", type=int, help="optimiser steps (takes precedence over --epochs)")
    p.add_argument("--batch-size", type=int, help="global batch per optimiser step (all processes)")
    p.add_argument("--lr", type=float)
    p.add_argument("--beta", type=float, help="override the card's beta")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto (default: cuda, then mps, then cpu), cpu, cuda, cuda:1, mps")
    p.add_argument("--precision", choices=["no", "fp32", "bf16", "fp16"], help="mixed precision (fp16: GPU only)")
    p.add_argument("--grad-clip", type=float, help="clip the global gradient norm")
    p.add_argument("--grad-accum", type=int, help="micro-batches per optimiser step")
    p.add_argument("--lr-schedule", choices=["constant", "cosine", "linear"])
    p.add_argument("--warmup-steps", type=int)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--optimizer", choices=["adam", "adamw"])
    p.add_argument("--ema", type=float, help="EMA decay of the weights, e.g. 0.9999 (0 = off)")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    p.add_argument("--keep-checkpoints", type=int, help="how many checkpoints to keep")
    p.add_argument("--log-every", type=int, help="steps between metric rows")
    p.add_argument("--eval-every", type=int, help="steps between held-out ELBO evaluations (0: end only)")
    p.add_argument("--sample-every", type=int, help="steps between sample grids (0: end only)")
    p.add_argument("--streaming", action="store_true", default=None,
                   help="stream the data set (Hugging Face datasets) instead of loading it into memory")
    p.add_argument("--algorithm", choices=["gradient", "em"], help="gradient (default) or em (Gaussian mixtures)")
    p.add_argument("--em-iters", type=int, help="EM: at most this many iterations")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


def cmd_sample(args) -> None:
    import torch

    from .images import save_grid
    from .loading import load

    model = load(args.model, pretrained=True)
    generator = torch.Generator(device=model.device).manual_seed(args.seed)
    if args.steps is not None or args.eta is not None:  # diffusion priors: DDIM with S steps
        from zoo_plugins.diffusion import DDPMPrior, sample

        if not isinstance(model.prior, DDPMPrior):
            raise ZooError(f"--steps/--eta need a model with a ddpm prior; {model.name!r} has "
                           f"{type(model.prior).__name__}")
        try:
            images = sample(model, args.n, steps=args.steps, eta=args.eta or 0.0, generator=generator,
                            progress=True)
        except ValueError as e:
            raise ZooError(str(e)) from None
    else:
        images = model.sample(args.n, generator=generator)
    path = save_grid(images, args.out, scale=args.scale)
    print(f"wrote {path} ({args.n} samples from {model.name})")


def cmd_diagnose(args) -> None:
    from .diagnostics import diagnose, format_report
    from .loading import load

    model = load(args.model, pretrained=True)
    data = args.data or model.config["data"]["source"]
    report = diagnose(model, data, split=args.split, iwae_k=args.k, max_points=args.max_points)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    if args.plot:
        from .plots import plot_report

        try:
            print(f"wrote {plot_report(report, args.plot)}", file=sys.stderr if args.json else sys.stdout)
        except ValueError as e:
            raise ZooError(f"--plot: {e}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoo", description="latent-zoo: latent-variable generative models")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list named models")
    p.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'vae-*'")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="show a model's card")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("plugins", help="list encoders, decoders, priors and cards with their plugins")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plugins)

    add_train_parser(sub)

    p = sub.add_parser("sample", help="write a PNG grid of samples")
    p.add_argument("model", help="run folder, model name or Hub repo")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--out", default="samples.png")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", type=int, default=2, help="enlarge each pixel (small images)")
    p.add_argument("--steps", type=int, help="diffusion models: DDIM with this many steps (default: ancestral, all T)")
    p.add_argument("--eta", type=float, help="diffusion models: DDIM noise, 0 deterministic .. 1 DDPM-like (default 0)")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("diagnose", help="ELBO, rate/distortion, MI, active units, IWAE NLL")
    p.add_argument("model", help="run folder, model name or Hub repo")
    p.add_argument("--data", help="data spec (default: the model card's)")
    p.add_argument("--split", default="test")
    p.add_argument("--k", type=int, default=100, help="IWAE samples")
    p.add_argument("--max-points", type=int, default=10000)
    p.add_argument("--json", action="store_true")
    p.add_argument("--plot", metavar="PNG", help="also draw the L_t curve (diffusion) or KL per dimension / active units")
    p.set_defaults(func=cmd_diagnose)

    for module in COMMAND_MODULES:
        import_module(module).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except ZooError as e:
        print(f"zoo {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
