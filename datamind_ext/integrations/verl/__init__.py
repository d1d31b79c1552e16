"""verl 0.9.1 integration (the only package here that imports verl, besides ``llamafactory``'s twin).

``contract.py``: what the trainer mode, its actor worker and its loss agree on (names, keys, the
loss config); ``registration.py``: the table of our entries in verl's registries, loaded by the
``verl.plugins`` entry point (``plugin.py``); ``private_api.py``: every private verl name relied
on, pinned by a test; ``validate.py``: the driver-side check of the RL config, before Ray starts.
"""
