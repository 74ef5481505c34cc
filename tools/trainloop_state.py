"""Where TrainLoop's state is first set: the class's length in lines, the attributes its ``__init__`` assigns, and
the attributes first assigned in another method (read from the source with ``ast``; =, +=, annotated and tuple
targets on ``self``), plus the attributes ``train()`` sets on the loop from outside.

    python tools/trainloop_state.py                      # zoo/training/loop.py
    git show REV:zoo/training/loop.py > /tmp/loop.py && python tools/trainloop_state.py /tmp/loop.py
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path


def assigned(fn: ast.AST, name: str = "self") -> set[str]:
    out = set()
    for node in ast.walk(fn):
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else [])
        for target in targets:
            for e in ast.walk(target):
                if (isinstance(e, ast.Attribute) and isinstance(e.value, ast.Name) and e.value.id == name
                        and isinstance(e.ctx, ast.Store)):
                    out.add(e.attr)
    return out


def main(path: str) -> None:
    tree = ast.parse(Path(path).read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "TrainLoop")
    methods = [f for f in cls.body if isinstance(f, ast.FunctionDef)]
    init = assigned(next(f for f in methods if f.name == "__init__"))
    later = set().union(*(assigned(f) - init for f in methods if f.name != "__init__"))
    train = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "train"), None)
    outside = assigned(train, "loop") - init if train is not None else set()
    print(f"class TrainLoop: {cls.end_lineno - cls.lineno + 1} lines")
    print(f"attributes set in __init__: {len(init)}")
    print(f"attributes first set in another method: {len(later)} {sorted(later)}")
    print(f"attributes train() sets on the loop that __init__ does not: {len(outside)} {sorted(outside)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).resolve().parents[1] / "zoo/training/loop.py"))
