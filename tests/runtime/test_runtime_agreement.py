"""runtime.agreement.breakdown on hand-made outputs: ties vs flips."""
import numpy as np

from runtime.agreement import breakdown


def test_breakdown_separates_ties_from_flips():
    ref = np.array([[0.6, 0.4, 0.0], [0.1, 0.5, 0.4], [0.2, 0.3, 0.5], [0.5, 0.5, 0.0]], np.float32)
    q = np.array([[0.6, 0.4, 0.0],    # agrees
                  [0.5, 0.5, 0.0],    # tie between 0 and the float choice 1: argmax says 0
                  [0.2, 0.5, 0.3],    # flip: prefers 1 over the float choice 2
                  [0.5, 0.5, 0.0]], np.float32)  # tie, but argmax picks the float choice: agrees
    b = breakdown(q, ref)
    assert (b["count"], b["disagree"], b["ties"], b["flips"]) == (4, 2, 1, 1)
    assert b["agreement"] == 0.5 and b["agreement_without_ties"] == 0.75
