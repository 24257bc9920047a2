"""The measured table of the "choosing a learner" page.

At build time the benchmark suite's public functions fit every method on
scikit-learn's embedded data sets (the quick suite's splits: stratified
70/30, standardised on the training part) and the results are written as a
reStructuredText table that ``choosing.rst`` includes. Nothing in the table
is typed by hand. The measurements are kept between builds in
``docs/generated/benchmark_records.json``; delete it (or run a clean build)
to measure again.
"""

import contextlib
import json
import os
import platform
import time
import warnings
from pathlib import Path

DATASETS = ("iris", "wine", "breast_cancer", "digits")


def _cell(value, fmt):
    return "--" if value is None else fmt.format(value)


def _milliseconds(seconds):
    if seconds is None:
        return "--"
    milliseconds = 1000 * seconds
    return (
        "0"
        if milliseconds == 0
        else f"{milliseconds:.2g}"
        if milliseconds < 10
        else f"{milliseconds:.0f}"
    )


# Learners of the package that learn from class labels but that the
# benchmark suite does not register (yet): the table measures them through
# the suite's own runner, as entries of the suite's registry added for the
# duration of the measurement. An entry the suite registers itself wins.
EXTRA_METHODS = (
    ("lfda", "LFDA", "local Fisher discriminant analysis", {}),
    ("rca", "RCA", "relevant components analysis", {"seeded": True}),
    ("dmlmj", "DMLMJ", "distance metric learning by Jeffrey divergence", {}),
    ("kissme", "KISSME", "keep it simple and straightforward", {"seeded": True}),
    ("gmml", "GMML", "geometric mean metric learning", {"seeded": True}),
    ("mmc", "MMC", "metric learning for clustering (Xing et al.)", {"seeded": True}),
    ("sdml", "SDML", "sparse determinant metric learning", {"seeded": True}),
    ("lsml", "LSML", "least squares metric learning", {"seeded": True}),
    ("scml", "SCML", "sparse compositional metric learning", {"seeded": True}),
)

# Public learners the table leaves out, and why (printed while building).
NOT_MEASURED = {
    "MLKR": "learns from real-valued targets (see the MLKR gallery example)",
    "EnergyClassifier": "a classifier on LMNN's metric: the energy rule column",
    "PairsClassifier": "classifies pairs; it wraps a learner measured here",
    "TripletsClassifier": "classifies triplets; it wraps a learner measured here",
    "QuadrupletsClassifier": "classifies quadruplets; it wraps a learner measured here",
}


@contextlib.contextmanager
def suite_methods():
    """The benchmark suite's classification methods, and the extra ones.

    Yields the method names in the table's order; the extra entries are
    removed from the suite's registry on exit.
    """
    from benchmarks import methods

    added = []
    for name, class_name, description, options in EXTRA_METHODS:
        if name in methods.METHODS:
            continue
        if any(m.class_name == class_name for m in methods.METHODS.values()):
            continue
        methods.METHODS[name] = methods.Method(name, class_name, description, **options)
        added.append(name)
    try:
        yield methods.method_names("classification")
    finally:
        for name in added:
            del methods.METHODS[name]


def measure():
    """Records of every available method on every embedded data set."""
    from benchmarks.data import load_embedded
    from benchmarks.methods import availability
    from benchmarks.runner import run_linmetric

    for name, reason in NOT_MEASURED.items():
        print(f"benchmark table: {name} not measured: {reason}")
    records = []
    with suite_methods() as names:
        for dataset in DATASETS:
            split = load_embedded(dataset, seed=0)
            for method in names:
                if not availability(method)[0]:
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    # the runner warms up (untimed) before its timed fits;
                    # no cold fit in a fresh process, to keep the build short
                    records.append(
                        run_linmetric(split, method, suite="docs", cold=False)
                    )
    return records


def format_records(records, seconds):
    """The records as a table: one row per method, two columns per data set."""
    datasets = [d for d in DATASETS if any(r["dataset"] == d for r in records)]
    methods = list(dict.fromkeys(r["method"] for r in records))
    by_key = {(r["dataset"], r["method"]): r for r in records}

    def accuracy(record, key):
        ok = record is not None and record["status"] == "ok"
        return _cell(record.get(key) if ok else None, "{:.3f}")

    def fit_time(record):
        if record is None:
            return "--"
        if record["status"] != "ok":
            return record["status"]
        return _milliseconds(record.get("fit_seconds"))

    headers = ["method"]
    for dataset in datasets:
        headers += [f"{dataset}: 3-NN accuracy", f"{dataset}: fit (ms)"]
    rows = []
    for method in methods:
        row = [method]
        for dataset in datasets:
            record = by_key.get((dataset, method))
            row += [accuracy(record, "knn_accuracy"), fit_time(record)]
        rows.append(row)
        energy = [by_key.get((d, method)) for d in datasets]
        if any(r is not None and r.get("energy_accuracy") is not None for r in energy):
            row = [f"{method}, energy rule"]
            for record in energy:
                row += [accuracy(record, "energy_accuracy"), "--"]
            rows.append(row)
    lines = [
        ".. This file is written at build time by docs/_ext/benchmark_table.py.",
        "",
        ".. list-table:: 3-NN test accuracy and fit time of every learner",
        "   :header-rows: 1",
        "   :class: benchmark-table",
        "",
    ]
    for row in [headers, *rows]:
        lines.append(f"   * - {row[0]}")
        lines.extend(f"     - {cell}" for cell in row[1:])
    sizes = ", ".join(
        f"{d} {by_key[(d, methods[0])]['n_train']} training points and "
        f"{by_key[(d, methods[0])]['n_features']} features"
        for d in datasets
        if (d, methods[0]) in by_key
    )
    notes = [
        f"- {r['dataset']} / {r['method']}: {r['note']}"
        for r in records
        if r.get("note")
    ]
    notes += [
        f"- {r['dataset']} / {r['method']}: the map has {r['n_components']} "
        f"output dimensions for {r['n_features']} features"
        for r in records
        if r.get("n_components") is not None
        and r.get("n_features") is not None
        and r["n_components"] != r["n_features"]
    ]
    lines += [
        "",
        f"Data sets: {sizes}. Measured while this page was built, in "
        f"{seconds:.0f} s, with Python "
        f"{platform.python_version()} on {platform.machine()} with "
        f"{os.cpu_count()} logical cores; fit times are the "
        "median of up to five fits (one when a fit takes over a second) after "
        "one untimed warm-up fit on a small slice (which also compiles the "
        "numba kernels), so they vary with the machine and its load.",
        "",
    ]
    if notes:
        lines += ["Notes from the runs:", "", *notes, ""]
    return "\n".join(lines)


def write_benchmark_table(docs_dir):
    """Write ``generated/benchmark_table.rst`` from the measured records.

    The records are kept in ``generated/benchmark_records.json``; delete it
    (or run a clean build) to measure again.
    """
    generated = Path(docs_dir) / "generated"
    records_path = generated / "benchmark_records.json"
    if records_path.exists():
        saved = json.loads(records_path.read_text())
    else:
        start = time.perf_counter()
        records = measure()
        saved = {"seconds": time.perf_counter() - start, "records": records}
        generated.mkdir(parents=True, exist_ok=True)
        records_path.write_text(json.dumps(saved, default=str))
    path = generated / "benchmark_table.rst"
    text = format_records(saved["records"], saved["seconds"])
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path
