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
