"""Conformance kit for priors: ``check_prior`` tests any registered (or not yet registered) prior.

    from zoo.testing import check_prior
    check_prior("laplace")                             # a registered name
    check_prior(MyPrior, latent_shape=(3,))            # or a factory(latent_shape=..., data_shape=..., **args)

It raises ``AssertionError`` naming the prior and the check that failed, and returns a dict of
what was checked (and what was skipped, with why).  The checks:

  shapes        sample(n) -> [n, *latent_shape]; log_prob of [n, ...] -> [n], of [s, n, ...] -> [s, n]
  generator     sample(n, generator=g) is reproducible with the same seed
  normalised    the density integrates to 1: exactly over ``prior.support()`` for a discrete
                prior, else by importance sampling with a wide Gaussian fitted to the prior's
                samples (a Monte Carlo check, done only where ``prior.exact`` is true);
                the mean of sample() agrees with the importance-sampled mean of log_prob.
                A prior declaring ``manifold = "sphere"``: its samples lie on the unit sphere and
                the density integrates to 1 w.r.t. the surface measure (uniform proposal there)
  gradients     log_prob is finite and differentiable in z (continuous z) and reaches every
                trainable parameter of the prior (a parameter-free prior on the sphere may be
                constant: its gradient is then zero everywhere)
  dtype/device  after ``model.to(float64)`` samples and log_prob are float64 (and back); samples
                follow the module to CUDA when there is one
  safetensors   the model's state dict round-trips through safetensors: same log_prob
  in a VAE      a few Adam steps on the ELBO with the prior inside a small model: finite loss,
                the prior's parameters get gradients (``zoo_test_components`` on the prior class,
                or ``encoder=``/``decoder=`` here, pick parts that fit it; default mlp/mlp)

pytest plugin (entry point ``pytest11: zoo = "zoo.testing"``): the ``zoo_check_prior`` fixture
is this function, so a plugin's test suite needs just::

    def test_my_prior_conforms(zoo_check_prior):
        zoo_check_prior("my-prior")
"""
from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any, Callable

DEFAULT_DATA_SHAPE = (1, 8, 8)


class _Check:
    def __init__(self, name: str):
        self.name = name
        self.report: dict[str, Any] = {"prior": name, "passed": [], "skipped": {}}

    def ok(self, cond: Any, check: str, message: str) -> None:
        if not cond:
            raise AssertionError(f"prior {self.name!r} fails the {check!r} check: {message}")

    def passed(self, check: str) -> None:
        self.report["passed"].append(check)

    def skip(self, check: str, why: str) -> None:
        self.report["skipped"][check] = why


def _resolve(factory_or_name) -> tuple[str, Callable[..., Any]]:
    if isinstance(factory_or_name, str):
        from zoo.registry import get_registry

        return factory_or_name, get_registry().get("prior", factory_or_name).factory
    return getattr(factory_or_name, "__name__", repr(factory_or_name)), factory_or_name


def build_test_model(factory_or_name, *, latent_shape=(2,), data_shape=DEFAULT_DATA_SHAPE,
                     prior_args: dict[str, Any] | None = None, encoder: dict[str, Any] | None = None,
                     decoder: dict[str, Any] | None = None):
    """A small LatentModel around the prior (so priors that ``bind`` to the model work)."""
    from zoo.model import LatentModel
    from zoo.registry import get_registry

    _, factory = _resolve(factory_or_name)
    prior = factory(latent_shape=tuple(latent_shape), data_shape=tuple(data_shape), **(prior_args or {}))
    wanted = getattr(prior, "zoo_test_components", None) or {}
    parts = {}
    for kind, given, default in (("encoder", encoder, {"name": "mlp", "hidden": [32]}),
                                 ("decoder", decoder, {"name": "mlp", "hidden": [32], "likelihood": "bernoulli"})):
        spec = dict(given or wanted.get(kind) or default)
        name = spec.pop("name")
        parts[kind] = get_registry().get(kind, name).factory(latent_shape=tuple(latent_shape),
                                                             data_shape=tuple(data_shape), **spec)
    return LatentModel(parts["encoder"], parts["decoder"], prior, data_shape=data_shape,
                       latent_shape=latent_shape, name=f"conformance-{getattr(prior, '__class__').__name__}")


def check_prior(factory_or_name, *, latent_shape=(2,), data_shape=DEFAULT_DATA_SHAPE,
                prior_args: dict[str, Any] | None = None, encoder: dict[str, Any] | None = None,
                decoder: dict[str, Any] | None = None, mc_samples: int = 200_000, vae_steps: int = 5,
                seed: int = 0, perturb: float = 0.1) -> dict[str, Any]:
    """Run every conformance check on a prior; raise AssertionError on the first failure.

    ``perturb`` adds noise of that scale to every floating parameter first, so a prior that
    starts as N(0, I) (a flow with zero-initialised layers) is tested away from its start."""
    import torch

    name, _ = _resolve(factory_or_name)
    c = _Check(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_test_model(factory_or_name, latent_shape=latent_shape, data_shape=data_shape,
                                 prior_args=prior_args, encoder=encoder, decoder=decoder)
        with torch.no_grad():
            for p in model.parameters():
                if p.dtype.is_floating_point:
                    p.add_(perturb * torch.randn_like(p))
        prior = model.prior
        shape = tuple(latent_shape)
        discrete = hasattr(prior, "support")
        _check_shapes(c, prior, shape)
        _check_generator(c, prior)
        _check_normalised(c, prior, shape, discrete, mc_samples)
        _check_gradients(c, prior, shape, discrete)
        _check_dtype_device(c, model, shape)
        _check_safetensors(c, model, factory_or_name, latent_shape, data_shape, prior_args, encoder, decoder)
        _check_in_vae(c, model, data_shape, vae_steps)
    return c.report


def _check_shapes(c: _Check, prior, shape) -> None:
    import torch

    z = prior.sample(7)
    c.ok(isinstance(z, torch.Tensor) and tuple(z.shape) == (7, *shape), "shapes",
         f"sample(7) should be a tensor of shape {[7, *shape]}, got {getattr(z, 'shape', type(z))}")
    lp = prior.log_prob(z)
    c.ok(tuple(lp.shape) == (7,), "shapes", f"log_prob of [7, *latent_shape] should be [7], got {list(lp.shape)}")
    c.ok(bool(torch.isfinite(lp).all()), "shapes", f"log_prob of the prior's own samples is not finite: {lp}")
    z2 = torch.stack([prior.sample(5) for _ in range(3)])
    lp2 = prior.log_prob(z2)
    c.ok(tuple(lp2.shape) == (3, 5), "shapes",
         f"log_prob of [3, 5, *latent_shape] (extra leading sample dimension) should be [3, 5], got {list(lp2.shape)}")
    if getattr(prior, "exact", True):  # a bound-valued log_prob (exact = False) may be a stochastic estimate
        c.ok(torch.allclose(lp2[1], prior.log_prob(z2[1]), atol=1e-4, rtol=1e-4), "shapes",
             "log_prob with a leading sample dimension differs from log_prob of each slice")
    c.passed("shapes")


def _check_generator(c: _Check, prior) -> None:
    import torch

    a = prior.sample(4, generator=torch.Generator().manual_seed(123))
    b = prior.sample(4, generator=torch.Generator().manual_seed(123))
    c.ok(torch.equal(a, b), "generator", "sample(n, generator=g) gives different values for the same seed")
    c.passed("generator")


def _check_normalised(c: _Check, prior, shape, discrete: bool, mc_samples: int) -> None:
    import torch

    from zoo.contracts import manifold_of

    if not getattr(prior, "exact", True):
        c.skip("normalised", "prior.exact is False: log_prob is a bound, not a normalised density")
        return
    with torch.no_grad():
        if discrete:
            support = prior.support()
            mass = float(prior.log_prob(support).double().exp().sum())
            c.ok(abs(mass - 1) < 1e-4, "normalised", f"probabilities over support() sum to {mass:.6f}, not 1")
            draws = prior.sample(20_000).double()
            p = prior.log_prob(support).double().exp()
            expected = (p[:, None] * support.double().flatten(1)).sum(0)
            err = (draws.flatten(1).mean(0) - expected).abs().max().item()
            c.ok(err < 0.03, "normalised", f"sample() frequencies differ from exp(log_prob) by {err:.3f}")
            c.passed("normalised")
            return
        if manifold_of(prior) == "sphere":
            _check_normalised_on_sphere(c, prior, shape, mc_samples)
            return
        d = math.prod(shape)
        if d > 8:
            c.skip("normalised", f"Monte Carlo integration skipped in {d} dimensions (use a latent_shape with <= 8)")
            return
        ref = prior.sample(20_000).double().reshape(20_000, d)
        mu, sd = ref.mean(0), ref.std(0).clamp(min=1e-3) * 2.0
        u = mu + sd * torch.randn(mc_samples, d, dtype=torch.float64)
        log_r = (-0.5 * ((u - mu) / sd) ** 2 - sd.log() - 0.5 * math.log(2 * math.pi)).sum(1)
        log_p = torch.cat([prior.log_prob(chunk.reshape(-1, *shape).to(_dtype(prior))).double()
                           for chunk in u.split(50_000)])
        w = (log_p - log_r).exp()
        c.ok(bool(torch.isfinite(w).all()), "normalised", "log_prob is not finite on a wide Gaussian around its samples")
        z_hat = float(w.mean())
        se = float(w.std() / math.sqrt(len(w)))
        c.ok(abs(z_hat - 1) < max(0.03, 5 * se), "normalised",
             f"the density integrates to {z_hat:.4f} +- {se:.4f} (importance sampling, {len(w)} draws), not 1")
        is_mean = (w[:, None] * u).sum(0) / w.sum()
        gap = ((is_mean - ref.mean(0)).abs() / ref.std(0).clamp(min=1e-3)).max().item()
        c.ok(gap < 0.1, "normalised",
             f"the mean of sample() and the mean of exp(log_prob) differ by {gap:.3f} standard deviations: "
             "sample() and log_prob() describe different distributions")
        c.report["integral"] = z_hat
    c.passed("normalised")


def _check_normalised_on_sphere(c: _Check, prior, shape, mc_samples: int) -> None:
    """Samples on S^{d-1}; E_uniform[p(u) |S^{d-1}|] = 1 (importance sampling with the uniform proposal)."""
    import torch

    d = math.prod(shape)
    ref = prior.sample(20_000).double().reshape(20_000, d)
    off = float((ref.norm(dim=1) - 1).abs().max())
    c.ok(off < 1e-4, "normalised", f"sample() gives points {off:.2e} off the unit sphere the prior declares")
    u = torch.randn(mc_samples, d, dtype=torch.float64)
    u = u / u.norm(dim=1, keepdim=True)
    log_area = math.log(2) + 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d)
    log_p = torch.cat([prior.log_prob(chunk.reshape(-1, *shape).to(_dtype(prior))).double()
                       for chunk in u.split(50_000)])
    w = (log_p + log_area).exp()
    z_hat, se = float(w.mean()), float(w.std() / math.sqrt(len(w)))
    c.ok(abs(z_hat - 1) < max(0.03, 5 * se), "normalised",
         f"the density integrates to {z_hat:.4f} +- {se:.4f} over the sphere (uniform importance sampling), not 1")
    gap = float(((w[:, None] * u).sum(0) / w.sum() - ref.mean(0)).abs().max() / ref.std(0).clamp(min=1e-3).max())
    c.ok(gap < 0.1, "normalised", f"the mean of sample() and the mean of exp(log_prob) on the sphere differ by {gap:.3f}")
    c.report["integral"] = z_hat
    c.passed("normalised")


def _dtype(prior):
    for t in list(prior.parameters()) + list(prior.buffers()):
        if t.dtype.is_floating_point:
            return t.dtype
    import torch

    return torch.get_default_dtype()


def _check_gradients(c: _Check, prior, shape, discrete: bool) -> None:
    import torch

    from zoo.contracts import manifold_of

    z = prior.sample(16).detach()
    if not discrete:
        z.requires_grad_(True)
    lp = prior.log_prob(z).sum()
    trainable = [(n, p) for n, p in prior.named_parameters() if p.requires_grad]
    inputs = ([z] if not discrete else []) + [p for _, p in trainable]
    if not inputs:
        c.skip("gradients", "no continuous z and no trainable parameters")
        return
    if not lp.requires_grad and not trainable and manifold_of(prior) == "sphere":
        values = prior.log_prob(z.detach())
        c.ok(bool(torch.isfinite(values).all()) and torch.allclose(values, values[0].expand_as(values)), "gradients",
             "log_prob has no graph in z, so it must be the constant density of a uniform prior on the sphere")
        c.report.setdefault("notes", {})["gradients"] = "log_prob is constant on the sphere: d log p / dz = 0"
        c.passed("gradients")
        return
    c.ok(lp.requires_grad, "gradients", "log_prob is not differentiable (no graph)")
    grads = torch.autograd.grad(lp, inputs, allow_unused=True)
    if not discrete:
        g = grads[0]
        c.ok(g is not None and bool(torch.isfinite(g).all()), "gradients",
             "d log_prob / dz is missing or not finite (the reparameterised rate needs it)")
        grads = grads[1:]
    for (pname, _), g in zip(trainable, grads):
        c.ok(g is not None, "gradients", f"log_prob does not depend on the trainable parameter {pname!r}")
        c.ok(bool(torch.isfinite(g).all()), "gradients", f"gradient of {pname!r} is not finite")
    c.passed("gradients")


def _check_dtype_device(c: _Check, model, shape) -> None:
    import torch

    prior = model.prior
    try:
        model.to(torch.float64)
        z = prior.sample(3)
        c.ok(z.dtype == torch.float64, "dtype", f"after .to(float64) sample() is {z.dtype}")
        lp = prior.log_prob(z)
        c.ok(lp.dtype == torch.float64, "dtype", f"after .to(float64) log_prob is {lp.dtype}")
    finally:
        model.to(torch.float32)
    z = prior.sample(3)
    c.ok(z.dtype == torch.float32, "dtype", f"after .to(float32) sample() is {z.dtype}")
    c.passed("dtype")
    if torch.cuda.is_available():
        try:
            model.to("cuda")
            z = prior.sample(3)
            c.ok(z.device.type == "cuda", "device", f"after .to('cuda') sample() is on {z.device}")
            c.ok(prior.log_prob(z).device.type == "cuda", "device", "after .to('cuda') log_prob is not on cuda")
        finally:
            model.to("cpu")
        c.passed("device")
    else:
        c.skip("device", "no CUDA device here (samples must follow the module: keep a buffer for the device)")


def _check_safetensors(c: _Check, model, factory_or_name, latent_shape, data_shape, prior_args, encoder, decoder) -> None:
    import torch

    from zoo.store.weights import load_weights, read_weights, save_weights

    z = model.prior.sample(5, generator=torch.Generator().manual_seed(1))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        try:
            save_weights(model, path)
        except Exception as e:  # noqa: BLE001 - report any safetensors refusal as a conformance failure
            raise AssertionError(f"prior {c.name!r} fails the 'safetensors' check: cannot save: {e}") from e
        fresh = build_test_model(factory_or_name, latent_shape=latent_shape, data_shape=data_shape,
                                 prior_args=prior_args, encoder=encoder, decoder=decoder)
        try:
            load_weights(fresh, read_weights(path), str(path))
        except Exception as e:  # noqa: BLE001
            raise AssertionError(f"prior {c.name!r} fails the 'safetensors' check: cannot load: {e}") from e
    def seeded_log_prob(prior):  # the same random draws for a prior whose log_prob is a stochastic bound
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(2)
            return prior.log_prob(z)

    model.eval(), fresh.eval()
    a, b = seeded_log_prob(model.prior), seeded_log_prob(fresh.prior)
    model.train()
    c.ok(torch.allclose(a, b, atol=1e-5, rtol=1e-5), "safetensors",
         f"log_prob differs after a safetensors round trip (max diff {float((a - b).abs().max()):.2e}): "
         "keep every parameter and buffer it needs in the state dict")
    c.passed("safetensors")


def _check_in_vae(c: _Check, model, data_shape, steps: int) -> None:
    import torch

    x = (torch.rand(16, *data_shape) > 0.5).float()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3)
    prior_params = [(n, p) for n, p in model.prior.named_parameters() if p.requires_grad]
    model.train()
    for step in range(steps):
        loss = model.elbo(x).loss(1.0)
        c.ok(bool(torch.isfinite(loss.detach())), "in a VAE", f"the ELBO loss is not finite at step {step}: {loss.item()}")
        opt.zero_grad()
        loss.backward()
        for pname, p in prior_params:
            c.ok(p.grad is not None, "in a VAE", f"the ELBO gives no gradient to the prior's parameter {pname!r}")
        opt.step()
    model.eval()  # the IWAE bound is an evaluation (e.g. a Gumbel-softmax posterior samples exactly in eval mode)
    with torch.no_grad():
        bound = model.log_likelihood(x[:4], k=3)
    model.train()
    c.ok(bound.isfinite().all(), "in a VAE", "the IWAE bound is not finite")
    c.passed("in a VAE")


# -- pytest plugin (entry point pytest11) -------------------------------------------------------
try:
    import pytest as _pytest
except ImportError:  # pragma: no cover - the kit works without pytest
    _pytest = None

if _pytest is not None:
    @_pytest.fixture
    def zoo_check_prior():
        """The conformance kit: ``zoo_check_prior(name_or_factory, latent_shape=(2,), ...)``."""
        return check_prior
