"""zoo.build runs every given module once on a trial input of the declared shape and refuses a wrong return type,
naming the module, what it returned and what the contract wants (issue 20); a (mu, logvar) encoder is pointed at
zoo.adapters.MeanLogvarEncoder, which makes it a zoo encoder that trains, saves and reloads."""
from __future__ import annotations

import pytest
import torch

import zoo
from zoo.adapters import MeanLogvarEncoder
from zoo.errors import ContractError

from byo_modules import TinyDecoder, TinyEncoder
from tuple_modules import TensorDecoder, TupleEncoder

SHAPES = {"data_shape": (1, 8, 8), "latent_shape": (4,)}


def test_a_tuple_encoder_is_refused_by_name_with_a_pointer_to_the_wrapper():
    with pytest.raises(ContractError) as err:
        zoo.build(encoder=TupleEncoder(), decoder=TinyDecoder(), **SHAPES)
    text = str(err.value)
    assert "the encoder module 'tuple_modules:TupleEncoder'" in text
    assert "returned a tuple (Tensor [2, 4], Tensor [2, 4])" in text and "trial input [2, 1, 8, 8]" in text
    assert "zoo.contracts.Posterior" in text and "zoo.adapters.MeanLogvarEncoder" in text


def test_a_decoder_returning_a_tensor_is_refused_by_name():
    with pytest.raises(ContractError, match=r"the decoder module 'tuple_modules:TensorDecoder' returned a Tensor "
                                            r"from forward\(z\).*zoo\.contracts\.Observation"):
        zoo.build(encoder=TinyEncoder(), decoder=TensorDecoder(), **SHAPES)


def test_a_module_failing_on_the_declared_shape_is_named():
    with pytest.raises(ContractError, match=r"the encoder module 'byo_modules:TinyEncoder' failed on a trial input "
                                            r"of the declared data shape \[2, 1, 28, 28\]"):
        zoo.build(encoder=TinyEncoder(), decoder=TinyDecoder(data_shape=(1, 28, 28)), data_shape=(1, 28, 28),
                  latent_shape=(4,))


def test_the_trial_leaves_batchnorm_statistics_and_training_mode_alone():
    encoder = MeanLogvarEncoder(TupleEncoder())
    encoder.net.net.append(torch.nn.BatchNorm1d(8))
    model = zoo.build(encoder=encoder, decoder=TinyDecoder(), **SHAPES)
    bn = encoder.net.net[-1]
    assert model.training and bn.training and int(bn.num_batches_tracked) == 0


def test_the_wrapped_tuple_encoder_is_a_gaussian_posterior_that_saves_and_reloads(tmp_path):
    torch.manual_seed(0)
    net = TupleEncoder()
    model = zoo.build(encoder=MeanLogvarEncoder(net), decoder=TinyDecoder(), **SHAPES)
    x = torch.rand(3, 1, 8, 8)
    mu, logvar = net(model.prepare(x))
    q = model.encode(x)
    assert torch.equal(q.mean, mu) and torch.allclose(q.variance, logvar.exp())
    model.save_pretrained(tmp_path / "m")
    again = zoo.load(tmp_path / "m", trust_modules=True)
    assert isinstance(again.encoder, MeanLogvarEncoder) and isinstance(again.encoder.net, TupleEncoder)
    assert torch.equal(again.encode(x).mean, mu)
