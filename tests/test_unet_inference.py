"""Without autograd, in eval mode on a CPU, the UNet runs a batch channels-last whatever its input's format (issue 22):
the same function as the autograd path, the output in the input's format; train mode keeps the input's format."""
from __future__ import annotations

import pytest
import torch

from zoo_plugins.diffusion.unet import UNet, UNetConfig

# two levels with a width change (1x1 shortcuts in both directions), attention, up/down sampling
SMALL = UNetConfig(in_channels=3, out_channels=3, sample_size=8, channels=16, channel_mult=(1, 2),
                   num_res_blocks=1, attention_resolutions=(4,), norm_groups=4)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    model = UNet(SMALL).eval()
    with torch.no_grad():
        for p in model.parameters():   # non-trivial biases and weights everywhere
            p.normal_(0.0, 0.2)
    return model


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_inference_path_equals_the_autograd_path(net, channels_last, mode):
    g = torch.Generator().manual_seed(1)
    x, t = torch.randn(5, 3, 8, 8, generator=g), torch.randint(0, 1000, (5,), generator=g)
    with torch.enable_grad():
        expected = net(x, t).detach()
    assert expected.abs().max() > 0.5
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net.to(memory_format=fmt)
    try:
        with getattr(torch, mode)():
            got = net(x.contiguous(memory_format=fmt), t)
    finally:
        net.to(memory_format=torch.contiguous_format)
    assert got.is_contiguous(memory_format=fmt)          # the output comes back in the input's format
    assert (got - expected).abs().max().item() < 1e-5


def test_dropout_still_applies_in_train_mode_without_autograd():
    cfg = UNetConfig(**{**SMALL.to_dict(), "dropout": 0.5})
    torch.manual_seed(0)
    model = UNet(cfg).train()
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([3, 700])
    torch.manual_seed(7)
    with torch.enable_grad():
        expected = model(x, t).detach()
    torch.manual_seed(7)
    with torch.no_grad():
        same = model(x, t)
        other = model(x, t)                                # another dropout mask
    assert torch.allclose(same, expected, atol=1e-6)
    assert not torch.allclose(other, expected, atol=1e-3)


def test_the_body_runs_channels_last_only_for_an_eval_batch_without_autograd(net):
    seen: list[bool] = []
    hook = net.conv_out.register_forward_pre_hook(
        lambda module, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    try:
        x4, x1, t4 = torch.randn(4, 3, 8, 8), torch.randn(1, 3, 8, 8), torch.tensor([1, 2, 3, 4])
        with torch.no_grad():
            out = net(x4, t4)
            net(x1, t4[:1])                 # a batch of one keeps its format
            net.train()
            try:
                net(x4, t4)                 # train mode keeps its format
            finally:
                net.eval()
        net(x4, t4)                         # autograd keeps its format
    finally:
        hook.remove()
    assert seen == [True, False, False, False]
    assert out.is_contiguous()
