"""plugins/ laid out by family: the old flat module paths still import (one alias table), every registered
import path names a module at its new place, and the plugins' own import graph has no circle."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "plugins"

# the 26 modules that sat flat in plugins/ before the layout by family (git history of plugins/)
FLAT = ["bessel", "categorical", "codes_prior", "datasets", "decoders", "encoders", "feature_nets", "flow_posterior",
        "flow_steps", "flows", "gmm", "gumbel", "hierarchical", "layers", "made", "maf", "objectives_disentangle",
        "objectives_iwae", "posthoc", "priors", "second_stage", "shapes", "spherical", "timm_encoder", "vampprior", "vq"]


def _modules() -> dict[str, Path]:
    """zoo_plugins.* module name -> file, from the files under plugins/."""
    out = {}
    for path in PLUGINS.rglob("*.py"):
        parts = ["zoo_plugins", *path.relative_to(PLUGINS).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The zoo_plugins modules one module imports, function-local imports included (TYPE_CHECKING blocks not)."""
    tree = ast.parse(path.read_text(), str(path))
    skip = {id(sub) for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test) for sub in ast.walk(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                up = up[:len(up) - (node.level - 1)]
                base = ".".join(up + ([node.module] if node.module else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)):
            targets = [node.args[0].value]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target not in (name, "zoo_plugins"):
                found.add(target)
    return found


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module: tools/import_graph.py's, on the plugins' arrows."""
    from tools.import_graph import Graph, circles

    return circles(Graph(modules={}, edges=edges))


def test_plugins_import_graph_has_no_circle():
    modules = _modules()
    edges = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    assert edges["zoo_plugins.discrete.codes_prior"] >= {"zoo_plugins.discrete.vq", "zoo_plugins.discrete.codes"}
    assert "zoo_plugins.discrete.codes_prior" not in edges["zoo_plugins.discrete.vq"]
    assert _circles(edges) == []
    # the scan sees circles: the old edge vq -> codes_prior back in makes one
    edges["zoo_plugins.discrete.vq"].add("zoo_plugins.discrete.codes_prior")
    assert _circles(edges) == [["zoo_plugins.discrete.codes_prior", "zoo_plugins.discrete.vq"]]


def test_only_the_entry_point_sits_at_the_top():
    top = sorted(p.name for p in PLUGINS.glob("*.py"))
    assert top == ["__init__.py", "builtin.py"]
    assert all((d / "__init__.py").is_file() for d in PLUGINS.iterdir() if d.is_dir() and d.name != "__pycache__"
               and d.name != "weights" and any(d.glob("*.py")))


def test_the_alias_table_covers_every_old_module_and_points_at_files():
    import zoo_plugins

    assert sorted(zoo_plugins.MOVED) == sorted(FLAT)
    modules = _modules()
    for old, new in zoo_plugins.MOVED.items():
        assert f"zoo_plugins.{new}" in modules, (old, new)
        assert f"zoo_plugins.{old}" not in modules, f"zoo_plugins.{old} is both a module and an alias"


def test_builtin_registers_new_paths_only():
    """Every "module:attribute" the built-in plugin registers names a module at its new place."""
    import zoo_plugins

    modules = _modules()
    text = (PLUGINS / "builtin.py").read_text()
    paths = {s.value.split(":")[0] for s in ast.walk(ast.parse(text))
             if isinstance(s, ast.Constant) and isinstance(s.value, str) and s.value.startswith("zoo_plugins.")}
    assert paths and paths <= set(modules), paths - set(modules)
    assert not {p for p in paths if p.rpartition(".")[2] in zoo_plugins.MOVED and p.count(".") == 1}


@pytest.mark.parametrize("first", ["old", "new"])
def test_old_paths_give_the_same_module_object(first):
    """In a fresh interpreter, whichever path is imported first: one module object, named by its new path."""
    code = f"""
import importlib, sys
import zoo_plugins
assert 'torch' not in sys.modules            # the alias table imports nothing by itself
for old, new in zoo_plugins.MOVED.items():
    if old == 'timm_encoder':
        continue                              # needs the optional timm
    names = ['zoo_plugins.' + old, 'zoo_plugins.' + new]
    if {first!r} == 'new':
        names.reverse()
    a, b = importlib.import_module(names[0]), importlib.import_module(names[1])
    assert a is b, (old, new)
    assert sys.modules['zoo_plugins.' + old] is sys.modules['zoo_plugins.' + new]
    assert a.__name__ == a.__spec__.name == 'zoo_plugins.' + new, (a.__name__, a.__spec__.name)
    assert getattr(zoo_plugins, old) is a
from zoo_plugins.gmm import fit_em, GMMDecoder
from zoo_plugins.mixtures.gmm import fit_em as f2
assert fit_em is f2 and GMMDecoder.__module__ == 'zoo_plugins.mixtures.gmm'
import zoo_plugins.bessel as bessel
importlib.reload(bessel)                      # reloads the module at its new path
try:
    import zoo_plugins.no_such_module
except ModuleNotFoundError as e:
    assert e.name == 'zoo_plugins.no_such_module', e.name
else:
    raise AssertionError('an unknown name imported')
print('ok')
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_an_import_path_written_with_an_old_module_still_resolves():
    """A "module:attribute" written before the move (a card's or a run folder's) resolves to the same object."""
    from zoo.registry import LazyFactory, get_registry

    new = get_registry().get("encoder", "mlp").resolve()
    assert new.__module__ == "zoo_plugins.basic.encoders"
    assert LazyFactory("zoo_plugins.encoders:MLPEncoder").resolve() is new
    assert LazyFactory("zoo_plugins.gmm:fit_em_from_data").resolve() is get_registry().get("fitter", "em").resolve()


def test_every_plugin_module_imports_at_its_new_place():
    """A relative import left pointing at the old flat layout (e.g. after a merge) fails here, not at first use."""
    import importlib
    import importlib.util

    for name in sorted(_modules()):
        if name.endswith("timm_encoder") and importlib.util.find_spec("timm") is None:
            continue                                    # the optional timm extra
        importlib.import_module(name)
