"""Op allow-lists: every artifact of every format and mode passes, and the checker rejects
graphs that would need more than the device runtime has."""
from __future__ import annotations

import pytest

from export import opcheck
from export.errors import OpNotAllowed
from export.formats import FORMATS, READERS, file_name

ALL = [(f, m) for f in FORMATS for m in FORMATS[f]]


@pytest.mark.parametrize("fmt,mode", ALL, ids=[f"{f}-{m}" for f, m in ALL])
def test_every_artifact_uses_allowed_ops_only(bundle, manifest, fmt, mode):
    name = file_name(fmt, mode)
    entry = next(a for a in manifest["artifacts"] if a["file"] == name)
    ops = READERS[fmt].ops(bundle / name)  # read again from the file, not from the manifest
    assert ops and opcheck.violations(fmt, ops) == []
    assert entry["ops"] == opcheck.unique(ops)
    assert entry["op_counts"] == opcheck.counts(ops)
    if fmt == "tflite":
        assert not any(o.startswith(("CUSTOM", "Flex")) for o in ops)
    else:
        assert all(":" not in o for o in ops)


def test_onnx_checker_passes_full_check(bundle, manifest):
    import onnx
    for a in manifest["artifacts"]:
        if a["format"] == "onnx":
            onnx.checker.check_model(onnx.load(str(bundle / a["file"])), full_check=True)


def flex_tflite() -> bytes:
    """A model with an op TFLite has no builtin for, converted with SELECT_TF_OPS."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 2, 2], tf.float32)], autograph=False)
    def det(x):
        return tf.linalg.det(x)

    conv = tf.lite.TFLiteConverter.from_concrete_functions([det.get_concrete_function()], det)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    return conv.convert()


def test_tflite_checker_rejects_select_tf_ops():
    ops = opcheck.tflite_ops(flex_tflite())
    assert "CUSTOM:FlexMatrixDeterminant" in ops
    with pytest.raises(OpNotAllowed, match="FlexMatrixDeterminant"):
        opcheck.check("tflite", ops, "det.tflite")


def custom_domain_onnx():
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    relu = helper.make_node("Relu", ["x"], ["h"])
    fancy = helper.make_node("FancyGelu", ["h"], ["y"], domain="com.example")
    graph = helper.make_graph([relu, fancy], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                   helper.make_opsetid("com.example", 1)])


def test_onnx_checker_rejects_custom_domain():
    ops = opcheck.onnx_ops(custom_domain_onnx())
    assert ops == ["Relu", "com.example:FancyGelu"]
    with pytest.raises(OpNotAllowed, match="com.example:FancyGelu"):
        opcheck.check("onnx", ops, "m.onnx")


def test_onnx_checker_looks_inside_subgraphs():
    from onnx import TensorProto, helper
    inner = helper.make_graph([helper.make_node("Secret", [], ["o"], domain="com.microsoft")], "then", [],
                              [helper.make_tensor_value_info("o", TensorProto.FLOAT, [1])])
    node = helper.make_node("If", ["c"], ["r"], then_branch=inner, else_branch=inner)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("r", TensorProto.FLOAT, [1])])
    ops = opcheck.onnx_ops(helper.make_model(graph))
    assert opcheck.violations("onnx", ops) == ["com.microsoft:Secret"]
