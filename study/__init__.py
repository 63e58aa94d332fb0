"""The study: TanhExp vs ReLU over seeds, recipes and architectures, trained, exported and
benchmarked by the toolkit's own commands, reported with paired statistics."""
