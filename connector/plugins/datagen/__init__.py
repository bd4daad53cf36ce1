"""datagen: a deterministic sequence source for demos, tests and runtime benchmarks."""
