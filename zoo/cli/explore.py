"""``zoo traverse`` and ``zoo interpolate``: PNG grids of what the latent dimensions draw (zoo.traversal)."""
from __future__ import annotations

from pathlib import Path

from zoo.errors import UsageError


def _out_png(out: str) -> None:
    from zoo.store.images import check_png_path

    check_png_path(out, "--out")


def _model_and_data(args):
    from zoo.data import card_source_options, load_tensors
    from zoo.loading import load

    from zoo.cli.commands import run_data

    model = load(args.model, pretrained=True)
    spec = args.data or run_data(args.model, model)
    options = card_source_options(spec, model.card.spec.data if model.card is not None else {},
                                  args.image_key)
    return model, spec, load_tensors(spec, args.split, **options)[:args.max_points]


def cmd_traverse(args) -> None:
    from zoo.errors import InputError
    from zoo.store.images import save_grid
    from zoo.traversal import traverse

    _out_png(args.out)
    model, spec, data = _model_and_data(args)
    reference = "zero" if args.reference == "zero" else _index(args.reference)
    try:
        t = traverse(model, data, dims=args.dims, steps=args.steps, span=args.span, reference=reference,
                     max_dims=args.max_dims)
    except InputError as e:
        raise UsageError(str(e)) from None
    path = save_grid(t.images, args.out, nrow=args.steps, scale=args.scale, row_labels=t.labels)
    where = "z = 0" if reference == "zero" else f"the posterior mean of image {reference} of {spec} [{args.split}]"
    print(f"wrote {path}: {len(t.dims)} latent dimensions x {args.steps} steps (offsets {t.offsets[0]:+g} .. "
          f"{t.offsets[-1]:+g} around {where}); rows by KL: "
          + ", ".join(f"z{d} {k:.2f}" for d, k in zip(t.dims, t.kl)) + " nats")


def _index(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"--reference {text!r}: expected an image index (0, 1, ...) or 'zero'") from None


def add_traverse(sub) -> None:
    p = sub.add_parser("traverse", help="PNG grid: one row per latent dimension (sorted by KL), decoded along a sweep",
                       description="Decode a sweep of each latent coordinate around a reference latent; rows are "
                                   "sorted by the dimension's KL (nats, written beside each row).")
    p.add_argument("model", help="run folder, model name or Hub repo")
    p.add_argument("--dims", default="auto", help="'auto' (the active dimensions, Cov_x E_q[z_d] > 0.01), 'all', or "
                                                   "indices like 0,3,5 (default auto)")
    p.add_argument("--steps", type=int, default=9, help="images per row (>= 2)")
    p.add_argument("--span", type=float, default=2.5, help="offsets from -SPAN to +SPAN around the reference")
    p.add_argument("--reference", default="0", help="index of the image whose posterior mean is the centre, or 'zero'")
    p.add_argument("--max-dims", type=_positive, default=16, help="at most this many rows with --dims auto")
    _common(p, "traverse.png")
    p.set_defaults(func=cmd_traverse)


def cmd_interpolate(args) -> None:
    import torch

    from zoo.errors import InputError
    from zoo.store.images import save_grid
    from zoo.traversal import interpolate, pick_pairs

    _out_png(args.out)
    model, spec, data = _model_and_data(args)
    try:
        a, b = pick_pairs(len(data), args.pairs, args.seed)
        images = interpolate(model, data[a], data[b], steps=args.steps)
    except InputError as e:
        raise UsageError(str(e)) from None
    if args.with_inputs:  # the two images themselves at the row's ends
        ends = torch.stack([data[a].float() / 255, data[b].float() / 255], 1) if data.dtype == torch.uint8 else \
            torch.stack([data[a].float(), data[b].float()], 1)
        rows = images.reshape(args.pairs, args.steps, *images.shape[1:])
        images = torch.cat([ends[:, :1], rows, ends[:, 1:]], 1).flatten(0, 1)
    steps = args.steps + (2 if args.with_inputs else 0)
    path = save_grid(images, args.out, nrow=steps, scale=args.scale)
    print(f"wrote {path}: {args.pairs} pairs of {spec} [{args.split}] images (seed {args.seed}) x {args.steps} steps "
          f"of slerp between their posterior means")


def add_interpolate(sub) -> None:
    p = sub.add_parser("interpolate", help="PNG grid: slerp between the posterior means of pairs of images, decoded")
    p.add_argument("model", help="run folder, model name or Hub repo")
    p.add_argument("--pairs", type=_positive, default=8, help="pairs of images (rows)")
    p.add_argument("--steps", type=int, default=8, help="images per row (>= 2; the ends decode the two means)")
    p.add_argument("--seed", type=int, default=0, help="seed of the choice of pairs")
    p.add_argument("--with-inputs", action="store_true", help="also show the two input images at the row's ends")
    _common(p, "interpolate.png")
    p.set_defaults(func=cmd_interpolate)


def _positive(text: str) -> int:
    from zoo.cli.commands import positive_int

    return positive_int(text)


def _common(p, default_out: str) -> None:
    from zoo.cli.commands import positive_int

    p.add_argument("--data", help="data spec (default: the model card's)")
    p.add_argument("--split", default="test", help="split the images come from (default test)")
    p.add_argument("--image-key", help="the image column of --data")
    p.add_argument("--max-points", type=positive_int, default=2000, help="images used for the KL per dimension")
    p.add_argument("--scale", type=positive_int, default=2, help="enlarge each pixel this many times")
    p.add_argument("--out", default=default_out, help="PNG file to write (not a folder)")
