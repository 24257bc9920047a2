"""Peak memory of a block of code, by sampling the resident set size.

The peak counts every allocation of the process (NumPy, BLAS, numba), not only
the ones Python's tracemalloc sees; it is reported as the growth over the
resident size at the start of the block, in MiB. Sampling every few
milliseconds misses only allocations shorter than that.
"""

import os
import threading

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss_bytes():
    """Resident set size of this process in bytes, or None where unknown."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE_BYTES
    except OSError:
        return None


class PeakMemory:
    """Context manager measuring the peak RSS growth inside its block.

    After the block, ``peak_mib`` holds the growth in MiB (None where the
    platform gives no resident size).
    """

    def __init__(self, interval=0.005):
        self.interval = interval

    def __enter__(self):
        self.peak_mib = None
        self._start = current_rss_bytes()
        self._peak = self._start
        self._stop = threading.Event()
        if self._start is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(self.interval):
            rss = current_rss_bytes()
            if rss is not None and rss > self._peak:
                self._peak = rss

    def __exit__(self, *exc_info):
        if self._start is None:
            return
        self._stop.set()
        self._thread.join()
        rss = current_rss_bytes()
        if rss is not None and rss > self._peak:
            self._peak = rss
        self.peak_mib = (self._peak - self._start) / 2**20
