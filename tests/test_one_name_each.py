"""One name per thing: the concrete likelihood classes are not named like zoo.contracts' protocols, the data-set ELBO
is not called "evaluate" (the `zoo evaluate` command measures FID), and nats -> bits/dim is written once."""
from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def test_the_concrete_likelihoods_have_their_own_names_and_the_old_ones_still_import():
    import zoo.contracts as c
    import zoo.likelihoods as lk

    assert lk.ElementwiseLikelihood is not c.Likelihood and lk.ElementwiseObservation is not c.Observation
    assert lk.Likelihood is lk.ElementwiseLikelihood and lk.Observation is lk.ElementwiseObservation  # old names
    obs = lk.Bernoulli()(torch.zeros(2, 1, 2, 2))
    assert type(obs) is lk.ElementwiseObservation and c.missing_members(obs, c.Observation) == []
    assert obs.log_prob(torch.ones(2, 1, 2, 2)).tolist() == pytest.approx([4 * math.log(0.5)] * 2)
    # the built-in decoders annotate what they return with the protocol, not the concrete class
    for path in ("plugins/basic/decoders.py", "plugins/mixtures/gmm.py"):
        tree = ast.parse((ROOT / path).read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "zoo.likelihoods"
                 for a in n.names}
        assert not names & {"Observation", "Likelihood"}, path


def test_the_data_set_elbo_is_named_for_what_it_computes(tmp_path):
    import zoo
    from zoo.dataset_elbo import DatasetELBO, dataset_elbo

    model = zoo.load("vae-digits")
    x = torch.randint(0, 256, (10, *model.data_shape), dtype=torch.uint8)
    torch.manual_seed(0)
    result = dataset_elbo(model, x, batch_size=4)
    assert isinstance(result, DatasetELBO) and result.n == 10 and result.terms["elbo"].shape == (10,)
    torch.manual_seed(0)
    with torch.no_grad():
        first = model.elbo(model.prepare(x[:4])).elbo.double()
    assert torch.allclose(result.terms["elbo"][:4], first)
    assert not (ROOT / "zoo" / "evaluation.py").exists()


def test_bits_per_dim_is_written_once():
    from zoo.distributions import bits_per_dim
    from zoo_plugins.diffusion import bits_per_dim as diffusion_bpd

    assert diffusion_bpd is bits_per_dim
    assert bits_per_dim(3072 * math.log(2), (3, 32, 32)) == pytest.approx(1.0)
    assert bits_per_dim(784 * math.log(2), 784) == pytest.approx(1.0)
    assert bits_per_dim(torch.tensor([784 * math.log(2)]), torch.Size([1, 28, 28])).item() == pytest.approx(1.0)
    defs = [f"{p.relative_to(ROOT)}:{n.lineno}" for folder in ("zoo", "plugins") for p in (ROOT / folder).rglob("*.py")
            for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.FunctionDef) and n.name == "bits_per_dim"
            and not (n.args.args and n.args.args[0].arg == "self")]
    assert len(defs) == 1 and defs[0].startswith("zoo/distributions.py:"), defs
