"""Tests of CardiacAI.networks: shapes, divisibility errors, gradient flow, parameter counts, registry."""

from __future__ import annotations

import pytest
import torch

from CardiacAI.errors import InputError, ModelError
from CardiacAI.networks import available_networks, build_network, count_parameters, default_params

NAMES = ["densevnet", "unet", "se_swin"]


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)
    torch.manual_seed(0)


def test_registry_lists_the_three_networks():
    assert available_networks() == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(1, 1, 16, 16, 16), (2, 1, 24, 16, 32)])
def test_output_is_logits_of_input_size(name, shape):
    net = build_network(name, 1, 11)
    assert net.divisible_by == 8
    y = net(torch.randn(*shape))
    assert y.shape == (shape[0], 11, *shape[2:])
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", NAMES)
def test_wrong_divisibility_is_a_clear_error(name):
    net = build_network(name, 1, 6)
    with pytest.raises(InputError, match="multiple of 8"):
        net(torch.randn(1, 1, 16, 20, 16))
    with pytest.raises(InputError, match="input channel"):
        net(torch.randn(1, 2, 16, 16, 16))
    with pytest.raises(InputError, match="5D"):
        net(torch.randn(1, 16, 16, 16))


@pytest.mark.parametrize("name", NAMES)
def test_gradient_reaches_every_parameter(name):
    net = build_network(name, 1, 6)
    x = torch.randn(2, 1, 16, 16, 16)
    target = torch.randint(0, 6, (2, 16, 16, 16))
    loss = torch.nn.functional.cross_entropy(net(x), target)
    loss.backward()
    missing = [n for n, p in net.named_parameters() if p.requires_grad and (p.grad is None or not torch.any(p.grad != 0))]
    assert not missing, f"no gradient for {missing[:5]}"


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_is_compact_and_reported(name):
    net = build_network(name, 1, 11)
    n = count_parameters(net)
    # "small model for CPU": the defaults stay well under a million parameters, and grow with features
    assert 10_000 < n < 1_000_000
    print(f"{name}: {n} parameters with defaults {default_params(name)}")
    bigger = {"densevnet": {"down_features": [16, 32, 48]}, "unet": {"channels": [16, 32, 64, 128]},
              "se_swin": {"features": [16, 32, 64, 96]}}[name]
    assert count_parameters(build_network(name, 1, 11, **bigger)) > n


def test_unet_divisibility_follows_strides():
    net = build_network("unet", 1, 3, channels=[4, 8, 16], strides=[2, 2])
    assert net.divisible_by == 4
    assert net(torch.randn(1, 1, 12, 12, 12)).shape == (1, 3, 12, 12, 12)


def test_se_swin_strided_stem_keeps_the_input_size_and_needs_multiples_of_16():
    net = build_network("se_swin", 1, 6, stem_stride=2)
    assert net.divisible_by == 16
    y = net(torch.randn(2, 1, 16, 32, 48))
    assert y.shape == (2, 6, 16, 32, 48)
    # the strided stem works at half resolution: fewer activations than the full-resolution stem
    assert net.stem(torch.randn(1, 1, 16, 32, 48)).shape[2:] == (8, 16, 24)
    with pytest.raises(InputError, match="multiple of 16"):
        net(torch.randn(1, 1, 16, 24, 16))
    with pytest.raises(ModelError, match="stem_stride"):
        build_network("se_swin", 1, 6, stem_stride=4)


def test_bad_names_and_parameters_are_model_errors():
    with pytest.raises(ModelError, match="unknown network"):
        build_network("vnet9000", 1, 2)
    with pytest.raises(ModelError, match="unknown parameter"):
        build_network("densevnet", 1, 2, features=3)
    with pytest.raises(ModelError, match="three positive"):
        build_network("densevnet", 1, 2, layers=[1, 2])
    with pytest.raises(ModelError, match="divisible by heads"):
        build_network("se_swin", 1, 2, features=[8, 15, 32, 48])


def test_eval_mode_is_deterministic_and_batch_independent():
    net = build_network("densevnet", 1, 4).eval()
    x = torch.randn(2, 1, 16, 16, 16)
    with torch.no_grad():
        both = net(x)
        single = net(x[1:2])
    torch.testing.assert_close(both[1:2], single, rtol=1e-4, atol=1e-5)


def test_se_swin_instance_norm_carries_no_statistics_from_training():
    # instance norm normalises each input by its own statistics: nothing gathered on the (synthetic)
    # training data is applied to a scan, so training mode and evaluation mode give the same output;
    # batch norm's running statistics make them differ
    torch.manual_seed(0)
    x = torch.randn(2, 1, 16, 32, 32) * 3 + 2
    instance = build_network("se_swin", 1, 3, stem_stride=2, norm="instance")
    assert not any("running" in k for k in instance.state_dict())
    with torch.no_grad():
        assert torch.allclose(instance.train()(x), instance.eval()(x), atol=1e-5)
    batch = build_network("se_swin", 1, 3, stem_stride=2)
    with torch.no_grad():
        assert not torch.allclose(batch.train()(x), batch.eval()(x), atol=1e-3)
    with pytest.raises(ModelError, match="norm must be one of batch, instance"):
        build_network("se_swin", 1, 3, norm="layer")
