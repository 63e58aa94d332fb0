"""Export trained Keras models to TFLite and ONNX (float and quantized) as a device bundle.

`python -m export --help`; the importable entry point is `export.api.export(ExportConfig)`.
Nothing heavy is imported here: TensorFlow, tf2onnx and ONNX Runtime load only when a
conversion runs, so bad command lines fail in milliseconds.
"""
