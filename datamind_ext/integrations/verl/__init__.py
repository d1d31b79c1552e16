"""verl 0.9.1 integration: registration into verl's registries (loaded by the ``verl.plugins`` entry point)."""
