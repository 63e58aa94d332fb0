"""A third-party NCHW classifier with dynamic dims, for `runtime.bench --model --input-shape`.

torchvision's MobileNetV3-Small, exported by PyTorch's own ONNX exporter with input
[N, 3, H, W] all dynamic, the way a PyTorch user ships one. Weights are torchvision's random
initialisation (weights=None): this machine reaches package registries, not download.pytorch.org,
and the measurement it serves is latency, load time and memory, which the weights do not change.

Needs torch and torchvision, which the project does not declare (docs/results.md says which
versions made the file):
    pip install torch==2.14.1 torchvision==0.29.1 onnx onnxscript
    python experiments/torchvision_onnx.py --out /tmp/mobilenet_v3_small.onnx
    python -m runtime.bench --model /tmp/mobilenet_v3_small.onnx --input-shape 1,3,224,224
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile


def export(arch: str, out: str, opset: int) -> dict:
    import torch
    import torchvision

    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(weights=None).eval()
    x = torch.randn(1, 3, 224, 224)
    folder = os.path.dirname(os.path.abspath(out))
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".onnx.tmp", delete=False) as f:
        tmp = f.name
    try:  # written under a temporary name: an interrupted export leaves no half file at `out`
        torch.onnx.export(model, (x,), tmp, input_names=["image"], output_names=["logits"], opset_version=opset,
                          dynamic_axes={"image": {0: "N", 2: "H", 3: "W"}, "logits": {0: "N"}}, dynamo=False)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    import onnx
    g = onnx.load(out).graph
    dims = [d.dim_param or d.dim_value for d in g.input[0].type.tensor_type.shape.dim]
    return {"file": out, "arch": arch, "input": dims, "torch": torch.__version__,
            "torchvision": torchvision.__version__, "opset": opset, "weights": "random init (seed 0)"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="mobilenet_v3_small", help="a torchvision.models constructor")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=17)
    a = p.parse_args(argv)
    try:
        print(json.dumps(export(a.arch, a.out, a.opset)))
    except ImportError as e:
        print(f"error: {e}; this experiment needs torch and torchvision (see its docstring)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
