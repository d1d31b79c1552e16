"""The ``datamind-ext`` command. Sub-commands import their stage lazily, so the CLI never imports verl."""
