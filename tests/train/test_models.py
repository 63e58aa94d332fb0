import pytest

from train.models import ARCHS, build


@pytest.mark.parametrize("act", ["relu", "tanhexp"])
def test_seed_model_matches_the_seed_exactly(act):
    m = build("seed", act)
    assert m.count_params() == 42_442
    shapes = [tuple(layer.output_shape[1:]) for layer in m.layers[1:]]
    assert shapes == [(30, 30, 32), (30, 30, 32), (15, 15, 32), (13, 13, 64), (13, 13, 64),
                      (6, 6, 64), (2304,), (10,)]


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="architecture"):
        build("nope", "relu")
    with pytest.raises(ValueError, match="activation"):
        build("seed", "swish")
    assert "seed" in ARCHS


def _macs(model) -> int:
    """Multiply-accumulates of the conv and dense layers, from their shapes."""
    total = 0
    for layer in model.layers:
        if hasattr(layer, "kernel"):
            k = layer.kernel.shape
            out = layer.output_shape
            spatial = out[1] * out[2] if len(out) == 4 else 1
            total += spatial * int(k[-1]) * int(np_prod(k[:-1]))
    return total


def np_prod(xs):
    p = 1
    for v in xs:
        p *= int(v)
    return p


@pytest.mark.parametrize("act", ["relu", "tanhexp"])
def test_resnet8_is_mlperf_tinys_reference_size(act):
    m = build("resnet8", act)
    assert m.count_params() == 78_666
    assert abs(_macs(m) - 12.5e6) / 12.5e6 < 0.01


def test_config_names_match_the_registries():
    from train.activations import ACTIVATIONS
    from train.config import ACT_NAMES, ARCH_NAMES
    assert set(ACT_NAMES) == set(ACTIVATIONS) and set(ARCH_NAMES) == set(ARCHS)
