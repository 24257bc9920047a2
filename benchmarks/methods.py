"""The linmetric methods of the suites: one registry entry per method.

Adding a learner to the suites is one entry in :data:`METHODS`: its class
name in the ``linmetric`` package, the parameters the suite fixes, which of
the suite's common parameters it takes (``n_neighbors``, ``random_state``
and ``max_iter``), what its ``loss_curve_`` holds, and the
names of the other libraries' runs of the same method (keys of
:data:`benchmarks.peers.PEERS`). Nothing else in the suite names a method.

Every method here learns from labelled points (``task="classification"``).
A suite of weakly supervised tuples would add entries with
``task="pairs"`` (or ``"triplets"``), a loader that draws the tuples from a
split's labels, and a runner that calls ``fit_pairs``; a regression suite
(MLKR) would add ``task="regression"`` entries, loaders of real-valued
targets and a scorer of kNN regression error. Each suite takes the methods
of its task (:func:`method_names`).

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
        ),
    )
}


def method_names(task="classification"):
    """Names of the registered methods that learn from ``task``, in order."""
    return [name for name, method in METHODS.items() if method.task == task]


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
