"""The import graph of the core package ``zoo/``, drawn from its own source, and its layers.

    python tools/import_graph.py [ROOT] [--edges] [--layers]

Every ``import`` / ``from ... import`` anywhere in a module counts (function-local ones too), and so does
``import_module("zoo....")`` with a literal name, and so does an ``if TYPE_CHECKING:`` block (an annotation names
a module as surely as a call does; a lower module that needs a higher one's type declares a protocol instead).
An arrow ``A -> B`` means module A imports module B (``from zoo.x import y`` points at ``zoo.x.y`` when that is
a module, else at ``zoo.x``).  ``zoo`` itself is the lazy facade (``zoo/__init__.py`` imports nothing heavy and
resolves its public names on first use), so arrows to it are not drawn and it has no layer.

Dependencies run one way (DESIGN.md, issue 23):

    base and contracts -> model -> registry and cards -> assembler -> store and hub -> loader -> training, diagnostics, CLI

A module may import modules of its own layer or of a lower one, never of a higher one, and no module may take
part in a circle.  ``LAYERS`` puts every module of ``zoo/`` in exactly one layer; a module missing from it is
reported (``unplaced``), so a new module is placed by whoever adds it.  tests/test_contracts.py checks all this.
"""
from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

# layer name -> the modules in it, lowest layer first.  The comment of each group says why it sits there.
LAYERS: dict[str, tuple[str, ...]] = {
    # Base: the contract and what every layer may use; none of it knows a model, a card or a file layout.
    # (distributions / outputs are the contract's value types; store.atomic is one atomic file write; allocator,
    # sizeguard and progress are process utilities; decomposition, disentanglement and verdict are pure maths and
    # formatting over tensors / numbers; data_space names a likelihood's data space.)
    "base": (
        "zoo.errors", "zoo.hookspecs", "zoo.contracts", "zoo.distributions", "zoo.outputs", "zoo.progress",
        "zoo.allocator", "zoo.sizeguard", "zoo.decomposition", "zoo.disentanglement", "zoo.verdict",
        "zoo.data_space", "zoo.store", "zoo.store.atomic", "zoo.quality",
    ),
    # The model: the ELBO maths over three components.  dataset_elbo and denoiser_information compute bounds and
    # information terms from a model's outputs over batches (they read no card and no registry).
    "model": (
        "zoo.model", "zoo.dataset_elbo", "zoo.denoiser_information",
    ),
    # Registry and cards: what is installed (plugins, named cards) and the card format.  Things looked up in the
    # registry by name sit here too: samplers, likelihood families, data sources and the data they load
    # (data/ resolves 'zoo:NAME' through registered sources), the pixel baselines over that data, and adapters
    # (an encoder wrapper that imports the class a card names through the registry's path resolution).
    "registry": (
        "zoo.registry", "zoo.sampling", "zoo.likelihoods", "zoo.adapters",
        "zoo.cards", "zoo.cards.spec", "zoo.cards.schema", "zoo.cards.render", "zoo.cards.hub_schema", "zoo.cards.weights_spec",
        "zoo.cards.edit", "zoo.cards.catalog",
        "zoo.data", "zoo.data.hf", "zoo.data.splits", "zoo.data.embedded", "zoo.data.sources", "zoo.data.images",
        "zoo.data.batches", "zoo.data.factors", "zoo.data.info", "zoo.data.tensors", "zoo.baselines",
    ),
    # The one assembler: card -> components -> LatentModel (bring-your-own modules are component specs).
    "assembler": (
        "zoo.assemble", "zoo.byo",
    ),
    # Files: run folders and safetensors on disk, the Hugging Face Hub; they move and verify files.
    "store and hub": (
        "zoo.store.weights", "zoo.store.run_lock", "zoo.store.run_folder", "zoo.store.images",
        "zoo.hub", "zoo.hub.client", "zoo.hub.publish",
    ),
    # The one loader: (card, weight files) -> model, from a card name, a run folder or a Hub repo; and what
    # `zoo list` / `zoo info` / the README tables say about a model (where its weights load from, its
    # parameter count and data space: they build the card's architecture and look in the Hub cache).
    "loader": (
        "zoo.loading", "zoo.cards.listing", "zoo.cards.table",
    ),
    # Everything that uses a loaded model: training, diagnostics and what is drawn from them (plots, compare,
    # traversal, post-hoc priors, sample quality, the measured results written into cards), the plugin
    # conformance kit (zoo.testing builds and trains small models) and the command line.
    "training, diagnostics, cli": (
        "zoo.training", "zoo.training.config", "zoo.training.ema", "zoo.training.engine", "zoo.training.loop",
        "zoo.training.metrics", "zoo.training.reshape", "zoo.training.state", "zoo.training.stream",
        "zoo.training.sweep", "zoo.training.optim", "zoo.training.record", "zoo.training.resume",
        "zoo.training.run_data", "zoo.training.signals",
        "zoo.diagnostics", "zoo.forward_information", "zoo.traversal", "zoo.plots", "zoo.compare", "zoo.posthoc",
        "zoo.cards.measured",
        "zoo.quality.evaluate", "zoo.quality.features", "zoo.quality.fidelity", "zoo.quality.inception",
        "zoo.quality.seeds",
        "zoo.testing",
        "zoo.cli", "zoo.cli.__main__", "zoo.cli.commands", "zoo.cli.compare", "zoo.cli.evaluate",
        "zoo.cli.explore", "zoo.cli.fit_prior", "zoo.cli.hub", "zoo.cli.sweep", "zoo.cli.train",
    ),
}
FACADE = "zoo"  # zoo/__init__.py: lazy public names, no layer

@dataclass
class Graph:
    modules: dict[str, Path]
    edges: dict[str, set[str]]

    @property
    def arrows(self) -> int:
        return sum(len(v) for v in self.edges.values())


def _modules(root: Path) -> dict[str, Path]:
    mods = {}
    for path in sorted((root / "zoo").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _targets(node: ast.AST, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            name = ".".join(base + ([node.module] if node.module else []))
        else:
            name = node.module or ""
        return [name] + [f"{name}.{a.name}" for a in node.names]
    if (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and ((isinstance(node.func, ast.Name) and node.func.id == "import_module")
                 or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"))):
        return [node.args[0].value]
    return []


def build_graph(root: str | Path) -> Graph:
    """Modules of ``root/zoo`` and the arrows between them (module docstring)."""
    root = Path(root)
    mods = _modules(root)
    edges: dict[str, set[str]] = {}
    for module, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        out: set[str] = set()
        for node in ast.walk(tree):
            for target in _targets(node, module, path.name == "__init__.py"):
                while target and target not in mods:  # the longest prefix that is a module of zoo/
                    target = target.rpartition(".")[0]
                if target and target != module and target != FACADE:
                    out.add(target)
        edges[module] = out
    return Graph(mods, edges)


def circles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph.edges):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.edges.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return sorted(found)


def layer_of() -> dict[str, int]:
    """module -> its layer's position in LAYERS (0 lowest); a module listed twice is an error."""
    where: dict[str, int] = {}
    for position, members in enumerate(LAYERS.values()):
        for module in members:
            if module in where:
                raise ValueError(f"tools/import_graph.py: {module} is in two layers of LAYERS")
            where[module] = position
    return where


def unplaced(graph: Graph) -> list[str]:
    """Modules of zoo/ that LAYERS does not place (the facade aside), and LAYERS entries that are no module."""
    placed = layer_of()
    missing = [m for m in graph.modules if m != FACADE and m not in placed]
    stale = [m for m in placed if m not in graph.modules]
    return sorted(missing) + [f"{m} (in LAYERS, not a module)" for m in sorted(stale)]


def upward(graph: Graph) -> list[tuple[str, str]]:
    """Arrows from a module to one of a higher layer (unplaced modules are left to ``unplaced``)."""
    placed = layer_of()
    return sorted((a, b) for a, targets in graph.edges.items() for b in targets
                  if a in placed and b in placed and placed[b] > placed[a])


def report(graph: Graph, *, edges: bool = False, layers: bool = False) -> str:
    names = list(LAYERS)
    placed = layer_of()
    found = circles(graph)
    up = upward(graph)
    lines = [f"modules {len(graph.modules)}  arrows {graph.arrows}  circles {len(found)}  upward arrows {len(up)}"]
    for circle in found:
        lines.append(f"  circle of {len(circle)}: {', '.join(circle)}")
    pairs: dict[tuple[int, int], list[str]] = {}
    for a, b in up:
        pairs.setdefault((placed[a], placed[b]), []).append(f"{a} -> {b}")
    for (low_layer, high_layer), arrows in sorted(pairs.items()):
        lines.append(f"  upward {names[low_layer]} -> {names[high_layer]}: {len(arrows)}")
        lines += [f"    {arrow}" for arrow in arrows]
    for module in unplaced(graph):
        lines.append(f"  not in LAYERS: {module}")
    if layers:
        lines += [f"layer {i} {name} ({len(members)}): {', '.join(members)}"
                  for i, (name, members) in enumerate(LAYERS.items())]
    if edges:
        lines += [f"{m} -> {', '.join(sorted(graph.edges[m]))}" for m in sorted(graph.edges)]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("-")]
    root = Path(args[0]) if args else Path(__file__).resolve().parents[1]
    graph = build_graph(root)
    print(report(graph, edges="--edges" in argv or "-e" in argv, layers="--layers" in argv))
    bad = circles(graph)
    return 1 if bad or upward(graph) or unplaced(graph) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
