"""Regenerate README's model table from the installed cards (tests/test_pretrained.py checks it is current).

    python tools/model_table.py           # rewrite the table between the markers in README.md
    python tools/model_table.py --check   # exit 1 when README's table differs from the cards
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def main(argv: list[str] | None = None) -> int:
    from zoo.cards.table import with_model_table
    from zoo.store.atomic import write_atomic

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare, do not write")
    args = parser.parse_args(argv)
    text = README.read_text()
    fresh = with_model_table(text)
    if args.check:
        print("README's model table is current" if fresh == text else "README's model table is stale")
        return 0 if fresh == text else 1
    if fresh != text:
        write_atomic(README, fresh)
    print(f"wrote the model table in {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
