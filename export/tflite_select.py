"""Selective quantization for TFLite int8: named Keras layers stay in float.

Why: on an x86 CPU without VNNI (AVX2 only), XNNPACK's int8 convolution takes input channels
in groups of 8, so the first convolution of an RGB model costs as much as an 8-channel one, and
an int8 product is no cheaper than a float FMA there: the seed net's int8 conv 1 took ~105 us
against 34-38 us in float, which is why its int8.tflite ran 1.5x slower than float32.tflite
(docs/results.md). `--tflite-float-layers conv1` keeps that one layer in float and
everything else in int8; the file keeps int8 input and output (a DEQUANTIZE follows the input,
exact for pixels, whose scale is 1/255), so it stays a drop-in int8.tflite for the bundle and
the bench. On a VNNI CPU the int8 first convolution is not slower, so this is a per-target
choice, not the default.

How: the converter's calibrate-only half (export/tflite_ranges.calibrated), then
`mlir_quantize(denylisted_nodes=...)`, the private entry point tf.lite.experimental.
QuantizationDebugger uses for the same purpose. It names nodes by their output tensor, and the
converter names a tensor after the TF ops fused into it ("seed_relu/act1/Relu;seed_relu/conv1/
Conv2D"), so a layer matches every node whose name has the layer as a path segment: a fused
activation or batch normalization goes with its convolution.
"""
from __future__ import annotations

from export.errors import BadInput


def layer_nodes(cal: bytes, layer: str) -> list[str]:
    """Output-tensor names of the calibrated model's operators that belong to Keras layer `layer`."""
    from tensorflow.lite.tools import flatbuffer_utils as fu
    out = []
    for g in fu.read_model_from_bytearray(bytearray(cal)).subgraphs:
        for op in g.operators:
            for t in op.outputs:
                name = g.tensors[t].name.decode()
                # segment 0 is the model's own name scope; a layer is a later segment
                if any(layer in part.split("/")[1:] for part in name.split(";")):
                    out.append(name)
    return out


def check_layers(model, layers: list[str]) -> None:
    """A one-line BadInput for a name the model lacks, said before any conversion starts."""
    names = [l.name for l in model.layers]
    unknown = [l for l in layers if l not in names]
    if unknown:
        raise BadInput(f"--tflite-float-layers: no layer {', '.join(map(repr, unknown))} in the model; "
                       f"its layers are {', '.join(names)}")


def float_nodes(cal: bytes, model, layers: list[str]) -> list[str]:
    """The nodes to leave in float for `layers`; a one-line BadInput for a name the model lacks
    or one the converter folded away entirely (nothing of it is left to keep in float)."""
    check_layers(model, layers)
    nodes = []
    for layer in layers:
        hit = layer_nodes(cal, layer)
        if not hit:
            raise BadInput(f"--tflite-float-layers: layer {layer!r} has no operator of its own in the TFLite "
                           f"graph (folded or removed by the converter)")
        nodes += [n for n in hit if n not in nodes]
    return nodes
