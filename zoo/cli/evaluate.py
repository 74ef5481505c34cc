"""``zoo evaluate RUN_OR_NAME --data SPEC --metrics fid,kid,prc``: sample quality offline (torch-fidelity)."""
from __future__ import annotations

import json


def format_quality(report: dict) -> str:
    """One line per metric (mean +- SE over the sample seeds, the floor of the model's space beside it), and the
    features that made them."""
    seeds = report.get("seeds") or [report.get("seed")]
    lines = [f"sample quality of {report['model']}: {report['n_generated']} samples per seed, {len(seeds)} seed(s), "
             f"against {report['reference']} ({report['n_reference']} images)"]
    if report.get("data_space"):
        lines.append(f"  data space {report['data_space']}")
    lines.append(f"  {'':10s} {'model (mean +- SE over seeds)':32s} floor: test vs train, same space (mean +- SE)")

    def cell(prefix: str, key: str) -> str:
        if f"{prefix}{key}" not in report:
            return "n/a"
        se = report.get(f"{prefix}{key}_se")
        return f"{report[prefix + key]:.4g}" + (f" +- {se:.2g}" if se is not None else " (one seed: no SE)")

    for key, label in (("fid", "FID"), ("kid", "KID"), ("precision", "precision"), ("recall", "recall")):
        if key in report:
            lines.append(f"  {label:10s} {cell('', key):32s} {cell('floor_', key)}")
    if report.get("floor"):
        lines.append(f"  floor      {report['floor']}")
    lines.append(f"  features   {report['features']} (sha256 {report['features_sha256'][:16]}...)")
    lines.append(f"  samples    {report.get('samples', '')}; sampler: {report.get('sampler', 'ancestral')}")
    lines.append(f"  computed by {report['metrics_by']}, seeds {', '.join(map(str, seeds))}")
    return "\n".join(lines)


def cmd_evaluate(args) -> None:
    from zoo.allocator import tune_allocator

    tune_allocator()  # before torch allocates anything (zoo.allocator)
    from zoo.errors import UsageError
    from zoo.loading import load, resolve
    from zoo.quality.evaluate import quality_results, record_in_card, record_in_folder
    from zoo.quality.seeds import evaluate_over_seeds

    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    from zoo.cli.commands import run_data

    model = load(args.model, pretrained=True, trust_modules=args.trust_modules)
    data = args.data or run_data(args.model, model)
    report = evaluate_over_seeds(model, data, split=args.split, n=args.n, metrics=metrics, features=args.features,
                                 inception_path=args.inception_weights, seed=args.seed, seeds=args.seeds,
                                 sampler={"name": args.sampler, **({"steps": args.sampler_steps} if args.sampler_steps
                                                                   else {})} if args.sampler else None)
    kind, target = resolve(args.model)
    results = quality_results(report)
    if kind == "folder":
        record_in_folder(target, results)
        report["recorded_in"] = f"{target}/README.md"
    elif args.update_card:
        if kind != "card":
            raise UsageError("--update-card: only a named card's file can be updated (a run folder always is)")
        from zoo.cards.catalog import get_card

        path = get_card(target).path
        record_in_card(path, results)
        report["recorded_in"] = str(path)
    print(json.dumps(report, indent=2) if args.json else format_quality(report)
          + (f"\n  recorded in {report['recorded_in']}" if report.get("recorded_in") else ""))


def add_parser(sub) -> None:
    from zoo.cli.commands import positive_int

    p = sub.add_parser("evaluate", help="sample quality: FID, KID, precision/recall (torch-fidelity, offline)",
                       description="Samples of the model against a data split. Features: the small CNN shipped "
                                   "for an embedded data set (zoo:digits, zoo:mnist-5k), else Inception-v3 from a "
                                   "local file (--inception-weights or $ZOO_INCEPTION_WEIGHTS; never downloaded). "
                                   "Results of a run folder go into its README.md and config.json.")
    p.add_argument("model", help="run folder, model name or Hub repo")
    p.add_argument("--data", help="data spec (default: the model card's)")
    p.add_argument("--split", default="test", help="reference split (default: test)")
    p.add_argument("--metrics", default="fid,kid,prc", help="comma-separated: fid, kid, prc (precision/recall)")
    p.add_argument("--n", type=positive_int, help="reference images and samples (default: the whole split)")
    p.add_argument("--features", help="a registered feature network (e.g. digits-cnn) or 'inception' "
                                      "(default: the network of --data, else inception)")
    p.add_argument("--inception-weights", metavar="PATH", help="Inception-v3 weights file (torch-fidelity's "
                                                               "weights-inception-2015-12-05-6726825d.pth; its sha256 "
                                                               "is checked before it is read, as tensors only)")
    p.add_argument("--seed", type=int, help="first seed of the samples (default: one of the model's own)")
    p.add_argument("--seeds", type=positive_int, default=5, help="sample draws (seeds SEED, SEED+1, ...): each metric "
                                                                 "is their mean +- SE (default 5)")
    p.add_argument("--sampler", help="registered sampler for the samples when the model's prior declares it (e.g. "
                                     "ddim; default: the model's own sampling); the report names it")
    p.add_argument("--sampler-steps", type=positive_int, help="steps of --sampler (e.g. 50)")
    p.add_argument("--update-card", action="store_true", help="for a named model: write the results into its card file")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--trust-modules", action="store_true", help="allow a run whose card names its own Python "
                                                                "classes (bring your own module) to import them")
    p.set_defaults(func=cmd_evaluate)
