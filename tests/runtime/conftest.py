"""Fixtures for the runtime tests (helpers live in rt_helpers.py)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.runtime.rt_helpers import build_tiny_bundle, run_cli


def pytest_configure(config):
    # pyproject.toml declares them too; this keeps tests/runtime working without it
    config.addinivalue_line("markers", "pi: runs the bench under Raspberry Pi emulation (slow)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """Shared and read-only: tests that change a bundle take `bundle_copy` instead."""
    return build_tiny_bundle(tmp_path_factory.mktemp("bundle") / "export")


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_bundle, tmp_path / "export"))


@pytest.fixture(scope="session")
def bench_json(tiny_bundle, tmp_path_factory) -> dict:
    """One CLI bench of the tiny bundle, shared by the schema and report tests."""
    out = tmp_path_factory.mktemp("bench") / "result.json"
    r = run_cli("runtime.bench", "--bundle", tiny_bundle, "--runs", "20", "--warmup", "2",
                "--json", out, "--label", "x86-test", "--no-progress")
    assert r.returncode == 0, r.stderr + r.stdout
    return json.loads(out.read_text())
