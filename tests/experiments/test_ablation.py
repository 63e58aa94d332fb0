"""experiments/ablation.py: its recipes differ from strong (or strong-sgd) in what they say, and
its `train` entry point trains one of them with python -m train's own loop."""
import json
import subprocess
import sys

import pytest

from experiments import ablation
from train.recipes import RECIPES, optimizer


@pytest.fixture
def registered():
    before = dict(RECIPES)
    names = ablation.register()
    yield names
    RECIPES.clear()
    RECIPES.update(before)


def test_ablations_take_out_one_ingredient_each(registered):
    strong = RECIPES["strong"]
    assert set(registered) == {f"strong-{k}" for k in ablation.ABLATIONS} | set(ablation.VARIANTS)
    for name in registered:
        recipe = RECIPES[name]
        base = RECIPES[ablation.VARIANTS[name][0]] if name in ablation.VARIANTS else strong
        diff = sorted(f for f in strong.__dataclass_fields__ if getattr(recipe, f) != getattr(base, f))
        want = sorted(ablation.VARIANTS[name][1]) if name in ablation.VARIANTS else None
        assert (diff == want) if want else len(diff) == 1, (name, diff)
    opt = optimizer(RECIPES["strong-sgd-reg"], 0.1, 100)
    assert type(opt).__name__ == "SGD" and opt.nesterov and abs(float(opt.weight_decay) - 3e-3) < 1e-9


def test_register_refuses_to_redefine_a_recipe(registered):
    from dataclasses import replace

    from train.recipes import register
    register("strong-no-bn", RECIPES["strong-no-bn"])  # the same settings again: fine
    with pytest.raises(ValueError, match="strong"):
        register("strong", replace(RECIPES["strong"], augment=False))


def test_train_entry_point_trains_an_ablation_that_python_m_train_refuses(tmp_path, tiny_folder):
    args = ["--recipe", "strong-no-bn", "--data", str(tiny_folder), "--val-size", "10", "--epochs", "1",
            "--batch-size", "10", "--verbose", "0", "--out", str(tmp_path / "run")]
    env_run = dict(capture_output=True, text=True, timeout=300)
    r = subprocess.run([sys.executable, "-m", "train", *args], **env_run)
    assert r.returncode == 2 and "--recipe 'strong-no-bn'" in r.stderr
    r = subprocess.run([sys.executable, "-m", "experiments.ablation", "train", *args], **env_run)
    assert r.returncode == 0, r.stderr
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["recipe"] == "strong-no-bn" and cfg["recipe_settings"]["batch_norm"] is None
