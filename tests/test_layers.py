"""Property tests for every bijection in ``train.layers.LAYERS`` and for the whole FlowModel.

All in float64 on tiny odd-shaped inputs, so that the tolerances can be tight:
  * round trip both ways: inverse(forward(x)) == x and forward(inverse(z)) == z;
  * the log-dets of forward and inverse are opposite at matching points;
  * each log-det equals log|det J| of the brute-force autograd Jacobian;
  * the model is fully convolutional: two image sizes work.
"""
from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import jacobian

from flowrt.train.config import ModelConfig
from flowrt.prior.layers import LAYERS, AffineCoupling, InvConv1x1
from flowrt.prior.flow import FlowModel, log_normal, nll_to_bpd

ROUND_TRIP_ATOL = 1e-10
LOGDET_ATOL = 1e-8


def _inputs(shape, seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _layer(name: str):
    factory, shape = LAYERS[name]
    return factory().double().eval(), shape


def _brute_force_logdet(fn, x: torch.Tensor) -> torch.Tensor:
    """log|det d fn(x_b) / d x_b| for each sample b of x (B, ...), via the full autograd Jacobian."""
    out = []
    for b in range(x.shape[0]):
        xb = x[b:b + 1]
        jac = jacobian(lambda v: fn(v)[0], xb).reshape(xb.numel(), xb.numel())
        sign, logabs = torch.linalg.slogdet(jac)
        assert sign != 0, "Jacobian is singular: the map is not a bijection here"
        out.append(logabs)
    return torch.stack(out)


def _tiny_model(seed: int = 0) -> FlowModel:
    """2 levels x 1 step, width 8, ActNorm initialised on data, every parameter moved off its init."""
    torch.manual_seed(seed)
    model = FlowModel(ModelConfig(levels=2, steps_per_level=1, width=8, seed=seed)).double()
    model.initialize(torch.rand(4, 3, 8, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)))
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():   # zero-initialised nets would make couplings and splits the identity
            p.add_(0.2 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model.eval()


def _images(shape, seed: int) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_round_trips_both_ways(name):
    layer, shape = _layer(name)
    x = _inputs(shape, seed=1)
    with torch.no_grad():
        z, _ = layer(x)
        x_back, _ = layer.inverse(z)
        z_in = _inputs(z.shape, seed=2)   # a latent that did not come from forward
        z_back, _ = layer(layer.inverse(z_in)[0])
    assert z.dtype == torch.float64 and z.shape[0] == x.shape[0]
    torch.testing.assert_close(x_back, x, atol=ROUND_TRIP_ATOL, rtol=0)
    torch.testing.assert_close(z_back, z_in, atol=ROUND_TRIP_ATOL, rtol=0)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_logdets_are_opposite(name):
    layer, shape = _layer(name)
    x = _inputs(shape, seed=3)
    with torch.no_grad():
        z, logdet_fwd = layer(x)
        _, logdet_inv = layer.inverse(z)
    assert logdet_fwd.shape == (x.shape[0],)
    torch.testing.assert_close(logdet_fwd, -logdet_inv, atol=LOGDET_ATOL, rtol=0)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_logdet_matches_autograd_jacobian(name):
    layer, shape = _layer(name)
    x = _inputs(shape, seed=4)
    with torch.no_grad():
        z, logdet_fwd = layer(x)
        _, logdet_inv = layer.inverse(z)
    torch.testing.assert_close(logdet_fwd, _brute_force_logdet(layer, x), atol=LOGDET_ATOL, rtol=0)
    torch.testing.assert_close(logdet_inv, _brute_force_logdet(layer.inverse, z), atol=LOGDET_ATOL, rtol=0)


def test_frozen_invconv_matches_parametrised():
    """freeze() bakes W and W^-1 as constants; both directions must stay the same map."""
    conv = InvConv1x1(5, seed=3).double()
    x = _inputs((2, 5, 3, 5), seed=5)
    z, ld = conv(x)
    conv.freeze()
    z_frozen, ld_frozen = conv(x)
    torch.testing.assert_close(z_frozen, z, atol=1e-12, rtol=0)
    torch.testing.assert_close(ld_frozen, ld, atol=1e-12, rtol=0)
    torch.testing.assert_close(conv.inverse(z_frozen)[0], x, atol=ROUND_TRIP_ATOL, rtol=0)


def test_coupling_scale_is_bounded_for_extreme_inputs():
    """Soft-bounded log-scales: neither direction overflows however large the input."""
    layer = AffineCoupling(4, 8, scale_bound=2.0).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.fill_(3.0)
        x = torch.full((1, 4, 3, 5), 1e6, dtype=torch.float64)
        z, ld = layer(x)
        x_back, ld_inv = layer.inverse(z)
    assert torch.isfinite(z).all() and torch.isfinite(x_back).all()
    assert ld.abs().max() <= 2.0 * 2 * 3 * 5   # |log s| < bound for each of the 2 x 3 x 5 scaled entries
    torch.testing.assert_close(ld, -ld_inv)


def test_model_round_trips_both_ways():
    model = _tiny_model()
    x = _images((2, 3, 4, 12), seed=6)
    with torch.no_grad():
        u, _ = model(x)
        x_back, _ = model.inverse(u)
        u_in = _inputs(u.shape, seed=7)
        u_back, _ = model(model.inverse(u_in)[0])
    assert u.shape == x.shape
    torch.testing.assert_close(x_back, x, atol=ROUND_TRIP_ATOL, rtol=0)
    torch.testing.assert_close(u_back, u_in, atol=ROUND_TRIP_ATOL, rtol=0)


def test_model_logdets_opposite_and_match_autograd_jacobian():
    model = _tiny_model()
    x = _images((2, 3, 4, 12), seed=8)
    with torch.no_grad():
        u, logdet_fwd = model(x)
        _, logdet_inv = model.inverse(u)
    torch.testing.assert_close(logdet_fwd, -logdet_inv, atol=LOGDET_ATOL, rtol=0)
    torch.testing.assert_close(logdet_fwd, _brute_force_logdet(model, x), atol=LOGDET_ATOL, rtol=0)
    torch.testing.assert_close(logdet_inv, _brute_force_logdet(model.inverse, u), atol=LOGDET_ATOL, rtol=0)


def test_model_log_prob_and_bits_per_dim_are_consistent():
    model = _tiny_model()
    x = _images((3, 3, 8, 4), seed=9)
    with torch.no_grad():
        u, logdet = model(x)
        log_p = model.log_prob(x)
        bpd = model.bits_per_dim(x)
    torch.testing.assert_close(log_p, log_normal(u) + logdet)
    torch.testing.assert_close(bpd, nll_to_bpd(-log_p, 3 * 8 * 4))
    torch.testing.assert_close(bpd, -log_p / (96 * torch.log(torch.tensor(2.0, dtype=torch.float64))) + 8)


@pytest.mark.parametrize("size", [(8, 12), (16, 4)])
def test_model_is_fully_convolutional(size):
    """One set of weights, two image sizes: same-shape latent, exact round trip, finite density."""
    model = _tiny_model()
    x = _images((2, 3) + size, seed=10)
    with torch.no_grad():
        u, _ = model(x)
        x_back, _ = model.inverse(u)
        log_p = model.log_prob(x)
    assert u.shape == x.shape
    assert model.level_map(*size).shape == (1, 3) + size
    assert torch.isfinite(log_p).all() and log_p.shape == (2,)
    torch.testing.assert_close(x_back, x, atol=ROUND_TRIP_ATOL, rtol=0)


def test_model_rejects_sides_not_divisible_by_its_multiple():
    model = _tiny_model()
    assert model.multiple == 4
    with pytest.raises(ValueError, match="divisible by 4"):
        model.check_shape(torch.zeros(1, 3, 6, 8))
    model.check_shape(torch.zeros(1, 3, 8, 12))


def test_frozen_model_is_the_same_map():
    model = _tiny_model()
    x = _images((2, 3, 8, 8), seed=11)
    with torch.no_grad():
        u, ld = model(x)
        model.freeze()
        u_frozen, ld_frozen = model(x)
        x_back, _ = model.inverse(u_frozen)
    torch.testing.assert_close(u_frozen, u, atol=1e-12, rtol=0)
    torch.testing.assert_close(ld_frozen, ld, atol=1e-10, rtol=0)
    torch.testing.assert_close(x_back, x, atol=ROUND_TRIP_ATOL, rtol=0)
