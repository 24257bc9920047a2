"""linmetric: linear metric learning for scikit-learn.

Every learner fits a linear map ``L`` (``components_``) so that the learned
distance is the Euclidean distance after ``x -> L x``, that is
``d(x, x')**2 = (x - x')^T M (x - x')`` with ``M = L^T L``.

The public names are loaded on first access, so ``import linmetric`` stays
cheap; scikit-learn, SciPy and numba are imported only when a learner is used,
and numba compiles a kernel only on its first call.
"""

import importlib

from ._version import __version__

# public name -> private module that defines it
_PUBLIC = {
    "MetricLearner": "._base",
    "Whitening": "._whitening",
    "Covariance": "._covariance",
    "LMNN": "._lmnn",
    "EnergyClassifier": "._energy",
    "NCA": "._nca",
    "ITML": "._itml",
    "MultiMetricLMNN": "._mm_lmnn",
    "KISSME": "._kissme",
    "GMML": "._gmml",
    "DMLMJ": "._dmlmj",
    "LFDA": "._lfda",
    "RCA": "._rca",
    "MLKR": "._mlkr",
    "SDML": "._sdml",
    "LSML": "._lsml",
    "SCML": "._scml",
    "LocalSCML": "._scml_local",
    "MMC": "._mmc",
    "PairsClassifier": "._tuples",
    "TripletsClassifier": "._tuples",
    "QuadrupletsClassifier": "._tuples",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'linmetric' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
