"""Train the cards on embedded data with their own command and ship the weights inside the package.

    python tools/ship_weights.py vae-mnist gmm-digits      # these cards
    python tools/ship_weights.py --all                      # every card whose data is zoo:mnist-5k / zoo:digits
    python tools/ship_weights.py --all --check              # only check what is shipped (sizes, hashes, results)
    python tools/ship_weights.py --measure vae-mnist        # re-measure a card's results from its packaged
                                                            # weights (no training; training facts kept)

For each card:
  1. ``zoo train NAME --data SOURCE --out runs/ship/NAME --quiet`` (the card's own recipe, offline; a finished
     run folder there is reused unless ``--retrain``);
  2. the run's ``model.safetensors`` (float32; the EMA weights where the recipe keeps an EMA) is copied to
     ``cards/weights/NAME.safetensors`` and its sha256 taken;
  3. the card's ``zoo.weights`` becomes ``{repo, file, packaged, sha256}``: the packaged file, and the Hub path
     ``zoo push`` would publish it to (no revision: not published; a maintainer who pushes pins the revision,
     and the loader then prefers the Hub file, with the packaged copy, the same bytes, as its offline fallback);
  4. the card's results are measured again from exactly the packaged file (``zoo.load(NAME)`` ->
     ``zoo.cards.measured.measure_results``) and written with the run's training facts (steps, time, command);
     the card body's results section is re-rendered.
All packaged files together must stay within 20 MB (float32).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CARDS = ROOT / "cards"
WEIGHTS = CARDS / "weights"
BUDGET_BYTES = 20 * 10 ** 6
EMBEDDED = ("zoo:mnist-5k", "zoo:digits", "zoo:shapes")  # the embedded (or generated) data sets
HUB_ORG = "latent-zoo"  # where `zoo push` would publish the shipped weights (not published yet: no revision)
TRAINING_FACTS = ("dataset", "split", "split_label", "beta", "seed", "steps", "train_seconds", "zoo_version",
                  "command", "weights", "mixed_precision", "processes", "batch_size", "ema", "dataset_revision", "best")


def embedded_cards() -> list[str]:
    import zoo

    return [n for n in zoo.list_models() if zoo.get_card(n).zoo["data"]["source"] in EMBEDDED]


def train(name: str, runs: Path, retrain: bool) -> Path:
    import zoo

    out = runs / name
    if (out / "model.safetensors").is_file() and (out / "README.md").is_file() and not retrain:
        print(f"{name}: reusing the finished run {out}")
        return out
    if out.exists():
        shutil.rmtree(out)
    source = zoo.get_card(name).zoo["data"]["source"]
    command = ["zoo", "train", name, "--data", source, "--out", str(out.relative_to(ROOT)), "--quiet"]
    print(f"{name}: {' '.join(command)}", flush=True)
    start = time.time()
    subprocess.run([str(Path(sys.executable).parent / "zoo"), *command[1:]], cwd=ROOT, check=True,
                   env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    print(f"{name}: trained in {time.time() - start:.0f} s", flush=True)
    return out


def ship(name: str, run: Path) -> None:
    import zoo
    from zoo.cards import read_card, with_results_section
    from zoo.cards.edit import set_zoo_fields
    from zoo.cards.measured import measure_results
    from zoo.hub import hash_file
    from zoo.store.atomic import save_atomic

    card = zoo.get_card(name)
    WEIGHTS.mkdir(exist_ok=True)
    target = WEIGHTS / f"{name}.safetensors"
    save_atomic(target, lambda tmp: shutil.copyfile(run / "model.safetensors", tmp))
    weights = {"repo": f"{HUB_ORG}/{name}", "file": "model.safetensors",
               "packaged": target.relative_to(card.path.parent).as_posix(), "sha256": hash_file(target, "sha256")}
    trained = read_card(run / "README.md", name=name).zoo.get("results") or {}
    if trained.get("measured") is False:
        raise SystemExit(f"{name}: the run's final evaluation failed ({trained.get('evaluation_error')})")
    facts = {k: trained[k] for k in TRAINING_FACTS if k in trained}
    set_zoo_fields(card.path, {"weights": weights, "results": facts or None})
    model = zoo.load(name)                              # exactly the packaged file, sha256-checked
    assert model.info["source"] == "packaged", model.info
    measured = measure_results(model, zoo.get_card(name))
    results = {**measured, **facts}
    card = zoo.get_card(name).with_results(results)
    set_zoo_fields(card.path, {"results": results}, body=with_results_section(card.body, card))
    print(f"{name}: shipped {target.relative_to(ROOT)} ({target.stat().st_size / 1e6:.2f} MB), "
          f"ELBO {results.get('elbo')} (train run: {trained.get('elbo')})", flush=True)


def remeasure(name: str) -> None:
    """Measure the card's results again from exactly its packaged weights (as step 4), keeping the training facts
    (steps, time, command, seed) its results already hold; nothing is trained."""
    import zoo
    from zoo.cards import with_results_section
    from zoo.cards.edit import set_zoo_fields
    from zoo.cards.measured import measure_results

    card = zoo.get_card(name)
    if not (card.zoo.get("weights") or {}).get("packaged"):
        raise SystemExit(f"{name}: no packaged weights to re-measure (cards/{name}.md has no zoo.weights.packaged)")
    old = card.zoo.get("results") or {}
    facts = {k: old[k] for k in TRAINING_FACTS if k in old}
    start = time.time()
    model = zoo.load(name)                              # exactly the packaged file, sha256-checked
    assert model.info["source"] == "packaged", model.info
    results = {**measure_results(model, card), **facts}
    card = card.with_results(results)
    set_zoo_fields(card.path, {"results": results}, body=with_results_section(card.body, card))
    print(f"{name}: re-measured in {time.time() - start:.0f} s: ELBO {results.get('elbo')} (was {old.get('elbo')}), "
          f"I_q {results.get('mutual_information')} [{results.get('mutual_information_kind')}, split "
          f"{results.get('mi_split')}] (was {old.get('mutual_information')})", flush=True)


def check() -> int:
    import zoo
    from safetensors import safe_open

    total = 0
    for name in embedded_cards():
        card = zoo.get_card(name)
        spec = card.zoo.get("weights") or {}
        if not spec.get("packaged"):
            print(f"{name}: NOT SHIPPED")
            continue
        path = card.path.parent / spec["packaged"]
        total += path.stat().st_size
        with safe_open(path, "pt") as f:
            dtypes = {str(f.get_slice(k).get_dtype()) for k in f.keys()}
        print(f"{name:24s} {path.stat().st_size / 1e6:6.2f} MB  dtypes {sorted(dtypes)}  "
              f"ELBO {(card.zoo.get('results') or {}).get('elbo')}")
    print(f"total {total / 1e6:.2f} MB of {BUDGET_BYTES / 1e6:.0f} MB")
    return 0 if total <= BUDGET_BYTES else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="cards to train and ship")
    parser.add_argument("--all", action="store_true", help="every card on embedded data")
    parser.add_argument("--retrain", action="store_true", help="train again even where a finished run exists")
    parser.add_argument("--check", action="store_true", help="only report what is shipped")
    parser.add_argument("--measure", action="store_true",
                        help="only re-measure the cards' results from their packaged weights (no training)")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "ship", help="where the runs go")
    args = parser.parse_args(argv)
    if args.check:
        return check()
    names = embedded_cards() if args.all else args.names
    if not names:
        parser.error("give card names or --all")
    for name in names:
        if args.measure:
            remeasure(name)
            continue
        ship(name, train(name, args.runs.resolve(), args.retrain))
    return check()


if __name__ == "__main__":
    sys.exit(main())
