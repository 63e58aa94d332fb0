"""Tests of experiments/: each one-off measurement still runs on tiny data."""
