"""SCML and SCML_Supervised with metric-learn's parameters, on :class:`linmetric.SCML`."""

from ... import SCML as _LinmetricSCML
from ... import TripletsClassifier
from .base_metric import MahalanobisMixin, _SupervisedMixin, _TripletsClassifierMixin

__all__ = ["SCML", "SCML_Supervised"]


class _BaseSCML(MahalanobisMixin):
    """What SCML and SCML_Supervised share."""

    def __init__(
        self,
        beta=1e-5,
        basis="triplet_diffs",
        n_basis=None,
        gamma=5e-3,
        max_iter=10000,
        output_iter=500,
        batch_size=10,
        verbose=False,
        preprocessor=None,
        random_state=None,
    ):
        self.beta = beta
        self.basis = basis
        self.n_basis = n_basis
        self.gamma = gamma
        self.max_iter = max_iter
        self.output_iter = output_iter
        self.batch_size = batch_size
        self.verbose = verbose
        self.preprocessor = preprocessor
        self.random_state = random_state

    def _make_learner(self, X=None, y=None):
        return _LinmetricSCML(
            beta=self.beta,
            basis=self.basis,
            n_basis=self.n_basis,
            gamma=self.gamma,
            max_iter=self.max_iter,
            output_iter=self.output_iter,
            batch_size=self.batch_size,
            verbose=self.verbose,
            random_state=self.random_state,
        )


class SCML(_BaseSCML, _TripletsClassifierMixin):
    """Sparse Compositional Metric Learning from triplets; metric-learn's ``SCML``.

    Fits :class:`linmetric.SCML` through :class:`linmetric.TripletsClassifier`.
    A triplet ``(a, b, c)`` means ``d(a, b) < d(a, c)``.

    Parameters
    ----------
    beta : float, default=1e-5
        L1 weight of the basis weights.
    basis : {'triplet_diffs', 'lda'} or array, default='triplet_diffs'
    n_basis : int or None, default=None
    gamma : float, default=5e-3
        Step scale of AdaGrad.
    max_iter : int, default=10000
    output_iter : int, default=500
    batch_size : int, default=10
    verbose : bool, default=False
    preprocessor : array-like, callable or None, default=None
    random_state : int, RandomState or None, default=None
    """

    def fit(self, triplets):
        """Fit on triplets.

        Parameters
        ----------
        triplets : array-like of shape (n, 3, n_features) or (n, 3)
            Points, or indices into ``preprocessor``.

        Returns
        -------
        self
        """
        return self._fit_tuples(TripletsClassifier, triplets)


class SCML_Supervised(_SupervisedMixin, _BaseSCML):
    """SCML from class labels; metric-learn's ``SCML_Supervised`` on :class:`linmetric.SCML`.

    Uses every triplet of a sample, one of its ``k_genuine`` nearest
    same-class neighbours and one of its ``k_impostor`` nearest other-class
    neighbours.

    Parameters
    ----------
    k_genuine : int, default=3
    k_impostor : int, default=10
    beta, n_basis, gamma, max_iter, output_iter, batch_size, verbose, preprocessor, random_state
        As in :class:`SCML`.
    basis : {'lda', 'triplet_diffs'} or array, default='lda'
    """

    def __init__(
        self,
        k_genuine=3,
        k_impostor=10,
        beta=1e-5,
        basis="lda",
        n_basis=None,
        gamma=5e-3,
        max_iter=10000,
        output_iter=500,
        batch_size=10,
        verbose=False,
        preprocessor=None,
        random_state=None,
    ):
        super().__init__(
            beta=beta,
            basis=basis,
            n_basis=n_basis,
            gamma=gamma,
            max_iter=max_iter,
            output_iter=output_iter,
            batch_size=batch_size,
            verbose=verbose,
            preprocessor=preprocessor,
            random_state=random_state,
        )
        self.k_genuine = k_genuine
        self.k_impostor = k_impostor

    def _make_learner(self, X=None, y=None):
        return (
            super()
            ._make_learner()
            .set_params(k_genuine=self.k_genuine, k_impostor=self.k_impostor)
        )
