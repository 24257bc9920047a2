"""The measured table of the "choosing a learner" page.

At build time the benchmark suite's public functions fit every method on
scikit-learn's embedded data sets (the quick suite's splits: stratified
70/30, standardised on the training part) and the results are written as a
reStructuredText table that ``choosing.rst`` includes. Nothing in the table
is typed by hand. The table is kept between builds; delete
``docs/generated/benchmark_table.rst`` (or run a clean build) to measure
again.
"""

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


def measure():
    """Records of every available method on every embedded data set."""
    from benchmarks.data import load_embedded
    from benchmarks.methods import METHOD_NAMES, availability
    from benchmarks.runner import run_linmetric, warm_up

    records = []
    for dataset in DATASETS:
        split = load_embedded(dataset, seed=0)
        for method in METHOD_NAMES:
            if not availability(method)[0]:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                warm_up(split, method)
                records.append(run_linmetric(split, method, suite="docs"))
    return records


def format_records(records, seconds):
    rows = []
    for record in records:
        ok = record["status"] == "ok"
        rows.append(
            [
                record["dataset"],
                record["method"],
                _cell(record.get("n_train"), "{:d}"),
                _cell(record.get("n_components"), "{:d}"),
                _cell(record.get("knn_accuracy") if ok else None, "{:.3f}"),
                _cell(record.get("energy_accuracy") if ok else None, "{:.3f}"),
                _milliseconds(record.get("fit_seconds")) if ok else record["status"],
            ]
        )
    headers = [
        "data set",
        "method",
        "training points",
        "output dim.",
        "3-NN accuracy",
        "energy rule accuracy",
        "fit time (ms)",
    ]
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
    notes = [
        f"- {r['dataset']} / {r['method']}: {r['note']}"
        for r in records
        if r.get("note")
    ]
    lines += [
        "",
        f"Measured while this page was built, in {seconds:.0f} s, with Python "
        f"{platform.python_version()} on {platform.machine()} with "
        f"{os.cpu_count()} logical cores; fit times are the "
        "median of up to five fits after one untimed warm-up fit (which also "
        "compiles the numba kernels), so they vary with the machine and its load.",
        "",
    ]
    if notes:
        lines += ["Notes from the runs:", "", *notes, ""]
    return "\n".join(lines)


def write_benchmark_table(docs_dir):
    path = Path(docs_dir) / "generated" / "benchmark_table.rst"
    if path.exists():
        return path
    start = time.perf_counter()
    records = measure()
    text = format_records(records, time.perf_counter() - start)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
