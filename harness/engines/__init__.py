"""Engine adapters; `harness.engines.registry` resolves names and `module:factory` specs."""
