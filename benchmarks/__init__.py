"""Benchmark suite for linmetric.

Run ``python -m benchmarks`` for the quick suite (embedded data sets, every
learner and the Euclidean baseline, a table on the terminal), or
``python -m benchmarks --help`` for the named suites (``quick``, ``mnist``,
``kernels``), ``list``, and ``peers-setup``, which builds the separate virtual
environment where the other libraries run. Everything here uses only the
public API of linmetric; every method, ours or a peer's, is scored by the same
code in :mod:`benchmarks.scoring`.
"""
