"""
The benchmark suite's results as a figure
=========================================

The benchmark suite (``python -m benchmarks``) fits every learner on
scikit-learn's embedded data sets and scores the learned space. This
example calls the suite's public functions on three of the small data
sets and draws 3-NN test accuracy against fit time, one panel per data set.
The Euclidean baseline (no learning) is the dashed line.

Times are measured on the machine that builds this page, with one untimed
warm-up fit first (which compiles the numba kernels), so they depend on
that machine and its load.
"""

import warnings

import matplotlib.pyplot as plt

from benchmarks.data import load_embedded
from benchmarks.methods import availability, method_names
from benchmarks.runner import run_linmetric

datasets = ("iris", "wine", "breast_cancer")
METHOD_NAMES = method_names("classification")
records = []
for dataset in datasets:
    split = load_embedded(dataset, seed=0)
    for method in METHOD_NAMES:
        if not availability(method)[0]:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # the runner warms up (untimed) before the timed fits; no cold
            # fit in a fresh process here, to keep the example quick
            records.append(run_linmetric(split, method, suite="gallery", cold=False))

for record in records:
    if record["status"] != "ok":
        print(f"{record['dataset']} {record['method']}: {record['status']}")
        continue
    print(
        f"{record['dataset']:>14} {record['method']:>10}: "
        f"accuracy {record['knn_accuracy']:.3f}, fit {record['fit_seconds']:.3f} s"
    )

# %%
# Accuracy against fit time.

methods = [m for m in METHOD_NAMES if m != "euclidean"]
cmap = plt.get_cmap("tab10")
markers = "osD^vP*X"
fig, axes = plt.subplots(
    1, len(datasets), figsize=(4.2 * len(datasets), 4), sharey=False
)
for ax, dataset in zip(axes, datasets, strict=True):
    rows = [r for r in records if r["dataset"] == dataset and r["status"] == "ok"]
    for r in rows:
        if r["method"] == "euclidean":
            ax.axhline(r["knn_accuracy"], color="0.4", ls="--", lw=1, label="Euclidean")
            continue
        k = methods.index(r["method"])
        ax.scatter(
            max(r["fit_seconds"], 1e-4),
            r["knn_accuracy"],
            s=60,
            color=cmap(k),
            marker=markers[k % len(markers)],
            label=r["method"],
        )
    ax.set_xscale("log")
    ax.set_xlabel("fit time (s, log scale)")
    ax.set_title(f"{dataset} ({rows[0]['n_train']} training points)", fontsize=10)
    ax.grid(alpha=0.3)
axes[0].set_ylabel("3-NN test accuracy")
handles, labels = axes[0].get_legend_handles_labels()
fig.legend(handles, labels, loc="outside right center", fontsize=9)
fig.set_layout_engine("constrained")
plt.show()

# %%
# The methods that use no labels (whitening, covariance) fit in
# milliseconds; the supervised ones take longer but only they reliably
# improve on the baseline. The "choosing a learner" page shows the same
# measurements, digits included, as a table.
