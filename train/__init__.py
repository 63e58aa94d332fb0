"""Training of lightweight CNNs (TanhExp vs ReLU). Heavy imports (TensorFlow) stay inside the
modules that need them, so `import train` is cheap and has no side effects."""
