"""Research scripts beside the product: each supports one measurement in docs/results.md or
docs/decisions.md. Runnable from a checkout (`python -m experiments.NAME`), never installed."""
