"""QAT: activation layers get the output-only QuantizeConfig, and it survives every lowering
export/lowering.py may choose (elementwise and pooled)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def model(tanhexp_run):
    from export.run import load_model
    return load_model(tanhexp_run / "model.keras")


def wrapped_configs(qmodel) -> dict:
    return {layer.name: type(layer.quantize_config).__name__ for layer in qmodel.layers
            if hasattr(layer, "quantize_config")}


def test_activation_layers_get_the_output_quantizer(model):
    from export import qat
    q = qat.quantize_aware(model)  # unlowered: the TanhExp layer itself
    cfgs = wrapped_configs(q)
    assert cfgs["quant_act1"] == cfgs["quant_act2"] == "ActivationOutputQuantizeConfig"
    act = q.get_layer("quant_act1")
    (quantizer,) = act.quantize_config.get_output_quantizers(act.layer)
    assert quantizer.num_bits == 8 and not quantizer.per_axis and not quantizer.symmetric
    assert cfgs["quant_conv1"] != "ActivationOutputQuantizeConfig"  # the rest: tfmot defaults


@pytest.mark.parametrize("lowering", ["bounded3", "elu3"])
def test_quantize_aware_lowered_model_converts_to_int8(model, lowering):
    from export import opcheck, qat
    from export.lowering import lowered_copy
    from export.run import to_float
    from tests.export.conftest import synthetic
    q = qat.quantize_aware(lowered_copy(model, lowering))
    x, _ = synthetic(40, 3)
    before = [w.numpy() for w in q.trainable_weights]
    # tfmot starts ranges at [-6, 6] (the input's at [0, 0]); calibrated on a sample, the
    # fake-quant model computes (nearly) the float function: weights carried over, not retrained
    qat.calibrate_ranges(q, to_float(x))
    assert all((a == w.numpy()).all() for a, w in zip(before, q.trainable_weights))
    agree = (q.predict(to_float(x), verbose=0).argmax(1) == model.predict(to_float(x), verbose=0).argmax(1)).mean()
    assert agree >= 0.9
    ops = opcheck.tflite_ops(qat.to_tflite_int8(q, to_float(x)))
    assert opcheck.violations("tflite", ops) == []


def test_fine_tune_reports_what_it_did(model, tanhexp_run):
    from export import qat
    from export.run import load_splits, open_run
    splits = load_splits(open_run(tanhexp_run))
    _, info = qat.fine_tune(model, splits, epochs=1, batch_size=50, verbose=0)
    assert info["epochs"] == 1 and info["train_images"] == len(splits.y_train)
    assert 0.0 <= info["final_val_accuracy"] <= 1.0


def test_qat_target_names_match_the_registry():
    from export import qat
    from export.config import QAT_TARGET_NAMES
    assert tuple(qat.QAT_TARGETS) == QAT_TARGET_NAMES


def test_fine_tune_to_the_float_model(model, tanhexp_run):
    import numpy as np

    from export import qat
    from export.run import load_splits, open_run, to_float
    splits = load_splits(open_run(tanhexp_run))
    targets, loss = qat.QAT_TARGETS["float"](model, splits.x_train, splits.y_train)
    # the targets are the float model's own probabilities, not the labels
    np.testing.assert_allclose(targets, model.predict(to_float(splits.x_train), verbose=0), atol=1e-5)
    assert type(loss).__name__ == "KLDivergence"
    _, info = qat.fine_tune(model, splits, epochs=1, batch_size=50, verbose=0, target="float")
    assert info["target"] == "float" and "final_val_accuracy" not in info
    assert 0.0 <= info["final_val_agreement"] <= 1.0 and 0.0 <= info["final_agreement"] <= 1.0


def test_bad_qat_target_is_rejected():
    from export.config import ExportConfig
    from export.errors import BadInput
    with pytest.raises(BadInput, match="qat_target"):
        ExportConfig(qat_target="teacher").validate()
