"""Benchmark suite for linmetric.

Run ``python -m benchmarks`` for the quick suite (embedded data sets, every
learner and the Euclidean baseline, a table on the terminal), or
``python -m benchmarks --help`` for the named suites (``quick``, ``mnist``,
``kernels``), ``list``, and ``peers-setup``, which builds the separate virtual
environment where the other libraries run. The suites use only the public
API of linmetric (the kernel benchmark, :mod:`benchmarks.kernels`, calls the
private kernels directly); every method, ours or a peer's, is timed by the
same rule (:mod:`benchmarks.timing`) and scored by the same code
(:mod:`benchmarks.scoring`).
"""
