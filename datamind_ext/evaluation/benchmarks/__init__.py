"""The built-in benchmarks; importing this package registers them in ``BENCHMARKS``."""

from datamind_ext.evaluation.benchmarks import (
    bird,
    dabench,
    discoverybench,
    qrdata,
    synth,
    tablebench,
)

__all__ = ["bird", "dabench", "discoverybench", "qrdata", "synth", "tablebench"]
