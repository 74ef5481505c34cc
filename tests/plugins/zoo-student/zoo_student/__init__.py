"""A third-party latent-zoo plugin written from README's contract, using every kind of hook.

    prior       student-t       p(z) = prod_d t_nu(z_d; 0, 1), nu learned (exact log p)
    likelihood  beta            Beta(x; a, b) on pixel intensities in (0, 1) (a density)
    converter   student-v0      checkpoints of this plugin's v0, which stored nu as ``prior.df``
    sampler     tempered        z = T * z_prior: sharper (T < 1) or wider (T > 1) samples

and two components written against an incomplete reading of the contract, which the zoo must
refuse by name (tests/test_contract_plugin.py): ``bare-decoder`` (its likelihood has no
``discrete``) and ``scalar-t`` (its log_prob sums over the batch).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from zoo import hookimpl
from zoo.contracts import SamplerOption
from zoo.likelihoods import Likelihood, Observation


class StudentTPrior(nn.Module):
    """p(z) = prod_d Student-t(z_d; nu, 0, 1); log nu is a parameter."""

    exact = True
    samplers = ("tempered",)

    def __init__(self, *, latent_shape, data_shape=None, df: float = 5.0):
        super().__init__()
        self.latent_shape = tuple(latent_shape)
        self.log_df = nn.Parameter(torch.tensor(math.log(df)))

    def _dist(self):
        return torch.distributions.StudentT(self.log_df.exp())

    def log_prob(self, z):
        """sum_d log t_nu(z_d) (nats)."""
        return self._dist().log_prob(z).sum(tuple(range(-len(self.latent_shape), 0)))

    def sample(self, n, generator=None):
        shape = (n, *self.latent_shape)
        if generator is None:
            return self._dist().sample(shape)
        seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator))  # reproducible with the generator
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self._dist().sample(shape)


class BetaLikelihood(Likelihood):
    """Beta(x; a, b) on intensities squeezed into (eps, 1 - eps); the network gives log a and log b."""

    name = "beta"
    params_per_dim = 2
    discrete = False

    def __init__(self, eps: float = 1e-3):
        self.eps = eps

    def prepare(self, x01):
        return x01.clamp(self.eps, 1 - self.eps)

    def _ab(self, params):
        log_a, log_b = self.split(params)
        return log_a.clamp(-5, 8).exp(), log_b.clamp(-5, 8).exp()

    def log_prob_elementwise(self, params, x):
        a, b = self._ab(params)
        return torch.distributions.Beta(a, b).log_prob(x)

    def mean(self, params):
        a, b = self._ab(params)
        return a / (a + b)

    def sample(self, params, generator=None):
        a, b = self._ab(params)
        return self.prepare(torch.distributions.Beta(a, b).sample())


def student_v0_to_v1(state):
    """v0 stored the degrees of freedom as ``prior.df``; v1 learns ``prior.log_df``."""
    state = dict(state)
    if "prior.df" in state:
        state["prior.log_df"] = state.pop("prior.df").log()
    return state


class TemperedSampler:
    """Decode z = temperature * z_prior (the prior's own draw, scaled), the decoder's mean."""

    options = {"temperature": SamplerOption(float, 1.0, "scale of the prior draw (< 1: typical samples)")}

    def __call__(self, model, n, *, generator=None, temperature=1.0):
        z = temperature * model.prior.sample(n, generator=generator)
        return model.to_images(model.decoder(z).mean)


# -- written against an incomplete reading of the contract ------------------------------------------
class BareLikelihood:
    """What README v0.1 described: prepare / to_unit / name -- no ``discrete``."""

    name = "bare-bernoulli"

    def prepare(self, x01):
        return (x01 > 0.5).to(x01.dtype)

    def to_unit(self, x):
        return x


class BareDecoder(nn.Module):
    def __init__(self, *, data_shape, latent_shape):
        super().__init__()
        self.likelihood = BareLikelihood()
        self.net = nn.Linear(math.prod(latent_shape), math.prod(data_shape))
        self.data_shape = tuple(data_shape)

    def forward(self, z):
        logits = self.net(z.flatten(1)).reshape(z.shape[0], *self.data_shape)
        return torch.distributions.Independent(torch.distributions.Bernoulli(logits=logits), 3)


class ScalarStudentT(StudentTPrior):
    """A bug: log_prob sums over the batch too (returns a scalar)."""

    samplers = ()

    def log_prob(self, z):
        return self._dist().log_prob(z).sum()


@hookimpl
def register_priors(register):
    register("student-t", StudentTPrior)
    register("scalar-t", ScalarStudentT)


@hookimpl
def register_decoders(register):
    register("bare-decoder", BareDecoder)


@hookimpl
def register_likelihoods(register):
    register("beta", BetaLikelihood)


@hookimpl
def register_converters(register):
    register("student-v0", student_v0_to_v1)


@hookimpl
def register_samplers(register):
    register("tempered", TemperedSampler())


@hookimpl
def register_cards(register):
    register(Path(__file__).parent / "vae-student-digits.md")


# keep Observation importable from here for authors who subclass it
__all__ = ["StudentTPrior", "BetaLikelihood", "TemperedSampler", "student_v0_to_v1", "Observation"]
