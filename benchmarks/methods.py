"""The linmetric methods of the suites: one registry entry per method.

Adding a learner to the suites is one entry in :data:`METHODS`: its class
name in the ``linmetric`` package, the parameters the suite fixes, which of
the suite's common parameters it takes (``n_neighbors``, ``random_state``
and ``max_iter``), what its ``loss_curve_`` holds, and the
names of the other libraries' runs of the same method (keys of
:data:`benchmarks.peers.PEERS`). Nothing else in the suite names a method.

``task`` says what ``fit(X, y)`` learns from: class labels
(``"classification"``, the quick, cv and mnist suites) or real-valued
targets (``"regression"``, the regression suite). ``tuples`` names the
tuples a learner also fits through linmetric's tuple estimators
(``"pairs"``: :class:`linmetric.PairsClassifier`, ``"triplets"``:
``TripletsClassifier``, ``"quadruplets"``: ``QuadrupletsClassifier``); the
pairs suite runs those. The Euclidean baseline (``class_name=None``) enters
every suite. Each suite takes the methods of its task
(:func:`method_names`); ``default`` marks the methods a suite runs when
``--methods`` is not given.

A method whose class linmetric does not provide (yet, or in this install) is
reported as unavailable instead of stopping the suite.
"""

import inspect
from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    """A way of producing a learned space from a training set."""

    name: str
    class_name: str | None  # attribute of the linmetric package; None = identity
    description: str
    params: tuple = ()  # (parameter, value) pairs fixed by the suite
    uses_k: bool = False  # takes n_neighbors, set to the suite's k
    seeded: bool = False  # takes random_state, set to the run's seed
    iterative: bool = False  # takes max_iter; has n_iter_ and loss_curve_
    objective: str = "loss"  # what loss_curve_ holds (axis label of the plots)
    energy_rule: bool = False  # also score LMNN's energy-based classifier
    peers: tuple = ()  # names of the other libraries' runs of this method
    task: str = "classification"  # what fit learns from; see the module docstring
    tuples: str | None = None  # "pairs", "triplets" or "quadruplets"; see above
    tuple_peers: tuple = ()  # the other libraries' runs of it on the same tuples
    default: bool = True  # run when --methods is not given
    classifier: bool = False  # scored by its own kNN rule (predict), no transform

    def make(self, *, n_neighbors=3, seed=0, max_iter=None, callback=None):
        """Build the estimator, or raise ImportError when it is unavailable.

        ``callback`` (the progress display's) is passed to classes whose
        signature has one; any other parameter the class lacks is an error.
        """
        import linmetric

        cls = getattr(linmetric, self.class_name, None)
        if cls is None:
            raise ImportError(f"linmetric.{self.class_name} is not available")
        params = dict(self.params)
        if self.uses_k:
            params["n_neighbors"] = n_neighbors
        if self.seeded:
            params["random_state"] = seed
        if self.iterative and max_iter is not None:
            params["max_iter"] = max_iter
        accepted = inspect.signature(cls).parameters
        if callback is not None and "callback" in accepted:
            params["callback"] = callback
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise ValueError(
                f"method {self.name!r}: {cls.__name__} has no parameter(s) {unknown}; "
                f"its parameters are {sorted(accepted)}."
            )
        return cls(**params)

    def make_tuple_estimator(self, **make):
        """The learner (:meth:`make`) in linmetric's estimator of its ``tuples``."""
        import linmetric

        wrapper = getattr(linmetric, TUPLE_ESTIMATORS[self.tuples], None)
        if wrapper is None:
            raise ImportError(
                f"linmetric.{TUPLE_ESTIMATORS[self.tuples]} is not available"
            )
        return wrapper(self.make(**make))


# linmetric's estimator of each kind of tuples
TUPLE_ESTIMATORS = {
    "pairs": "PairsClassifier",
    "triplets": "TripletsClassifier",
    "quadruplets": "QuadrupletsClassifier",
}


_LMNN = {
    "class_name": "LMNN",
    "uses_k": True,
    "seeded": True,
    "iterative": True,
    "objective": "LMNN loss (pull + push_weight * hinge)",
    "energy_rule": True,
}

METHODS = {
    method.name: method
    for method in (
        Method("euclidean", None, "Euclidean baseline (identity map)"),
        Method("whitening", "Whitening", "PCA whitening", (("method", "pca"),)),
        Method(
            "covariance",
            "Covariance",
            "inverse-covariance Mahalanobis",
            peers=("metric-learn-covariance",),
        ),
        Method(
            "lmnn",
            description="large margin nearest neighbour",
            params=(("push_weight", 0.5),),
            peers=("metric-learn-lmnn", "pylmnn-lmnn", "mlpack-lmnn"),
            **_LMNN,
        ),
        Method(
            "lmnn2",
            description="LMNN in two passes (targets chosen again under the first map)",
            params=(("push_weight", 0.5), ("n_passes", 2)),
            **_LMNN,
        ),
        Method(
            "mmlmnn",
            "MultiMetricLMNN",
            "multi-metric LMNN (one map per class, its own kNN rule)",
            # the joint optimisation overfits soon after the LMNN start: 10
            # iterations were best on held-out training images of a 10,000
            # image MNIST subsample
            params=(("push_weight", 0.5), ("max_iter", 10)),
            uses_k=True,
            seeded=True,
            iterative=False,
            objective="multi-metric LMNN loss (pull + push_weight * hinge)",
            classifier=True,
            default=False,
        ),
        Method(
            "nca",
            "NCA",
            "neighbourhood components analysis",
            seeded=True,
            iterative=True,
            objective="NCA loss: minus the expected number of correct points",
            peers=("metric-learn-nca", "sklearn-nca", "mlpack-nca"),
        ),
        Method(
            "itml",
            "ITML",
            "information-theoretic metric learning",
            seeded=True,
            iterative=True,
            objective="ITML: LogDet divergence to the prior, slack included "
            "(grows as the constraints are met)",
            peers=("metric-learn-itml",),
            tuples="pairs",
            tuple_peers=("metric-learn-itml-pairs",),
        ),
        Method(
            "kissme",
            "KISSME",
            "keep it simple and straightforward (closed form, pairs)",
            seeded=True,
            tuples="pairs",
        ),
        Method(
            "gmml",
            "GMML",
            "geometric mean metric learning (closed form, pairs)",
            seeded=True,
            tuples="pairs",
        ),
        Method(
            "dmlmj", "DMLMJ", "metric learning by maximising the Jeffrey divergence"
        ),
        Method(
            "lfda",
            "LFDA",
            "local Fisher discriminant analysis",
            peers=("metric-learn-lfda",),
        ),
        Method(
            "rca",
            "RCA",
            "relevant components analysis (chunklets drawn from labels)",
            seeded=True,
            peers=("metric-learn-rca",),
        ),
        Method(
            "mmc",
            "MMC",
            "mahalanobis metric for clustering (Xing et al., pairs)",
            seeded=True,
            iterative=True,
            objective="MMC: sum of similar-pair squared distances",
            peers=("metric-learn-mmc",),
            tuples="pairs",
            tuple_peers=("metric-learn-mmc-pairs",),
            default=False,
        ),
        Method(
            "sdml",
            "SDML",
            "sparse determinant metric learning (pairs)",
            seeded=True,
            iterative=True,
            objective="SDML: penalised LogDet objective",
            peers=("metric-learn-sdml",),
            tuples="pairs",
            tuple_peers=("metric-learn-sdml-pairs",),
            default=False,
        ),
        Method(
            "lsml",
            "LSML",
            "least-squares metric learning (quadruplets)",
            seeded=True,
            iterative=True,
            objective="LSML: squared hinge on quadruplets + LogDet prior",
            peers=("metric-learn-lsml",),
            tuples="quadruplets",
            tuple_peers=("metric-learn-lsml-quadruplets",),
            default=False,
        ),
        Method(
            "scml",
            "SCML",
            "sparse compositional metric learning (triplets)",
            seeded=True,
            iterative=True,
            objective="SCML: mean triplet hinge + beta * l1 (per window)",
            peers=("metric-learn-scml",),
            tuples="triplets",
            tuple_peers=("metric-learn-scml-triplets",),
            default=False,
        ),
        Method(
            "localscml",
            "LocalSCML",
            "SCML's local form (a metric per point, its own kNN rule)",
            seeded=True,
            uses_k=True,
            objective="local SCML: mean batch triplet hinge + beta * group norm",
            classifier=True,
            default=False,
        ),
        Method(
            "mlkr",
            "MLKR",
            "metric learning for kernel regression",
            seeded=True,
            iterative=True,
            objective="MLKR: leave-one-out kernel regression squared error",
            peers=("metric-learn-mlkr",),
            task="regression",
        ),
    )
}

SUITE_TASKS = ("classification", "regression", "pairs")


def method_names(task="classification", *, default_only=False):
    """Names of the registered methods of a suite's ``task``, in order.

    ``task`` is ``"classification"`` (methods fitted from class labels),
    ``"regression"`` (from real-valued targets) or ``"pairs"`` (methods
    that fit tuples); the Euclidean baseline belongs to all three.
    ``default_only`` keeps, of the classification methods, those marked
    ``default`` (the other suites run all of theirs by default).
    """
    if task not in SUITE_TASKS:
        raise ValueError(f"task={task!r} must be one of {', '.join(SUITE_TASKS)}.")
    names = []
    for name, method in METHODS.items():
        if method.class_name is None:
            chosen = True
        elif task == "pairs":
            chosen = method.tuples is not None
        else:
            chosen = method.task == task
        if chosen and (method.default or not default_only or task != "classification"):
            names.append(name)
    return names


def push_weight(method_name):
    """LMNN's weight of the push term fixed for a method, or None."""
    return dict(METHODS[method_name].params).get("push_weight")


def availability(name):
    """Return ``(available, note)`` for a method, without fitting anything."""
    method = METHODS[name]
    if method.class_name is None:
        return True, ""
    try:
        method.make()
    except ImportError as exc:
        return False, str(exc)
    return True, ""
