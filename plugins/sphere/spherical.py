"""Hyperspherical VAE, S-VAE (Davidson et al. 2018): a von Mises-Fisher posterior, a uniform prior on S^{m-1}.

z lives on the unit sphere S^{m-1} in R^m (``latent: {shape: [m]}``, m >= 2); densities are
w.r.t. the sphere's surface measure.

    q(z|x) = vMF(z; mu, kappa) = C_m(kappa) exp(kappa mu^T z),
             C_m(kappa) = kappa^{m/2-1} / ((2 pi)^{m/2} I_{m/2-1}(kappa))               (eq. 3)
    p(z)   = U(S^{m-1}) = 1 / |S^{m-1}|,  |S^{m-1}| = 2 pi^{m/2} / Gamma(m/2)

    KL(vMF || U) = kappa I_{m/2}(kappa) / I_{m/2-1}(kappa) + log C_m(kappa) + log |S^{m-1}|   (eq. 4)
    H[vMF] = -kappa A_m(kappa) - log C_m(kappa),  E[z] = A_m(kappa) mu,  A_m = I_{m/2} / I_{m/2-1}

so the rate is closed form (prior ``cross_entropy`` = log |S^{m-1}| minus the posterior's
``entropy``), and so is log q(z_m|x_b) for every pair (the exact aggregate posterior).

Sampling (Wood 1994; the paper's Algorithm 1): draw the component along mu, w in [-1, 1], by
rejection -- with b = (m-1) / (2 kappa + sqrt(4 kappa^2 + (m-1)^2)), a = ((m-1) + 2 kappa +
sqrt(4 kappa^2 + (m-1)^2)) / 4, d = 4ab/(1+b) - (m-1) log(m-1): eps ~ Beta((m-1)/2, (m-1)/2),
w = (1 - (1+b) eps) / (1 - (1-b) eps), t = 2ab / (1 - (1-b) eps), accept when
(m-1) log t - t + d >= log u, u ~ U(0, 1) --, then z' = (w, sqrt(1 - w^2) v) with v uniform on
S^{m-2}, and the Householder reflection that maps e_1 to mu.  The gradient is the paper's
reparameterisation through the accepted proposal (section 3.2, following Naesseth et al. 2017):
eps is held fixed and w = h(eps, kappa) is differentiated through b(kappa), the reflection through
mu.  That is g_rep, all a plain ``rsample`` can give (``objective: {loss: elbo}``, as the
authors' implementation trains).  The full gradient of the paper, g_rep + g_cor (Naesseth et al.
2017, eq. 7-8), needs the loss at the sample: ``objective: {loss: rsvi}`` (the prior's
``training_loss``, :func:`rsvi_loss`) adds the correction through the score of the accepted proposal

    rho(eps, kappa) = log q(w(eps, kappa) | kappa) + log |dw/d eps|,
    log q(w | kappa) = kappa w + (m-3)/2 log(1 - w^2) - log N(kappa),
    N(kappa) = sqrt(pi) Gamma((m-1)/2) (2/kappa)^{m/2-1} I_{m/2-1}(kappa),   |dw/d eps| = 2b / (1 - (1-b) eps)^2,

as the surrogate f + sg[f] (rho - sg[rho]) with f the distortion: its value is the ELBO, its
gradient the unbiased g_rep + g_cor (g_rep alone is biased at small kappa and m).  The rate's
gradient is exact either way (closed form).
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo import contracts as c

from .bessel import log_bessel_i
from zoo_plugins.basic.layers import activation as act_layer
from zoo_plugins.basic.layers import mlp, numel


def log_sphere_area(m: int) -> float:
    """log |S^{m-1}| = log(2 pi^{m/2} / Gamma(m/2))."""
    return math.log(2) + 0.5 * m * math.log(math.pi) - math.lgamma(0.5 * m)


def log_vmf_normaliser(kappa: Tensor, m: int) -> Tensor:
    """log C_m(kappa) = (m/2 - 1) log kappa - (m/2) log 2 pi - log I_{m/2-1}(kappa)."""
    return (0.5 * m - 1) * kappa.log() - 0.5 * m * math.log(2 * math.pi) - log_bessel_i(0.5 * m - 1, kappa)


def mean_resultant_length(kappa: Tensor, m: int) -> Tensor:
    """A_m(kappa) = I_{m/2}(kappa) / I_{m/2-1}(kappa) = |E[z]|."""
    return (log_bessel_i(0.5 * m, kappa) - log_bessel_i(0.5 * m - 1, kappa)).exp()


def _beta_symmetric(alpha2: int, shape, like: Tensor, generator) -> Tensor:
    """Beta(alpha2 / 2, alpha2 / 2) as X / (X + Y) with X, Y chi-square(alpha2) from squared normals."""
    x = torch.randn((*shape, alpha2), device=like.device, dtype=like.dtype, generator=generator).pow(2).sum(-1)
    y = torch.randn((*shape, alpha2), device=like.device, dtype=like.dtype, generator=generator).pow(2).sum(-1)
    return x / (x + y)


def wood_w(kappa: Tensor, m: int, generator: torch.Generator | None = None,
           max_rounds: int = 1000) -> tuple[Tensor, Tensor, Tensor]:
    """w = mu^T z for z ~ vMF(mu, kappa) by Wood's rejection sampler, reparameterised through b(kappa).

    Returns (w, the accepted proposal eps, b), each of kappa's shape; w and b carry the gradient in kappa."""
    flat = kappa.reshape(-1)
    with torch.no_grad():
        k = flat.detach()
        root = torch.sqrt(4 * k ** 2 + (m - 1) ** 2)
        b = (m - 1) / (2 * k + root)
        a = ((m - 1) + 2 * k + root) / 4
        d = 4 * a * b / (1 + b) - (m - 1) * math.log(m - 1)
        eps = torch.zeros_like(k)
        pending = torch.ones_like(k, dtype=torch.bool)
        for _ in range(max_rounds):
            e = _beta_symmetric(m - 1, k.shape, k, generator)
            u = torch.rand(k.shape, device=k.device, dtype=k.dtype, generator=generator)
            t = 2 * a * b / (1 - (1 - b) * e)
            accept = pending & ((m - 1) * t.log() - t + d >= u.clamp(min=1e-30).log())
            eps = torch.where(accept, e, eps)
            pending = pending & ~accept
            if not bool(pending.any()):
                break
        else:
            raise RuntimeError(f"the vMF rejection sampler did not accept within {max_rounds} rounds")
    b = (m - 1) / (2 * flat + torch.sqrt(4 * flat ** 2 + (m - 1) ** 2))    # with the gradient in kappa
    w = (1 - (1 + b) * eps) / (1 - (1 - b) * eps)
    return w.reshape(kappa.shape), eps.reshape(kappa.shape), b.reshape(kappa.shape)


def proposal_score(w: Tensor, eps: Tensor, b: Tensor, kappa: Tensor, m: int) -> Tensor:
    """rho = log q(w|kappa) + log |dw/d eps| at the accepted proposal (the g_cor score, module docstring)."""
    nu = 0.5 * m - 1
    log_n = (0.5 * math.log(math.pi) + math.lgamma(0.5 * (m - 1)) + nu * (math.log(2) - kappa.log())
             + log_bessel_i(nu, kappa))
    log_q = kappa * w + 0.5 * (m - 3) * torch.log((1 - w ** 2).clamp(min=1e-30)) - log_n
    return log_q + torch.log(2 * b) - 2 * torch.log(1 - (1 - b) * eps)


def householder_to(mu: Tensor, z: Tensor) -> Tensor:
    """The reflection that maps e_1 to mu, applied to z ``[..., m]`` (mu ``[..., m]``, broadcast)."""
    e1 = torch.zeros_like(mu)
    e1[..., 0] = 1
    u = e1 - mu
    norm = u.norm(dim=-1, keepdim=True)
    u_hat = u / norm.clamp(min=1e-12)
    reflected = z - 2 * (z * u_hat).sum(-1, keepdim=True) * u_hat
    return torch.where(norm > 1e-6, reflected, z)                             # mu = e_1: the identity


@dataclass
class VonMisesFisher:
    """vMF(mu, kappa) on S^{m-1}: mean direction ``loc`` ``[B, m]`` (unit), concentration ``kappa`` ``[B]``.

    ``x`` and ``decoder`` (set by the vmf encoder) are what :func:`rsvi_loss` needs."""

    loc: Tensor
    kappa: Tensor
    x: Tensor | None = None
    decoder: nn.Module | None = None

    notes = {"kl_per_dim": "not defined: a density on the sphere does not factorise over the coordinates of R^m"}

    def __post_init__(self) -> None:
        self._score: tuple[Tensor, Tensor] | None = None

    @property
    def m(self) -> int:
        return self.loc.shape[-1]

    @property
    def mean(self) -> Tensor:
        """E[z] = A_m(kappa) mu (inside the ball: |E z| < 1)."""
        return mean_resultant_length(self.kappa, self.m)[:, None] * self.loc

    def rsample(self, n: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Reparameterised samples on the sphere, ``[B, m]`` or ``[n, B, m]``."""
        kappa = self.kappa if n is None else self.kappa.expand(n, *self.kappa.shape)
        loc = self.loc if n is None else self.loc.expand(n, *self.loc.shape)
        w, eps, b = wood_w(kappa, self.m, generator)
        v = torch.randn((*loc.shape[:-1], self.m - 1), device=loc.device, dtype=loc.dtype, generator=generator)
        v = v / v.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        z = householder_to(loc, torch.cat([w[..., None], torch.sqrt((1 - w[..., None] ** 2).clamp(min=1e-10)) * v], -1))
        self._score = (z, proposal_score(w, eps, b, kappa, self.m))
        return z

    def score(self, z: Tensor) -> Tensor:
        """rho of the accepted proposals behind the z this posterior last sampled, ``[B]`` (or ``[n, B]``)."""
        if self._score is None or z is not self._score[0]:
            raise ValueError("the proposal score is kept for the z last returned by rsample() only")
        return self._score[1]

    sample = rsample

    def log_prob(self, z: Tensor) -> Tensor:
        """log C_m(kappa) + kappa mu^T z (nats, w.r.t. the surface measure), z ``[..., B, m]`` -> ``[..., B]``."""
        return log_vmf_normaliser(self.kappa, self.m) + self.kappa * (z * self.loc).sum(-1)

    def entropy(self) -> Tensor:
        """H = -kappa A_m(kappa) - log C_m(kappa), ``[B]``."""
        return -self.kappa * mean_resultant_length(self.kappa, self.m) - log_vmf_normaliser(self.kappa, self.m)

    def cross_log_prob(self, z: Tensor, chunk: int = 8192) -> Tensor:
        """log q(z_i | x_b) for every pair: z ``[M, m]`` -> ``[M, B]``."""
        const = log_vmf_normaliser(self.kappa, self.m)
        scaled = self.kappa[:, None] * self.loc
        return torch.cat([zc @ scaled.T + const for zc in z.split(chunk)])

    @staticmethod
    def cat(parts: list["VonMisesFisher"]) -> "VonMisesFisher":
        return VonMisesFisher(torch.cat([p.loc for p in parts]), torch.cat([p.kappa for p in parts]))


def rsvi_loss(prior, q, loss: str):
    """The ELBO with the paper's full gradient g_rep + g_cor (module docstring), for a batch.

    Per sample: distortion f = -log p(x|z) (nats) at z ~ vMF, rate = KL(vMF || U) closed form;
    the loss is mean(f + sg[f] (rho - sg[rho]) + rate), whose value is -ELBO.
    Returns (loss, ELBO terms)."""
    from zoo.model import ELBO

    if loss != "rsvi":
        raise ValueError(f"the hyperspherical-uniform prior defines objective.loss 'rsvi' (the ELBO with the "
                         f"rejection-sampler correction g_cor), not {loss!r}; 'elbo' trains on g_rep alone")
    if not isinstance(q, VonMisesFisher) or q.decoder is None or q.x is None:
        raise ValueError("objective.loss 'rsvi' needs the vmf encoder (a von Mises-Fisher posterior)")
    z = q.rsample()
    rho = q.score(z)
    distortion = -q.decoder(z).log_prob(q.x)
    rate = prior.cross_entropy(q) - q.entropy()
    surrogate = distortion + distortion.detach() * (rho - rho.detach())
    terms = ELBO(-(distortion + rate).detach(), distortion.detach(), rate.detach(), {})
    return (surrogate + rate).mean(), terms


class HypersphericalUniform(nn.Module):
    """p(z) = 1 / |S^{m-1}|, the uniform distribution on the unit sphere of ``latent: {shape: [m]}``."""

    exact = True
    manifold = "sphere"
    family = "hyperspherical-vae"
    zoo_test_components = {"encoder": {"name": "vmf", "hidden": [16]}}

    def __init__(self, *, latent_shape, data_shape=None):
        super().__init__()
        self.latent_shape = tuple(latent_shape)
        if len(self.latent_shape) != 1 or self.latent_shape[0] < 2:
            raise ValueError(f"the hyperspherical-uniform prior lives on S^(m-1) in R^m, m >= 2: latent shape must "
                             f"be [m], got {list(latent_shape)}")
        self.m = self.latent_shape[0]
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def log_prob(self, z: Tensor) -> Tensor:
        """-log |S^{m-1}| for every z on the sphere (nats); any leading dimensions."""
        return z.new_full(z.shape[:-1], -log_sphere_area(self.m))

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        z = torch.randn((n, self.m), generator=generator, device=self._anchor.device, dtype=self._anchor.dtype)
        return z / z.norm(dim=-1, keepdim=True)

    def cross_entropy(self, q) -> Tensor:
        """-E_q[log p(z)] = log |S^{m-1}|, ``[B]``."""
        return q.kappa.new_full(q.kappa.shape, log_sphere_area(self.m))

    def training_loss(self, q, loss: str):
        """``objective: {loss: rsvi}``: the ELBO with the full g_rep + g_cor gradient (:func:`rsvi_loss`)."""
        return rsvi_loss(self, q, loss)


class VMFEncoder(nn.Module):
    """Flatten -> MLP -> mean direction mu = v / |v| and concentration kappa = softplus(s) + min_concentration."""

    posterior_type = VonMisesFisher
    family = "hyperspherical-vae"
    test_shapes = {"latent_shape": (3,)}
    zoo_test_components = {"prior": {"name": "hyperspherical-uniform"}}

    def __init__(self, *, data_shape, latent_shape, hidden: list[int] = (256,), activation: str = "relu",
                 min_concentration: float = 1.0):
        super().__init__()
        if len(tuple(latent_shape)) != 1 or latent_shape[0] < 2:
            raise ValueError(f"the vmf encoder's z lives on S^(m-1) in R^m, m >= 2: latent shape must be [m], "
                             f"got {list(latent_shape)}")
        if not min_concentration > 0:
            raise ValueError(f"the vmf encoder's min_concentration must be > 0, got {min_concentration}")
        hidden = list(hidden)
        self.body = nn.Sequential(nn.Flatten(), mlp([numel(data_shape), *hidden], activation), act_layer(activation))
        self.head = nn.Linear(hidden[-1], int(latent_shape[0]) + 1)
        self.min_concentration = float(min_concentration)
        self._model = None

    def bind(self, model) -> None:
        if c.manifold_of(model.prior) != "sphere":
            raise ValueError(f"a von Mises-Fisher posterior lives on the unit sphere: the prior must declare "
                             f"manifold = 'sphere' (e.g. hyperspherical-uniform), not {type(model.prior).__name__}")
        object.__setattr__(self, "_model", weakref.ref(model))

    def forward(self, x: Tensor) -> VonMisesFisher:
        out = self.head(self.body(x))
        loc = F.normalize(out[:, :-1], dim=-1)
        model = self._model() if self._model is not None else None
        return VonMisesFisher(loc, F.softplus(out[:, -1]) + self.min_concentration, x,
                              model.decoder if model is not None else None)
