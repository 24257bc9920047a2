"""Figures of benchmark records (matplotlib, PNG files)."""

import math
from pathlib import Path

_MARKERS = "osD^v<>pPX*h"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(n_panels):
    columns = min(n_panels, 2)
    return math.ceil(n_panels / columns), columns


def plot_accuracy_vs_time(records, path):
    """kNN test accuracy against fit time, one panel per data set.

    Every (library, method) pair is one point per seed, with a marker per
    library and a colour per method; all libraries share each panel, and one
    legend serves the figure. The time axis is logarithmic. Methods without a
    fit (the Euclidean baseline) are drawn as a dashed horizontal line.
    """
    plt = _pyplot()
    done = [r for r in records if r["status"] == "ok" and r["knn_accuracy"] is not None]
    datasets = list(dict.fromkeys(r["dataset"] for r in done))
    if not datasets:
        return None
    libraries = list(dict.fromkeys(r["library"] for r in done))
    methods = list(dict.fromkeys(r["method"] for r in done))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    rows, columns = _grid(len(datasets))
    figure, axes = plt.subplots(
        rows, columns, figsize=(5.5 * columns + 2.5, 4 * rows), squeeze=False
    )
    legend = {}
    for axis, dataset in zip(axes.flat, datasets, strict=False):
        for record in (r for r in done if r["dataset"] == dataset):
            library = libraries.index(record["library"])
            method = methods.index(record["method"])
            label = f"{record['method']} ({record['library']})"
            if not record["fit_seconds"]:
                artist = axis.axhline(
                    record["knn_accuracy"], color="0.4", linestyle="--", linewidth=1
                )
            else:
                artist = axis.scatter(
                    record["fit_seconds"],
                    record["knn_accuracy"],
                    marker=_MARKERS[library % len(_MARKERS)],
                    color=colours[method % len(colours)],
                    s=60,
                    alpha=0.85,
                )
            legend.setdefault(label, artist)
        axis.set_xscale("log")
        axis.set_title(dataset)
        axis.set_xlabel("fit time (s)")
        axis.set_ylabel(f"{done[0]['n_neighbors']}-NN test accuracy")
        axis.grid(True, which="both", alpha=0.3)
    for axis in list(axes.flat)[len(datasets) :]:
        axis.set_visible(False)
    figure.tight_layout(rect=(0, 0, 1 - 2.4 / (5.5 * columns + 2.5), 1))
    figure.legend(legend.values(), legend.keys(), loc="upper right", fontsize="small")
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)


def plot_loss_curves(records, path):
    """Loss per iteration of the iterative learners.

    One row of panels per data set and one column per learner, since the
    learners' objectives are on different scales; each panel holds every
    library and seed that reported a curve.
    """
    plt = _pyplot()
    curves = [r for r in records if r["status"] == "ok" and r.get("loss_curve")]
    datasets = list(dict.fromkeys(r["dataset"] for r in curves))
    methods = list(dict.fromkeys(r["method"] for r in curves))
    if not datasets:
        return None
    figure, axes = plt.subplots(
        len(datasets),
        len(methods),
        figsize=(4.5 * len(methods), 3.3 * len(datasets)),
        squeeze=False,
    )
    for row, dataset in enumerate(datasets):
        for column, method in enumerate(methods):
            axis = axes[row, column]
            chosen = [
                r for r in curves if r["dataset"] == dataset and r["method"] == method
            ]
            if not chosen:
                axis.set_visible(False)
                continue
            for record in chosen:
                curve = record["loss_curve"]
                axis.plot(
                    range(1, len(curve) + 1),
                    curve,
                    label=f"{record['library']} seed={record['seed']}",
                )
            if all(value > 0 for r in chosen for value in r["loss_curve"]):
                axis.set_yscale("log")
            axis.set_title(f"{dataset}: {method}")
            axis.set_xlabel("iteration")
            axis.set_ylabel("loss")
            axis.grid(True, alpha=0.3)
            axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)


def write_plots(records, directory, *, prefix=""):
    """Write every figure into ``directory``; return the paths written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = [
        plot_accuracy_vs_time(records, directory / f"{prefix}accuracy_vs_fit_time.png"),
        plot_loss_curves(records, directory / f"{prefix}loss_curves.png"),
    ]
    return [path for path in written if path is not None]
