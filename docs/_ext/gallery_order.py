"""The order of the gallery: from what a metric does to what it is used for."""

from pathlib import Path

ORDER = (
    "plot_warping.py",
    "plot_lmnn_margins.py",
    "plot_nca_soft_neighbors.py",
    "plot_itml_constraints.py",
    "plot_pairs_classifier.py",
    "plot_energy_rule.py",
    "plot_embeddings.py",
    "plot_mlkr_regression.py",
    "plot_retrieval.py",
    "plot_clustering.py",
    "plot_benchmark.py",
)


class ExampleOrder:
    """Sort key for sphinx-gallery: the scripts of ORDER first, then the rest
    by file name (so that a new script appears without editing this file)."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        name = Path(filename).name
        if name in ORDER:
            return (0, ORDER.index(name), name)
        return (1, 0, name)

    def __repr__(self):
        return f"{type(self).__name__}()"
