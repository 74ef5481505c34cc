"""Conformance kits: check any encoder, decoder, likelihood or prior against zoo.contracts.

    from zoo.testing import check_prior, check_encoder, check_decoder, check_likelihood
    check_prior("laplace")                             # a registered name
    check_prior(MyPrior, latent_shape=(3,))            # or a factory(latent_shape=..., data_shape=..., **args)
    check_encoder("my-encoder"); check_decoder("my-decoder"); check_likelihood("beta")

Each raises ``AssertionError`` naming the component, the check that failed and what went wrong,
and returns a dict of what was checked (and what was skipped, with why).  A component is put in a
small LatentModel with default partners (mlp encoder / mlp decoder with a Bernoulli likelihood /
standard-normal prior); a component class may declare what it needs:

    test_shapes = {"latent_shape": (1, 8, 8), "data_shape": (1, 8, 8)}   # shapes it works with
    test_args = {"unet": "digits-8x8", "timesteps": 20}                   # small arguments for the kit
    zoo_test_components = {"prior": {"name": "ladder"}}                  # partners it needs

Prior checks:
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
                the prior's parameters get gradients
Encoder checks: members (zoo.contracts.Posterior), shapes (rsample, rsample(n), log_prob), entropy
  (a declared closed form agrees with Monte Carlo), aggregate (cross_log_prob agrees with log_prob,
  cat concatenates), gradients (the reparameterised sample reaches the encoder's parameters),
  dtype, safetensors, in a VAE.
Decoder checks: members (Decoder, Observation, Likelihood), shapes (log_prob [B], mean and sample in
  the data shape), mass (a discrete likelihood's log_prob is <= 0), gradients, dtype, safetensors,
  in a VAE.
Likelihood checks: members (ParametricLikelihood), prepare (idempotent: prepare(to_unit(prepare(x)))
  == prepare(x); to_unit lands in [0, 1]), shapes, mass (discrete: log_prob <= 0 and, for one pixel
  with few values, the mass over them sums to <= 1), in a decoder (an mlp decoder trains with it).

pytest plugin (entry point ``pytest11: zoo = "zoo.testing"``): the fixtures ``zoo_check_prior``,
``zoo_check_encoder``, ``zoo_check_decoder`` and ``zoo_check_likelihood`` are these functions, so a
plugin's test suite needs just::

    def test_my_prior_conforms(zoo_check_prior):
        zoo_check_prior("my-prior")
"""
from __future__ import annotations

import math
import tempfile
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable

DEFAULT_DATA_SHAPE = (1, 8, 8)
DEFAULT_LATENT_SHAPE = (2,)
DEFAULT_PARTS = {"encoder": {"name": "mlp", "hidden": [32]},
                 "decoder": {"name": "mlp", "hidden": [32], "likelihood": "bernoulli"},
                 "prior": {"name": "standard-normal"}}


class _Check:
    def __init__(self, name: str, kind: str = "prior"):
        self.name, self.kind = name, kind
        self.report: dict[str, Any] = {kind: name, "passed": [], "skipped": {}}

    def ok(self, cond: Any, check: str, message: str) -> None:
        if not cond:
            raise AssertionError(f"{self.kind} {self.name!r} fails the {check!r} check: {message}")

    def passed(self, check: str) -> None:
        self.report["passed"].append(check)

    def skip(self, check: str, why: str) -> None:
        self.report["skipped"][check] = why


@dataclass
class _Setup:
    """What the kit builds: the component under test, its shapes and arguments, and its partners."""

    kind: str
    name: str
    factory: Callable[..., Any]
    latent_shape: tuple[int, ...]
    data_shape: tuple[int, ...]
    args: dict[str, Any]
    parts: dict[str, dict[str, Any]]


def _declared(obj: Any, attr: str) -> dict[str, Any]:
    value = getattr(obj, attr, None)
    return dict(value) if isinstance(value, dict) else {}


def _setup(kind: str, factory_or_name, *, latent_shape=None, data_shape=None, args=None,
           parts: dict[str, Any] | None = None) -> _Setup:
    """Resolve a name or factory and the shapes / arguments / partners it declares (given values win)."""
    if isinstance(factory_or_name, str):
        from zoo.registry import get_registry

        entry = get_registry().get(kind, factory_or_name)
        name, factory, declared = factory_or_name, entry.factory, entry.resolve()
    else:
        name, factory, declared = getattr(factory_or_name, "__name__", repr(factory_or_name)), factory_or_name, \
            factory_or_name
    shapes = _declared(declared, "test_shapes")
    wanted = _declared(declared, "zoo_test_components")
    wanted.update({k: v for k, v in (parts or {}).items() if v})
    return _Setup(kind, name, factory,
                  tuple(latent_shape or shapes.get("latent_shape") or DEFAULT_LATENT_SHAPE),
                  tuple(data_shape or shapes.get("data_shape") or DEFAULT_DATA_SHAPE),
                  dict(_declared(declared, "test_args") if args is None else args), wanted)


def _build(setup: _Setup):
    """A small LatentModel around the component (so components that ``bind`` to the model work), assembled as any
    card is (zoo.assemble.build_model): the component under test is a given module of the card, its partners and a
    named objective are built from the registry."""
    from zoo.assemble import build_model
    from zoo.cards import Card, validate_zoo
    from zoo.registry import import_path

    shapes = {"latent_shape": setup.latent_shape, "data_shape": setup.data_shape}
    part = setup.factory(**shapes, **setup.args)
    zoo: dict[str, Any] = {"data": {"source": "unspecified", "shape": list(setup.data_shape)},
                           "latent": {"shape": list(setup.latent_shape)},
                           setup.kind: {"module": import_path(part), "args": {}}}
    for kind in ("encoder", "decoder", "prior"):
        if kind != setup.kind:
            zoo[kind] = dict(setup.parts.get(kind) or DEFAULT_PARTS[kind])
    # a component may name the objective it trains with (e.g. the VQ-VAE loss): the kit trains on it
    if setup.parts.get("objective"):
        zoo["objective"] = dict(setup.parts["objective"])
    name = f"conformance-{type(part).__name__}"
    model = build_model(Card(name, validate_zoo(zoo, f"zoo.testing ({setup.kind} {setup.name!r})")),
                        modules={setup.kind: part})
    model.sources[setup.kind] = repr(setup.name)
    return model


def _perturbed(setup: _Setup, perturb: float):
    import torch

    model = _build(setup)
    with torch.no_grad():
        for p in model.parameters():
            if p.dtype.is_floating_point:
                p.add_(perturb * torch.randn_like(p))
    return model


def check_prior(factory_or_name, *, latent_shape=None, data_shape=None,
                prior_args: dict[str, Any] | None = None, encoder: dict[str, Any] | None = None,
                decoder: dict[str, Any] | None = None, mc_samples: int = 200_000, vae_steps: int = 5,
                seed: int = 0, perturb: float = 0.1) -> dict[str, Any]:
    """Run every conformance check on a prior; raise AssertionError on the first failure.

    ``latent_shape`` / ``data_shape`` default to what the prior declares in ``test_shapes``, else
    (2,) and (1, 8, 8); ``prior_args`` to its ``test_args``.  ``perturb`` adds noise of that scale
    to every floating parameter first, so a prior that starts as N(0, I) (a flow with
    zero-initialised layers) is tested away from its start."""
    import torch

    setup = _setup("prior", factory_or_name, latent_shape=latent_shape, data_shape=data_shape, args=prior_args,
                   parts={"encoder": encoder, "decoder": decoder})
    c = _Check(setup.name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _perturbed(setup, perturb)
        prior = model.prior
        shape = setup.latent_shape
        discrete = _discrete(prior)
        _check_shapes(c, prior, shape)
        _check_generator(c, prior)
        _check_normalised(c, prior, shape, discrete, mc_samples)
        _check_gradients(c, prior, shape, discrete)
        _check_dtype_device(c, model, shape)
        z_ref = prior.sample(5, generator=torch.Generator().manual_seed(1))
        _check_safetensors(c, model, setup, lambda m: _seeded(lambda: m.prior.log_prob(z_ref)))
        _check_in_vae(c, model, setup.data_shape, vae_steps, "prior")
    return c.report


def _discrete(prior) -> bool:
    from zoo import contracts

    return contracts.has(prior, contracts.DiscreteSupport)


def _exact(prior) -> bool:
    from zoo import contracts

    return contracts.is_exact(prior)


def _seeded(fn):
    """fn() with fixed random draws (for components whose outputs are stochastic)."""
    import torch

    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        return fn()


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
    if _exact(prior):  # a bound-valued log_prob (exact = False) may be a stochastic estimate
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

    if not _exact(prior):
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


def _check_safetensors(c: _Check, model, setup: _Setup, probe: Callable[[Any], Any]) -> None:
    """The model's state dict round-trips through safetensors: ``probe(model)`` is unchanged."""
    import torch

    from zoo.store.weights import load_weights, read_weights, save_weights

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        try:
            save_weights(model, path)
        except Exception as e:  # noqa: BLE001 - report any safetensors refusal as a conformance failure
            raise AssertionError(f"{c.kind} {c.name!r} fails the 'safetensors' check: cannot save: {e}") from e
        fresh = _build(setup)
        try:
            load_weights(fresh, read_weights(path), str(path))
        except Exception as e:  # noqa: BLE001
            raise AssertionError(f"{c.kind} {c.name!r} fails the 'safetensors' check: cannot load: {e}") from e
    model.eval(), fresh.eval()
    a, b = probe(model), probe(fresh)
    model.train()
    c.ok(torch.allclose(a, b, atol=1e-5, rtol=1e-5), "safetensors",
         f"outputs differ after a safetensors round trip (max diff {float((a - b).abs().max()):.2e}): "
         "keep every parameter and buffer it needs in the state dict")
    c.passed("safetensors")


def _check_in_vae(c: _Check, model, data_shape, steps: int, part: str) -> None:
    """A few Adam steps on the ELBO: finite losses, ``part``'s parameters get gradients, finite IWAE bound."""
    import torch

    x = (torch.rand(16, *data_shape) > 0.5).float()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3)
    own = [(n, p) for n, p in getattr(model, part).named_parameters() if p.requires_grad]
    model.train()
    for step in range(steps):
        loss = model.objective(x)[0]
        c.ok(bool(torch.isfinite(loss.detach())), "in a VAE", f"the ELBO loss is not finite at step {step}: {loss.item()}")
        opt.zero_grad()
        loss.backward()
        for pname, p in own:
            c.ok(p.grad is not None, "in a VAE", f"the ELBO gives no gradient to the {part}'s parameter {pname!r}")
        opt.step()
    model.eval()  # the IWAE bound is an evaluation (e.g. a Gumbel-softmax posterior samples exactly in eval mode)
    with torch.no_grad():
        bound = model.log_likelihood(x[:4], k=3)
    model.train()
    c.ok(bound.isfinite().all(), "in a VAE", "the IWAE bound is not finite")
    c.passed("in a VAE")


def _check_members(c: _Check, obj: Any, protocol: type, what: str) -> None:
    from zoo.contracts import missing_members

    lacking = missing_members(obj, protocol)
    c.ok(not lacking, "members", f"{what} ({type(obj).__name__}) lacks {', '.join(repr(m) for m in lacking)} "
                                 f"of zoo.contracts.{protocol.__name__}")


def _data(shape, n: int = 6):
    import torch

    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(3))


def _check_dtype(c: _Check, model, fn: Callable[[], Any], what: str) -> None:
    import torch

    try:
        model.to(torch.float64)
        out = fn()
        c.ok(out.dtype == torch.float64, "dtype", f"after .to(float64) {what} is {out.dtype}")
    finally:
        model.to(torch.float32)
    c.ok(fn().dtype == torch.float32, "dtype", f"after .to(float32) {what} is not float32")
    c.passed("dtype")


# -- encoders -------------------------------------------------------------------------------------
def check_encoder(factory_or_name, *, latent_shape=None, data_shape=None, args: dict[str, Any] | None = None,
                  decoder: dict[str, Any] | None = None, prior: dict[str, Any] | None = None,
                  mc_samples: int = 4000, vae_steps: int = 3, seed: int = 0) -> dict[str, Any]:
    """Run every conformance check on an encoder q(z|x); raise AssertionError on the first failure."""
    import torch

    from zoo import contracts as k

    setup = _setup("encoder", factory_or_name, latent_shape=latent_shape, data_shape=data_shape, args=args,
                   parts={"decoder": decoder, "prior": prior})
    c = _Check(setup.name, "encoder")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _build(setup)
        x = model.prepare(_data(setup.data_shape))
        b, shape = x.shape[0], setup.latent_shape
        model.eval()  # the posterior's own members in evaluation mode (e.g. exact, not relaxed, samples)
        q = model.posterior(x)
        _check_members(c, q, k.Posterior, "the posterior it returns")
        c.passed("members")
        z = q.rsample()
        lp = q.log_prob(z)       # a posterior may only score its own latest samples (planar / radial flows)
        zs = q.rsample(5)
        lps = q.log_prob(zs)
        c.ok(tuple(z.shape) == (b, *shape), "shapes", f"rsample() should be {[b, *shape]}, got {list(z.shape)}")
        c.ok(tuple(zs.shape) == (5, b, *shape), "shapes", f"rsample(5) should be {[5, b, *shape]}, got {list(zs.shape)}")
        c.ok(tuple(q.mean.shape) == (b, *shape), "shapes", f"mean should be {[b, *shape]}, got {list(q.mean.shape)}")
        c.ok(tuple(lp.shape) == (b,), "shapes", f"log_prob of [B, ...] should be [{b}], got {list(lp.shape)}")
        c.ok(tuple(lps.shape) == (5, b), "shapes", f"log_prob of [5, B, ...] should be [5, {b}], got {list(lps.shape)}")
        c.ok(bool(torch.isfinite(lp).all()), "shapes", "log_prob of its own samples is not finite")
        c.passed("shapes")
        with torch.no_grad():
            if k.has(q, k.ClosedFormEntropy):
                h = q.entropy()
                mc = -q.log_prob(q.rsample(mc_samples)).mean(0)
                err = float((h - mc).abs().max())
                tol = 6 * float(q.log_prob(q.rsample(mc_samples)).std(0).max()) / math.sqrt(mc_samples) + 1e-4
                c.ok(tuple(h.shape) == (b,) and err < max(tol, 1e-3), "entropy",
                     f"entropy() differs from the Monte Carlo -E_q log q by {err:.4f} nats (tolerance {tol:.4f})")
                c.passed("entropy")
            else:
                c.skip("entropy", "no closed-form entropy() (the core estimates H[q] by Monte Carlo)")
            if k.has(q, k.AggregatePosterior):
                cross = q.cross_log_prob(zs[:, 0])                              # [5, B]
                c.ok(tuple(cross.shape) == (5, b), "aggregate",
                     f"cross_log_prob of [5, ...] should be [5, {b}], got {list(cross.shape)}")
                own = q.log_prob(zs[:, :1].expand(5, b, *shape))                # log q(z_m | x_b) for every b
                c.ok(torch.allclose(cross, own, atol=1e-4, rtol=1e-4), "aggregate",
                     "cross_log_prob(z)[m, b] differs from log_prob of z_m under q(z|x_b)")
                joined = type(q).cat([q, q])
                c.ok(tuple(joined.mean.shape) == (2 * b, *shape), "aggregate", "cat([q, q]) does not concatenate the batch")
                c.passed("aggregate")
            else:
                c.skip("aggregate", "no cross_log_prob/cat: diagnose reports I_q(x;z) as not available")
        model.train()
        trainable = [(n, p) for n, p in model.encoder.named_parameters() if p.requires_grad]
        if trainable and not k.is_fixed(q):
            loss = model.objective(x, prepared=True)[0]
            grads = torch.autograd.grad(loss, [p for _, p in trainable], allow_unused=True)
            reached = [n for (n, _), g in zip(trainable, grads) if g is not None]
            c.ok(reached, "gradients", "the ELBO gives no gradient to any of the encoder's parameters")
            c.ok(all(torch.isfinite(g).all() for g in grads if g is not None), "gradients", "non-finite gradients")
            c.passed("gradients")
        else:
            c.skip("gradients", "the encoder has no trainable parameters")
        _check_dtype(c, model, lambda: model.posterior(x.double() if model.dtype == torch.float64 else x).mean,
                     "the posterior mean")
        _check_safetensors(c, model, setup, lambda m: _seeded(lambda: m.posterior(x).mean))
        _check_in_vae(c, model, setup.data_shape, vae_steps, "encoder")
    return c.report


# -- decoders -------------------------------------------------------------------------------------
def check_decoder(factory_or_name, *, latent_shape=None, data_shape=None, args: dict[str, Any] | None = None,
                  encoder: dict[str, Any] | None = None, prior: dict[str, Any] | None = None,
                  vae_steps: int = 3, seed: int = 0) -> dict[str, Any]:
    """Run every conformance check on a decoder p(x|z); raise AssertionError on the first failure."""
    import torch

    from zoo import contracts as k

    setup = _setup("decoder", factory_or_name, latent_shape=latent_shape, data_shape=data_shape, args=args,
                   parts={"encoder": encoder, "prior": prior})
    c = _Check(setup.name, "decoder")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _build(setup)
        _check_members(c, model.decoder, k.Decoder, "the decoder")
        _check_members(c, model.decoder.likelihood, k.Likelihood, "its likelihood")
        x = model.prepare(_data(setup.data_shape))
        b = x.shape[0]
        z = model.prior.sample(b, generator=torch.Generator().manual_seed(4))
        obs = model.decoder(z)
        _check_members(c, obs, k.Observation, "the observation it returns")
        c.passed("members")
        lp_graph = obs.log_prob(x)
        lp = lp_graph.detach()
        c.ok(tuple(lp.shape) == (b,), "shapes", f"observation log_prob should be [{b}], got {list(lp.shape)}")
        for what, value in (("mean", obs.mean), ("sample()", obs.sample())):
            c.ok(tuple(value.shape) == (b, *setup.data_shape), "shapes",
                 f"observation {what} should be {[b, *setup.data_shape]}, got {list(value.shape)}")
        c.ok(bool(torch.isfinite(lp).all()), "shapes", "log_prob of prepared data is not finite")
        c.passed("shapes")
        if model.decoder.likelihood.discrete:
            c.ok(bool((lp <= 1e-4).all()), "mass", f"a discrete likelihood's log_prob must be <= 0 (a probability "
                                                  f"mass), got max {float(lp.max()):.4f}")
            c.passed("mass")
        else:
            c.skip("mass", "a continuous likelihood (discrete = False): log_prob is a density")
        trainable = [(n, p) for n, p in model.decoder.named_parameters() if p.requires_grad]
        if trainable:
            grads = torch.autograd.grad(-lp_graph.mean(), [p for _, p in trainable], allow_unused=True)
            c.ok(any(g is not None for g in grads), "gradients", "log_prob gives no gradient to the decoder's parameters")
            c.passed("gradients")
        else:
            c.skip("gradients", "the decoder has no trainable parameters of its own")
        _check_dtype(c, model, lambda: model.decoder(z.to(model.dtype)).mean, "the observation mean")
        _check_safetensors(c, model, setup, lambda m: _seeded(lambda: m.decoder(z).log_prob(x)))
        _check_in_vae(c, model, setup.data_shape, vae_steps, "decoder")
    return c.report


# -- likelihoods ----------------------------------------------------------------------------------
def check_likelihood(factory_or_name, *, args: dict[str, Any] | None = None, data_shape=None,
                     seed: int = 0, vae_steps: int = 3) -> dict[str, Any]:
    """Run every conformance check on a likelihood (the decoders' ``likelihood: NAME``)."""
    import torch

    from zoo import contracts as k

    setup = _setup("likelihood", factory_or_name, data_shape=data_shape, args=args)
    c = _Check(setup.name, "likelihood")
    shape = setup.data_shape
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        lik = setup.factory(**setup.args)
        _check_members(c, lik, k.ParametricLikelihood, "the likelihood")
        n = lik.params_per_dim
        c.ok(isinstance(n, int) and n >= 1, "members", f"params_per_dim must be a positive integer, got {n!r}")
        c.passed("members")
        x01 = _data(shape)
        x = lik.prepare(x01)
        back = lik.to_unit(x)
        c.ok(tuple(x.shape) == tuple(x01.shape), "prepare", "prepare() changes the shape of the images")
        c.ok(bool(((back >= 0) & (back <= 1)).all()), "prepare", "to_unit(prepare(x)) leaves [0, 1]")
        c.ok(torch.allclose(lik.prepare(back), x, atol=1e-5), "prepare",
             "prepare(to_unit(prepare(x))) != prepare(x): the data space and the images do not correspond")
        c.passed("prepare")
        params = torch.randn(x.shape[0], n * shape[0], *shape[1:])
        obs = lik(params)
        _check_members(c, obs, k.Observation, "the observation likelihood(params) returns")
        lp = obs.log_prob(x)
        c.ok(tuple(lp.shape) == (x.shape[0],), "shapes", f"log_prob should be [{x.shape[0]}], got {list(lp.shape)}")
        c.ok(tuple(obs.mean.shape) == tuple(x.shape) and tuple(obs.sample().shape) == tuple(x.shape), "shapes",
             "mean and sample() must have the data's shape")
        c.ok(bool(torch.isfinite(lp).all()), "shapes", "log_prob is not finite on prepared data")
        c.passed("shapes")
        if lik.discrete:
            c.ok(bool((lp <= 1e-4).all()), "mass", "a discrete likelihood's log_prob must be <= 0")
            c.passed("mass")
        else:
            c.skip("mass", "a continuous likelihood (discrete = False)")
    decoder = {"name": "mlp", "hidden": [16], "likelihood": {"name": setup.name, **setup.args}} \
        if isinstance(factory_or_name, str) else None
    if decoder is not None:
        check_decoder("mlp", args={k_: v for k_, v in decoder.items() if k_ != "name"}, data_shape=shape,
                      vae_steps=vae_steps, seed=seed)
        c.passed("in a decoder")
    else:
        c.skip("in a decoder", "not registered: register it to use it by name in a decoder")
    return c.report


# -- pytest plugin (entry point pytest11) -------------------------------------------------------
try:
    import pytest as _pytest
except ImportError:  # pragma: no cover - the kit works without pytest
    _pytest = None

if _pytest is not None:
    @_pytest.fixture
    def zoo_check_prior():
        """The prior conformance kit: ``zoo_check_prior(name_or_factory, latent_shape=(2,), ...)``."""
        return check_prior

    @_pytest.fixture
    def zoo_check_encoder():
        """The encoder conformance kit: ``zoo_check_encoder(name_or_factory, ...)``."""
        return check_encoder

    @_pytest.fixture
    def zoo_check_decoder():
        """The decoder conformance kit: ``zoo_check_decoder(name_or_factory, ...)``."""
        return check_decoder

    @_pytest.fixture
    def zoo_check_likelihood():
        """The likelihood conformance kit: ``zoo_check_likelihood(name_or_factory, args=...)``."""
        return check_likelihood
