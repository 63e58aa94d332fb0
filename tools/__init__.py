"""Project tools that are not the product (the fault harness). Runnable from a checkout, not installed."""
