"""``zoo evaluate RUN_OR_NAME --data SPEC --metrics fid,kid,prc``: sample quality offline (torch-fidelity)."""
from __future__ import annotations

import json


def format_quality(report: dict) -> str:
    """One line per metric, and the features that made them."""
    lines = [f"sample quality of {report['model']}: {report['n_generated']} samples against "
             f"{report['reference']} ({report['n_reference']} images)"]
    for key, label in (("fid", "FID"), ("kid", "KID"), ("precision", "precision"), ("recall", "recall")):
        if key in report:
            extra = f" +- {report['kid_std']:.4g} (std over subsets)" if key == "kid" and "kid_std" in report else ""
            lines.append(f"  {label:10s} {report[key]:.4g}{extra}")
    lines.append(f"  features   {report['features']} (sha256 {report['features_sha256'][:16]}...)")
    lines.append(f"  computed by {report['metrics_by']}, seed {report['seed']}")
    return "\n".join(lines)


def cmd_evaluate(args) -> None:
    from zoo.allocator import tune_allocator

    tune_allocator()  # before torch allocates anything (zoo.allocator)
    from zoo.errors import UsageError
    from zoo.loading import load, resolve
    from zoo.quality.evaluate import evaluate_model, quality_results, record_in_card, record_in_folder

    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    model = load(args.model, pretrained=True)
    data = args.data or model.config["data"]["source"]
    report = evaluate_model(model, data, split=args.split, n=args.n, metrics=metrics, features=args.features,
                            inception_path=args.inception_weights, seed=args.seed)
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
                                                               "weights-inception-2015-12-05-6726825d.pth)")
    p.add_argument("--seed", type=int, help="seed of the samples (default: one of the model's own)")
    p.add_argument("--update-card", action="store_true", help="for a named model: write the results into its card file")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.set_defaults(func=cmd_evaluate)
