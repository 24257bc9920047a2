"""What a benchmark ran on: versions, BLAS, threads, CPU."""

import datetime
import os
import platform
import sys
from importlib import metadata

_PACKAGES = (
    "linmetric",
    "numpy",
    "scipy",
    "scikit-learn",
    "numba",
    "threadpoolctl",
    "matplotlib",
)
_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)


def cpu_model():
    """The CPU's model name, from /proc/cpuinfo where available."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_versions(names=_PACKAGES):
    """Installed version of each package, None for those not installed."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def blas_info():
    """The thread pools (BLAS, OpenMP) loaded in this process."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("user_api", "internal_api", "version", "num_threads", "threading_layer")
    keys += ("architecture",)
    return [
        {key: pool.get(key) for key in keys if key in pool}
        for pool in threadpool_info()
    ]


def collect_environment():
    """A JSON-serialisable description of the machine and the software."""
    import numpy  # noqa: F401  (loads the BLAS so threadpoolctl can see it)
    import scipy.linalg  # noqa: F401

    try:
        available_cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        available_cpus = os.cpu_count()
    try:
        import numba

        numba_threads = numba.config.NUMBA_NUM_THREADS
    except ImportError:
        numba_threads = None
    return {
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_available": available_cpus,
        "numba_threads": numba_threads,
        "thread_variables": {
            name: os.environ[name] for name in _THREAD_VARIABLES if name in os.environ
        },
        "versions": package_versions(),
        "blas": blas_info(),
    }
