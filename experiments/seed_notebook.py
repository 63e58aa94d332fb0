"""The seed experiment's notebook model, built as the post builds it, trained and saved both ways.

    python -m experiments.seed_notebook --out runs/notebook-tanhexp     # ~12 min on 2 cores

Why: a model people bring has no run folder and names TanhExp only as a plain Python function.
This is that model, to export with `python -m export --model OUT/seed.keras` (and `seed.h5`)
and compare with `python -m train --act tanhexp`'s run. The code below the marker is the
notebook's (activation function, layers, compile, fit, save), unchanged but for the data: the
shipped JPEG CIFAR-10 with the same 5,000 training images held out as python -m train holds out
(seed 0), so the two runs see the same training images and neither sees the test split.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from runtime.cli import Parser, fail


def notebook(x_train, y_train, x_val, y_val, out: Path, epochs: int, log) -> dict:
    import tensorflow as tf
    import tf_keras as keras
    from tf_keras import layers

    keras.utils.set_random_seed(0)
    # --- the notebook ---
    def tanhexp(x):
        return x * tf.math.tanh(tf.math.exp(x))

    model = keras.Sequential([
        layers.Conv2D(32, (3, 3), activation=tanhexp, input_shape=(32, 32, 3)),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation=tanhexp),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    t = time.time()
    hist = model.fit(x_train / 255.0, y_train, batch_size=100, epochs=epochs,
                     validation_data=(x_val / 255.0, y_val), verbose=2)
    model.save(out / "seed.keras")
    model.save(out / "seed.h5")
    # --- end of the notebook ---
    return {"params": int(model.count_params()), "epochs": epochs, "train_minutes": round((time.time() - t) / 60, 1),
            "val_accuracy": [round(float(v), 6) for v in hist.history["val_accuracy"]]}


def main(argv=None) -> int:
    p = Parser(prog="python -m experiments.seed_notebook", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/notebook-tanhexp"), help="folder for seed.keras, seed.h5, notebook.json")
    p.add_argument("--data", default=None, help="as python -m train --data (default: the shipped copy)")
    p.add_argument("--epochs", type=int, default=50, help="the seed's 50")
    p.add_argument("--limit-train", type=int, default=None, help="first N training images (tests)")
    a = p.parse_args(argv)
    from runtime.provenance import provenance
    from train.data import DataError, load
    try:
        d = load(a.data, 5000 if a.limit_train is None else 10, 0)
    except DataError as e:
        return fail(e)
    x, y = (d.x_train, d.y_train) if a.limit_train is None else (d.x_train[:a.limit_train], d.y_train[:a.limit_train])
    a.out.mkdir(parents=True, exist_ok=True)
    rec = notebook(x, y, d.x_val, d.y_val, a.out, a.epochs, print)
    rec.update(data=d.source, provenance=provenance())
    (a.out / "notebook.json").write_text(json.dumps(rec, indent=1))
    print(f"saved {a.out / 'seed.keras'} and {a.out / 'seed.h5'}; last validation accuracy {rec['val_accuracy'][-1]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
