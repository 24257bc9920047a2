"""metric-learn 0.7.0's public API on linmetric's learners.

Code written for metric-learn runs unchanged after::

    import linmetric.compat.metric_learn as metric_learn

Every class keeps metric-learn's name, constructor parameters and defaults,
and method semantics, and delegates the fit to a linmetric learner (stored as
``learner_``). The submodules mirror metric-learn's (``base_metric``,
``constraints``, ``itml``, ...). Where metric-learn's behaviour was a known
defect (ITML's default bounds, LMNN's fixed learning rate), the signature is
kept and the sound behaviour is chosen; each class's docstring says where.
See the migration guide for the full table of names and parameters.

Examples
--------
metric-learn's own quick start, unchanged but for the import:

>>> import linmetric.compat.metric_learn as metric_learn
>>> pairs = [[[1.2, 7.5], [1.3, 1.5]],
...          [[6.4, 2.6], [6.2, 9.7]],
...          [[1.3, 4.5], [3.2, 4.6]],
...          [[6.2, 5.5], [5.4, 5.4]]]
>>> y = [1, 1, -1, -1]
>>> itml = metric_learn.ITML(random_state=0).fit(pairs, y)
>>> itml.predict(pairs).shape
(4,)
>>> bool(itml.threshold_ > 0)  # a distance, as in metric-learn
True
>>> from sklearn.datasets import load_iris
>>> X, y = load_iris(return_X_y=True)
>>> lmnn = metric_learn.LMNN(n_neighbors=5, random_state=0).fit(X, y)
>>> lmnn.transform(X).shape
(150, 4)
"""

from .constraints import Constraints
from .covariance import Covariance
from .itml import ITML, ITML_Supervised
from .lfda import LFDA
from .lmnn import LMNN
from .lsml import LSML, LSML_Supervised
from .mlkr import MLKR
from .mmc import MMC, MMC_Supervised
from .nca import NCA
from .rca import RCA, RCA_Supervised
from .scml import SCML, SCML_Supervised
from .sdml import SDML, SDML_Supervised

__version__ = "0.7.0"  # the metric-learn API this namespace follows

__all__ = [
    "ITML",
    "LFDA",
    "LMNN",
    "LSML",
    "MLKR",
    "MMC",
    "NCA",
    "RCA",
    "SCML",
    "SDML",
    "Constraints",
    "Covariance",
    "ITML_Supervised",
    "LSML_Supervised",
    "MMC_Supervised",
    "RCA_Supervised",
    "SCML_Supervised",
    "SDML_Supervised",
    "__version__",
]
