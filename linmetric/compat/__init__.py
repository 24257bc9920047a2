"""Compatibility namespaces for code written against other libraries.

:mod:`linmetric.compat.metric_learn` runs code written for metric-learn 0.7.0
on linmetric's learners::

    import linmetric.compat.metric_learn as metric_learn

The compatibility classes are thin adapters: they keep the other library's
names, parameters and method semantics and delegate every fit to a linmetric
learner. They are not part of ``linmetric.__all__``.
"""
