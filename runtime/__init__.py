"""Edge runtime: benchmark exported CIFAR-10 bundles with numpy + LiteRT + ONNX Runtime only.

Nothing in this package may import TensorFlow, Keras or tf2onnx (a Raspberry Pi has none of
them); tests/runtime/test_no_tensorflow.py enforces that statically and at run time.
"""
