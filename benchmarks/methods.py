"""The linmetric methods of the suites and how each is built.

A method whose class linmetric does not provide (yet, or in this install) is
reported as unavailable instead of stopping the suite.
"""

from dataclasses import dataclass

METHOD_NAMES = (
    "euclidean",
    "whitening",
    "covariance",
    "lmnn",
    "lmnn2",
    "nca",
    "itml",
)


@dataclass(frozen=True)
class Method:
    """A way of producing a learned space from a training set."""

    name: str
    class_name: str | None  # attribute of the linmetric package; None = identity
    description: str
    defaults: tuple = ()  # (parameter, value) pairs, passed if the class has them
    energy_rule: bool = False  # also score LMNN's energy-based classifier

    def make(self, *, n_neighbors, seed, callback=None, overrides=None):
        """Build the estimator, or raise ImportError when it is unavailable.

        Common parameters (``n_neighbors``, ``random_state``, ``callback``) are
        passed only to classes that accept them, so the same code drives every
        learner.
        """
        import linmetric

        try:
            cls = getattr(linmetric, self.class_name)
        except (AttributeError, ImportError) as exc:
            raise ImportError(
                f"linmetric.{self.class_name} is not available: {exc}"
            ) from exc
        accepted = set(cls().get_params(deep=False))
        # defaults name the paper's parameter under each spelling a version
        # may use; only the ones the class has are passed
        params = {key: value for key, value in self.defaults if key in accepted}
        params.update(overrides or {})
        if "n_neighbors" in accepted:
            params["n_neighbors"] = n_neighbors
        if "random_state" in accepted:
            params["random_state"] = seed
        if callback is not None and "callback" in accepted:
            params["callback"] = callback
        unknown = sorted(set(params) - accepted)
        if unknown:
            raise ValueError(
                f"method {self.name!r}: {cls.__name__} has no parameter(s) {unknown}; "
                f"its parameters are {sorted(accepted)}."
            )
        return cls(**params)


METHODS = {
    "euclidean": Method("euclidean", None, "Euclidean baseline (identity map)"),
    "whitening": Method(
        "whitening", "Whitening", "PCA whitening", (("method", "pca"),)
    ),
    "covariance": Method("covariance", "Covariance", "inverse-covariance Mahalanobis"),
    "lmnn": Method(
        "lmnn",
        "LMNN",
        "large margin nearest neighbour",
        (("push_weight", 0.5), ("mu", 0.5)),
        energy_rule=True,
    ),
    "lmnn2": Method(
        "lmnn2",
        "LMNN",
        "LMNN in two passes (targets chosen again under the first map)",
        (("push_weight", 0.5), ("mu", 0.5), ("n_passes", 2)),
        energy_rule=True,
    ),
    "nca": Method("nca", "NCA", "neighbourhood components analysis"),
    "itml": Method("itml", "ITML", "information-theoretic metric learning"),
}


def parse_methods(text):
    """Turn ``"lmnn,nca"`` (or ``"all"``) into method names, checking each."""
    if text in (None, "", "all"):
        return list(METHOD_NAMES)
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in METHODS]
    if unknown:
        raise ValueError(
            f"--methods got unknown method(s) {unknown}; choose from "
            f"{', '.join(METHOD_NAMES)} or 'all'."
        )
    return names


def availability(name):
    """Return ``(available, note)`` for a method, without fitting anything."""
    method = METHODS[name]
    if method.class_name is None:
        return True, ""
    try:
        method.make(n_neighbors=3, seed=0)
    except ImportError as exc:
        return False, str(exc)
    return True, ""
