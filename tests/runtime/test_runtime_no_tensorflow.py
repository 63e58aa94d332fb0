"""runtime/ must work on a device with numpy, LiteRT and ONNX Runtime only."""
from __future__ import annotations

import ast
import json

from tests.runtime.rt_helpers import REPO, blocking_env, run_cli

FORBIDDEN = {"tensorflow", "tf_keras", "keras", "tensorflow_model_optimization", "tf2onnx"}


def _imported_roots(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            # importlib.import_module("x") / __import__("x"): lazy imports count too
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            if name in ("import_module", "__import__"):
                yield node.args[0].value.split(".")[0]


def test_no_file_in_runtime_imports_tensorflow():
    offenders = []
    for path in sorted((REPO / "runtime").rglob("*.py")):
        roots = set(_imported_roots(ast.parse(path.read_text(), str(path))))
        offenders += [f"{path.relative_to(REPO)}: {m}" for m in sorted(roots & FORBIDDEN)]
    assert not offenders, offenders


def test_registry_modules_are_tf_free():
    from runtime.backends import REGISTRY
    assert set(REGISTRY) == {"tflite", "onnx"}
    assert all(mod.split(".")[0] == "runtime" for mod, _ in REGISTRY.values())


def test_bench_runs_where_tensorflow_cannot_be_imported(tiny_bundle, tmp_path):
    env = blocking_env(tmp_path, FORBIDDEN)
    blocked = run_cli("tf_keras", env=env)  # the blocker works (python -m tf_keras fails) ...
    assert blocked.returncode != 0 and "blocked for this test" in blocked.stderr

    out = tmp_path / "r.json"
    r = run_cli("runtime.bench", "--bundle", tiny_bundle, "--runs", "5", "--warmup", "1",
                "--limit", "50", "--json", out, "--no-progress", env=env)
    assert r.returncode == 0, r.stderr  # ... and the bench does not need what it blocks
    rows = json.loads(out.read_text())["rows"]
    assert [x["error"] for x in rows] == [None] * 3
    assert all(x["isolated"] for x in rows)  # the per-model children were blocked as well
