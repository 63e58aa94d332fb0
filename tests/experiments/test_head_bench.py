"""experiments.head_bench's rewrite computes the same probabilities wherever no logit is below the floor."""
import numpy as np

from experiments.head_bench import shifted_head
from train.models import build


def test_shifted_head_is_the_same_function_above_the_floor():
    m = build("seed", "relu")
    x = np.random.default_rng(0).random((16, 32, 32, 3), dtype=np.float32)
    ref = m.predict(x, verbose=0)
    logits_min = -20.0  # an untrained model's logits are within +-2; float32 rounds z + 20 to ~2e-6
    np.testing.assert_allclose(shifted_head(m, logits_min).predict(x, verbose=0), ref, rtol=0, atol=2e-6)
    # A floor above some logits clips them: the probabilities change, the layer really is there.
    assert not np.allclose(shifted_head(m, 1000.0).predict(x, verbose=0), ref, atol=1e-3)
    assert shifted_head(m, -4.0).layers[-2].get_config()["activation"] == "relu"
