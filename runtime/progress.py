"""A progress display over the model loop: tqdm when it is installed (it is not a runtime
dependency), else one stderr line per model, else nothing."""
from __future__ import annotations

import sys


def progress(enabled: bool = True, name=lambda item: str(item)):
    """Returns `wrap(iterable, total)` for runtime.measure.run_bench."""
    def wrap(iterable, total):
        if not enabled:
            yield from iterable
            return
        try:
            from tqdm import tqdm
        except ImportError:
            for i, item in enumerate(iterable, 1):
                print(f"[{i}/{total}] {name(item)}", file=sys.stderr, flush=True)
                yield item
            return
        with tqdm(total=total, unit="model", file=sys.stderr, leave=False,
                  dynamic_ncols=True) as bar:
            for item in iterable:
                bar.set_postfix_str(name(item))
                yield item
                bar.update()
    return wrap
