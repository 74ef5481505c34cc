"""The written contract: layering, one test per new hook spec, name ownership, the conformance kits."""
from __future__ import annotations

import ast
import importlib
import pkgutil
import types
from pathlib import Path

import pytest
import torch
from torch import nn

import zoo
from zoo import hookimpl
from zoo.errors import CardError, PluginError
from zoo.registry import Registry

ROOT = Path(__file__).resolve().parents[1]


def _plugin(name: str, **hooks) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook, fn in hooks.items():
        setattr(module, hook, hookimpl(fn))
    return module


# -- layering ---------------------------------------------------------------------------------------
def test_no_core_module_imports_a_builtin_plugin():
    """Every module under zoo/ imports, and none imports zoo_plugins (checked on the AST)."""
    names = [m.name for m in pkgutil.walk_packages([str(ROOT / "zoo")], prefix="zoo.")
             if not m.name.endswith("__main__")]
    assert len(names) > 30 and "zoo.contracts" in names and "zoo.training.loop" in names
    offenders = []
    for name in names:
        module = importlib.import_module(name)
        tree = ast.parse(Path(module.__file__).read_text())
        for node in ast.walk(tree):
            targets = ([a.name for a in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{name}: {t}" for t in targets if t.split(".")[0] == "zoo_plugins"]
    assert not offenders, offenders


def test_imports_run_one_way_through_the_layers():
    """The import graph of zoo/ (function-local imports counted, tools/import_graph.py) has no circle and no arrow
    from a lower layer to a higher one: contracts -> model -> registry and cards -> assembler -> store and hub ->
    loader -> training, diagnostics, CLI.  Every module is placed in one layer (a new one must be placed)."""
    from tools.import_graph import build_graph, circles, layer_of, unplaced, upward

    graph = build_graph(ROOT)
    assert len(graph.modules) > 60 and graph.arrows > 200          # the graph was drawn, not empty
    assert not unplaced(graph), f"place these in tools/import_graph.py LAYERS: {unplaced(graph)}"
    assert not circles(graph), circles(graph)
    assert not upward(graph), upward(graph)
    layer = layer_of()
    assert layer["zoo.contracts"] < layer["zoo.model"] < layer["zoo.registry"] == layer["zoo.cards"] \
        < layer["zoo.assemble"] < layer["zoo.hub"] == layer["zoo.store.run_folder"] < layer["zoo.loading"] \
        < layer["zoo.training.loop"] == layer["zoo.diagnostics"] == layer["zoo.cli.commands"]


def test_the_import_graph_sees_function_local_and_literal_imports(tmp_path):
    """The checker itself: a function-local import, ``import_module("...")`` and a relative import each draw an
    arrow, and so does an ``if TYPE_CHECKING:`` block; an upward arrow and a circle are found."""
    from tools.import_graph import build_graph, circles, upward

    pkg = tmp_path / "zoo"
    (pkg / "store").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "store" / "__init__.py").write_text("")
    (pkg / "model.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import zoo.loading\n"
                                  "def f():\n    from zoo.store import run_folder\n")
    (pkg / "store" / "run_folder.py").write_text("from importlib import import_module\n"
                                                  "def g():\n    return import_module('zoo.loading')\n")
    (pkg / "loading.py").write_text("from .store import run_folder\n")
    graph = build_graph(tmp_path)
    # the package's __init__ runs too; the annotation-only import is an arrow like any other
    assert graph.edges["zoo.model"] == {"zoo.store", "zoo.store.run_folder", "zoo.loading"}
    assert graph.edges["zoo.store.run_folder"] == {"zoo.loading"}
    assert graph.edges["zoo.loading"] == {"zoo.store", "zoo.store.run_folder"}
    assert circles(graph) == [["zoo.loading", "zoo.store.run_folder"]]
    assert ("zoo.model", "zoo.store.run_folder") in upward(graph) and ("zoo.model", "zoo.loading") in upward(graph)



def test_the_model_module_has_no_file_methods_until_the_loader_provides_them():
    """LatentModel's from_pretrained / save_pretrained / push_to_hub are provided by the loader (zoo.loading), which
    the model module does not import: without it they say so, naming the loader; zoo.LatentModel is the same class
    with them working."""
    import subprocess
    import sys

    code = ("import sys\nfrom zoo.model import LatentModel\nassert 'zoo.loading' not in sys.modules\n"
            "try:\n    LatentModel.from_pretrained('vae-mnist')\nexcept Exception as e:\n    print(type(e).__name__, e)\n"
            "import zoo\nassert zoo.LatentModel is LatentModel and 'zoo.loading' in sys.modules\n"
            "try:\n    LatentModel.from_pretrained('no-such-model')\nexcept Exception as e:\n"
            "    print(type(e).__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.strip().splitlines()
    assert first.startswith("ZooError LatentModel.from_pretrained is provided by the loader") and "zoo.loading" in first
    assert second == "UnknownModelError"      # the loader looked the name up

def test_the_model_reads_the_objective_fields_the_card_format_lists():
    """LatentModel.objective passes every zoo.objective field but its own to a surrogate loss; its own set is the
    card format's (the model module imports no card module)."""
    from zoo.cards.schema import OBJECTIVE_FIELDS
    from zoo.model import ELBO_OBJECTIVE_FIELDS

    assert set(ELBO_OBJECTIVE_FIELDS) == set(OBJECTIVE_FIELDS)


def _plugin_result_keys() -> set[str]:
    """The result keys every installed component declares (zoo.contracts.results_of), plus the three the core
    used to read by name."""
    from zoo.contracts import results_of
    from zoo.registry import get_registry

    reg = get_registry()
    keys = {"kl_per_layer", "L_t", "L_T"}
    for kind in ("encoder", "decoder", "prior", "objective"):
        for name in reg.names(kind):
            keys |= {r.name for r in results_of(reg.get(kind, name).resolve())}
    return keys


def test_no_core_module_names_a_plugin_result_key():
    """A plugin's extra results reach diagnose, format_report, plots, compare and sweep by their declarations
    (zoo.contracts.Series / Term) alone: no key the built-ins declare appears anywhere in zoo/ (code, strings,
    comments), nor its _count / _se companions."""
    import re

    keys = _plugin_result_keys()
    assert {"kl_per_layer", "L_t", "L_T", "L_prior", "L_diffusion", "L_0"} <= keys  # the built-ins declare theirs
    words = keys | {f"{k}_count" for k in keys} | {f"{k}_se" for k in keys}
    pattern = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(map(re.escape, sorted(words))) + r")(?![A-Za-z0-9_])")
    offenders = [f"{path.relative_to(ROOT)}:{n}: {m.group(1)}" for path in sorted((ROOT / "zoo").rglob("*.py"))
                 for n, line in enumerate(path.read_text().splitlines(), 1) for m in pattern.finditer(line)]
    assert not offenders, offenders


def test_every_contract_name_and_declared_attribute_is_in_readme():
    """Every class of zoo.contracts.__all__ and every attribute the core reads from a plugin (contracts.ATTRIBUTES)
    is documented in README's contract section; each of those attributes is read somewhere in zoo/."""
    import re

    from zoo import contracts

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("\n### The contract\n"):readme.index("\n## Safety and reliability\n")]
    classes = [n for n in contracts.__all__ if isinstance(getattr(contracts, n), type)]
    assert {"GaussianForwardProcess", "Series", "Term", "DeclaredSize"} <= set(classes)
    assert not [n for n in classes if not re.search(rf"(?<![A-Za-z]){n}(?![A-Za-z])", section)]
    assert not [a for a in contracts.ATTRIBUTES if f"`{a}" not in section]
    assert {"test_args", "zoo_test_components", "config", "parameter_count", "results"} <= set(contracts.ATTRIBUTES)
    core = "\n".join(p.read_text() for p in (ROOT / "zoo").rglob("*.py") if p.name != "contracts.py")
    core += re.sub(r"ATTRIBUTES: dict.*?\n}\n", "", (ROOT / "zoo" / "contracts.py").read_text(), flags=re.S)
    assert not [a for a in contracts.ATTRIBUTES if not re.search(rf"[\"']{a}[\"']|\.{a}\b", core)]
    assert "GaussianForwardProcess" in contracts.__doc__ and "Series" in contracts.__doc__


def test_public_functions_are_not_shadowed_by_modules():
    """zoo.build keeps working after zoo.load (no module named like a public function)."""
    zoo.load("vae-mnist", pretrained=False)
    assert callable(zoo.build) and isinstance(zoo.build("vae-mnist"), zoo.LatentModel)
    assert callable(zoo.train) and callable(zoo.diagnose) and callable(zoo.load)


# -- one test per new hook -------------------------------------------------------------------------
class HalfBernoulli:
    """A likelihood a third party registers: Bernoulli on x binarised at 0.25."""

    name, params_per_dim, discrete = "half-bernoulli", 1, True

    def __init__(self, threshold: float = 0.25):
        from zoo.likelihoods import Bernoulli

        self._b, self.threshold = Bernoulli(), threshold

    def prepare(self, x01):
        return (x01 > self.threshold).to(x01.dtype)

    def to_unit(self, x):
        return x.clamp(0, 1)

    def __call__(self, params):
        return self._b(params)


def test_register_likelihoods_hook(fresh_registry, make_card):
    from zoo.assemble import build_model

    fresh_registry.add_plugin(_plugin("lik", register_likelihoods=lambda register: register("half", HalfBernoulli)))
    model = build_model(make_card(decoder={"name": "conv", "channels": [8, 8], "likelihood": {"name": "half", "threshold": 0.1}}))
    assert isinstance(model.decoder.likelihood, HalfBernoulli) and model.decoder.likelihood.threshold == 0.1
    x = torch.full((2, 1, 8, 8), 0.2)
    assert torch.equal(model.prepare(x), torch.ones_like(x))     # 0.2 > 0.1: the plugin's binarisation
    with pytest.raises(CardError, match="unknown likelihood 'halff'.*did you mean 'half'"):
        build_model(make_card(decoder={"name": "mlp", "likelihood": "halff"}))


def test_register_converters_hook(fresh_registry, make_card):
    from zoo.loading import convert

    def rename(state):
        return {k.replace("old.", "encoder."): v for k, v in state.items()}

    fresh_registry.add_plugin(_plugin("conv", register_converters=lambda register: register("old-layout", rename)))
    card = make_card()
    assert convert({"old.w": torch.ones(1)}, "old-layout", card).keys() == {"encoder.w"}
    from zoo.errors import WeightsError

    with pytest.raises(WeightsError, match="zoo.weights.converter.*unknown converter 'missing'"):
        convert({}, "missing", card)


def test_register_fitters_hook(fresh_registry, make_card, tmp_path):
    calls = []

    def fit_means(model, x, *, seed, iters, tol):
        """Set the decoder's bias to the data mean's logit: a closed-form 'fit' for the test."""
        calls.append((tuple(x.shape), seed, iters))
        return [-50.0, -40.0, -39.5]

    fresh_registry.add_plugin(_plugin("fit", register_fitters=lambda register: register("means", fit_means)))
    result = zoo.train(make_card(train={"batch_size": 64, "em_iters": 7}), out=tmp_path / "run",
                       algorithm="means", progress=False)
    assert calls == [((1497, 1, 8, 8), 0, 7)] and result.report["train_steps"] == 3
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert sum("train/log_likelihood" in r for r in rows) == 3
    from zoo.errors import TrainingError

    with pytest.raises(TrainingError, match="--algorithm 'nope'.*unknown fitter"):
        zoo.train(make_card(), out=tmp_path / "run2", algorithm="nope", progress=False)


class Shifted(nn.Module):
    """A prior that declares a sampler (and its options)."""

    exact = True
    samplers = ("shifted",)

    def __init__(self, *, latent_shape, data_shape=None):
        super().__init__()
        self.latent_shape = tuple(latent_shape)
        self.register_buffer("anchor", torch.zeros(()))

    def log_prob(self, z):
        return (-0.5 * (z ** 2 + 1.8378770664093453)).sum(-1)

    def sample(self, n, generator=None):
        return torch.randn((n, *self.latent_shape), generator=generator)


class ShiftSampler:
    from zoo.contracts import SamplerOption

    options = {"shift": SamplerOption(float, 0.0, "added to z")}

    def __call__(self, model, n, *, generator=None, shift=0.0):
        return model.to_images(model.decoder(model.prior.sample(n, generator=generator) + shift).mean)


def test_register_samplers_hook(fresh_registry, make_card):
    from zoo.assemble import build_model
    from zoo.errors import ZooError

    fresh_registry.add_plugin(_plugin("s", register_priors=lambda register: register("shifted-prior", Shifted),
                                      register_samplers=lambda register: register("shifted", ShiftSampler())))
    model = build_model(make_card(prior={"name": "shifted-prior"})).eval()
    a = model.sample(3, sampler="shifted", shift=2.0, generator=torch.Generator().manual_seed(0))
    z = model.prior.sample(3, generator=torch.Generator().manual_seed(0)) + 2.0
    assert torch.allclose(a, model.to_images(model.decoder(z).mean))
    with pytest.raises(ZooError, match="takes no option 'tilt'"):
        model.sample(3, sampler="shifted", tilt=1.0)
    with pytest.raises(CardError, match="zoo.sampler.name.*declares the samplers \\['shifted'\\], not 'ddim'"):
        build_model(make_card(prior={"name": "shifted-prior"}, sampler={"name": "ddim"}))


def test_register_data_sources_hook(fresh_registry):
    import numpy as np

    from zoo.data import EmbeddedDataset, clear_memo, load_tensors

    def read():
        g = np.random.default_rng(0)
        return g.integers(0, 256, (40, 4, 4), dtype=np.uint8), np.arange(40) % 2

    source = EmbeddedDataset(name="checker", shape=(1, 4, 4), splits={"train": 30, "test": 10}, reader=read,
                             license="CC0-1.0", credit="test", homepage="", notes="")
    fresh_registry.add_plugin(_plugin("d", register_data_sources=lambda register: register("checker-test", source)))
    clear_memo()
    assert tuple(load_tensors("zoo:checker-test", "test").shape) == (10, 1, 4, 4)
    from zoo.errors import DataError

    with pytest.raises(DataError, match="unknown embedded dataset; known: .*zoo:checker-test"):
        load_tensors("zoo:nothing-here", "test")


def test_register_commands_hook(fresh_registry, capsys):
    from zoo.cli import main

    def add(sub):
        p = sub.add_parser("hello", help="say hello")
        p.add_argument("--who", default="zoo")
        p.set_defaults(func=lambda args: print(f"hello {args.who}"))

    fresh_registry.add_plugin(_plugin("c", register_commands=lambda register: register("hello", add)))
    assert main(["hello", "--who", "plugin"]) == 0
    assert capsys.readouterr().out == "hello plugin\n"


def test_zoo_plugins_lists_every_kind_with_qualified_names(capsys):
    from zoo.cli import main

    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    for kind, name in (("likelihood", "bernoulli"), ("converter", "diffusers-unet"), ("fitter", "em"),
                       ("sampler", "ddim"), ("data", "mnist-5k"), ("command", "train"), ("card", "vae-mnist")):
        assert any(line.split()[:3] == [kind, name, f"latent-zoo:{name}"] for line in out.splitlines()), (kind, name)


# -- names: built-ins stay built-in, qualified names select ----------------------------------------
def test_a_third_party_cannot_take_a_builtin_name(fresh_registry):
    fresh_registry.add_plugin(_plugin("squatter", register_encoders=lambda register: register("mlp", dict)))
    assert fresh_registry.get("encoder", "mlp").owner.distribution == "latent-zoo"
    assert any("'mlp' belongs to the built-in" in str(f) for f in fresh_registry.failures)


def test_qualified_names_select_between_third_parties():
    reg = Registry()
    reg.add_plugin(_plugin("a", register_priors=lambda register: register("dup", dict)))
    reg.add_plugin(_plugin("b", register_priors=lambda register: register("dup", list)))
    with pytest.raises(PluginError, match="more than one plugin"):
        reg.get("prior", "dup")
    reg.entries["prior"]["dup"] = [e.__class__(e.kind, e.name, e.factory, e.owner.__class__(
        e.owner.plugin, d, e.owner.module)) for e, d in zip(reg.entries["prior"]["dup"], ("dist-a", "dist-b"))]
    assert reg.get("prior", "dist-b:dup").factory is list
    with pytest.raises(PluginError, match="distribution 'dist-c' registers no prior 'dup'"):
        reg.get("prior", "dist-c:dup")


def test_a_plugin_calling_sys_exit_is_isolated():
    import sys

    reg = Registry()
    reg.add_plugin(_plugin("exits", register_priors=lambda register: sys.exit(3)))
    reg.add_plugin(_plugin("fine", register_priors=lambda register: register("ok", dict)))
    assert reg.names("prior") == ["ok"] and "SystemExit" in str(reg.failures[0])


# -- the conformance kits over every installed component (README's example) ------------------------
from zoo.registry import get_registry  # noqa: E402
from zoo.testing import check_decoder, check_encoder, check_likelihood, check_prior  # noqa: E402


@pytest.mark.parametrize("name", get_registry().names("encoder"))
def test_every_installed_encoder_conforms(zoo_check_encoder, name):
    assert zoo_check_encoder is check_encoder
    report = zoo_check_encoder(name)
    assert {"members", "shapes", "dtype", "safetensors", "in a VAE"} <= set(report["passed"])


@pytest.mark.parametrize("name", get_registry().names("decoder"))
def test_every_installed_decoder_conforms(zoo_check_decoder, name):
    report = zoo_check_decoder(name)
    assert {"members", "shapes", "dtype", "safetensors", "in a VAE"} <= set(report["passed"])


@pytest.mark.parametrize("name", get_registry().names("likelihood"))
def test_every_installed_likelihood_conforms(zoo_check_likelihood, name):
    report = zoo_check_likelihood(name)
    assert {"members", "prepare", "shapes", "in a decoder"} <= set(report["passed"])


def test_the_ddpm_prior_conforms_with_its_declared_shapes(zoo_check_prior):
    """README's 'every installed prior' example used to fail on ddpm: it now declares test_shapes/test_args."""
    report = zoo_check_prior("ddpm")
    assert "in a VAE" in report["passed"] and "normalised" in report["skipped"]


class LeakyEncoder(nn.Module):
    """log_prob sums over the batch: the kit must name the 'shapes' check."""

    def __init__(self, *, data_shape, latent_shape):
        super().__init__()
        from zoo_plugins.basic.encoders import MLPEncoder

        self.inner = MLPEncoder(data_shape=data_shape, latent_shape=latent_shape, hidden=[8])

    def forward(self, x):
        q = self.inner(x)

        class Summed(type(q)):
            def log_prob(self, z):
                return super().log_prob(z).sum()

        return Summed(q.mean, q.log_scale)


class WrongEntropy(LeakyEncoder):
    def forward(self, x):
        q = self.inner(x)

        class Off(type(q)):
            def entropy(self):
                return super().entropy() + 1.0

        return Off(q.mean, q.log_scale)


@pytest.mark.parametrize("encoder, check", [(LeakyEncoder, "shapes"), (WrongEntropy, "entropy")])
def test_encoder_kit_catches_broken_encoders(encoder, check):
    with pytest.raises(AssertionError, match=rf"encoder '{encoder.__name__}' fails the '{check}' check"):
        check_encoder(encoder)


class NoDiscrete(nn.Module):
    def __init__(self, *, data_shape, latent_shape):
        super().__init__()
        from zoo_plugins.basic.decoders import MLPDecoder

        self.inner = MLPDecoder(data_shape=data_shape, latent_shape=latent_shape, hidden=[8])

        class Lik:
            name = "no-discrete"
            prepare = self.inner.likelihood.prepare
            to_unit = self.inner.likelihood.to_unit

        self.likelihood = Lik()

    def forward(self, z):
        return self.inner(z)


def test_decoder_kit_names_a_missing_member():
    with pytest.raises(AssertionError, match=r"decoder 'NoDiscrete' fails the 'members' check.*'discrete'"):
        check_decoder(NoDiscrete)


class Drifting:
    """prepare(to_unit(prepare(x))) drifts: the data space does not match the images."""

    name, params_per_dim, discrete = "drift", 1, False

    def prepare(self, x01):
        return x01 * 0.5

    def to_unit(self, x):
        return x

    def __call__(self, params):
        from zoo.likelihoods import Gaussian

        return Gaussian()(params)


def test_likelihood_kit_catches_a_mismatched_data_space():
    with pytest.raises(AssertionError, match="likelihood 'Drifting' fails the 'prepare' check"):
        check_likelihood(Drifting)


def test_prior_kit_uses_declared_shapes():
    report = check_prior("categorical", mc_samples=1000)
    assert report["prior"] == "categorical" and "normalised" in report["passed"]


# -- a third party's own results: declared, then reported, plotted, compared and swept with no core edit ------
import math  # noqa: E402

from zoo.contracts import Series, Term  # noqa: E402


class BlockPrior(nn.Module):
    """N(0, I) whose rate comes from infer() with its KL per block of latent dimensions, declared as results."""

    results = (Series("kl_per_block", "KL per block", index="block", items="blocks", total="rate",
                      note="first dimensions first"),
               Term("kl_first_block", "KL of the first block"))

    def __init__(self, *, latent_shape, data_shape=None, blocks: int = 2):
        super().__init__()
        self.latent_shape, self.blocks = tuple(latent_shape), blocks
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def log_prob(self, z):
        return (-0.5 * (z ** 2 + math.log(2 * math.pi))).flatten(-len(self.latent_shape)).sum(-1)

    def sample(self, n, generator=None):
        return torch.randn((n, *self.latent_shape), generator=generator, device=self._anchor.device)

    def infer(self, q):
        from zoo.distributions import gaussian_kl_standard_normal

        kl = gaussian_kl_standard_normal(q.mean, q.log_scale).flatten(1)
        per_block = torch.stack([part.sum(1) for part in kl.chunk(self.blocks, 1)], 1)   # [B, blocks]
        return q.rsample(), per_block.sum(1), {"kl_per_block": per_block, "kl_first_block": per_block[:, 0]}


@pytest.fixture
def block_model(fresh_registry, make_card):
    from zoo.assemble import build_model

    fresh_registry.add_plugin(_plugin("blocks", register_priors=lambda register: register("blocks", BlockPrior)))
    return build_model(make_card(prior={"name": "blocks"}))


def test_a_third_party_series_is_reported_formatted_and_plotted(block_model, tmp_path):
    import json

    from zoo.plots import plot_report, plot_series

    x = (torch.rand(64, 1, 8, 8) > 0.5).float()
    r = zoo.diagnose(block_model, x, iwae_k=0)
    assert len(r["kl_per_block"]) == 2 and len(r["kl_per_block_se"]) == 2 and all(s > 0 for s in r["kl_per_block_se"])
    assert sum(r["kl_per_block"]) == pytest.approx(r["rate"], rel=1e-6)
    assert r["kl_first_block"] == pytest.approx(r["kl_per_block"][0]) and r["kl_first_block_se"] > 0
    assert [d["name"] for d in r["declared_results"]] == ["kl_per_block", "kl_first_block"]
    text = zoo.format_report(r)
    assert (f"KL per block [kl_per_block] (nats; block 1..2; first dimensions first): [{r['kl_per_block'][0]:.4g}, "
            f"{r['kl_per_block'][1]:.4g}]; sum {r['rate']:.4g} (the rate: {r['rate']:.4g})") in text
    assert f"KL of the first block: {r['kl_first_block']:.3g} +- " in text
    saved = json.loads(json.dumps(r))          # a saved report formats as the live one does
    assert zoo.format_report(saved) == text
    assert plot_report(saved, tmp_path / "all.png").stat().st_size > 1000
    assert plot_series(saved, tmp_path / "series.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="declares no series"):
        plot_series({k: v for k, v in saved.items() if k != "declared_results"}, tmp_path / "none.png")


def test_a_third_party_series_is_compared_and_swept(block_model, tmp_path):
    from zoo.compare import format_table
    from zoo.training.sweep import markdown_table, plot, write_table

    x = (torch.rand(64, 1, 8, 8) > 0.5).float()
    rows = []
    for beta in (1.0, 2.0):
        r = zoo.diagnose(block_model, x, iwae_k=0, mi_samples=2)
        rows.append({"beta": beta, **{k: r.get(k) for k in ("elbo", "distortion", "rate", "mutual_information",
                                                           "active_units", "latent_dims")},
                     "n": r["n"], "test_elbo": None, "train_seconds": 0.0,
                     **{k: r[k] for k in ("kl_per_block", "kl_first_block", "declared_results")}})
    meta = {"model": "blocks", "data": "tensor", "split": "train", "n": 64, "seconds": 0.0, "command": "zoo sweep"}
    table = markdown_table(rows, meta)
    assert "| KL per block | KL of the first block |" in table.splitlines()[0]
    assert f"{rows[0]['kl_per_block'][0]:.2f}, {rows[0]['kl_per_block'][1]:.2f}" in table
    write_table(rows, tmp_path, meta)
    plot(rows, tmp_path, meta)
    assert (tmp_path / "series.png").stat().st_size > 1000 and (tmp_path / "sweep.png").is_file()
    assert "kl_per_block" in (tmp_path / "sweep.csv").read_text().splitlines()[0]
    row = {**rows[0], "model": "blocks", "family": "vae", "obtained": "built here", "rate_kind": "exact KL"}
    md = format_table({"data": "tensor", "split": "test", "mi_split": "train", "models": [row]})
    assert "| declared series |" in md and f"KL per block (first dimensions first): {row['kl_per_block'][0]:.2f}" in md
    assert f"- blocks: KL of the first block: {row['kl_first_block']:.3g}" in md


def test_a_declaration_that_does_not_fit_is_named(fresh_registry, make_card):
    from zoo.assemble import build_model
    from zoo.contracts import results_of
    from zoo.errors import ContractError

    class FlatBlocks(BlockPrior):  # declares a series but returns one value per image
        results = (Series("kl_first_block", "KL of the first block"),)

    class Untyped(BlockPrior):
        results = ("kl_per_block",)

    fresh_registry.add_plugin(_plugin("flat", register_priors=lambda register: register("flat", FlatBlocks)))
    model = build_model(make_card(prior={"name": "flat"}))
    with pytest.raises(ContractError, match=r"prior 'flat' from .* of 'tiny' declares Series 'kl_first_block'.*\[B, K\]"):
        zoo.diagnose(model, torch.rand(8, 1, 8, 8), iwae_k=0)
    with pytest.raises(ContractError, match=r"Untyped.results must be a tuple of zoo.contracts.Series / Term"):
        results_of(Untyped)
    with pytest.raises(ValueError, match="Term 'rate': the name is one of the ELBO's own terms"):
        Term("rate", "the rate again")
    with pytest.raises(ValueError, match="Series 'a b'|name must be an identifier"):
        Series("a b", "spaced")
