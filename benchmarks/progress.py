"""Progress of long runs: one live status line, one summary line per run.

On a terminal the current run is shown on a single line redrawn in place
(elapsed time and iteration); elsewhere (logs, pipes) only the summary line
of each finished run is printed, so nothing floods the output.
"""

import sys
import threading
import time


class Progress:
    """Live status line for a sequence of runs.

    Parameters
    ----------
    total : int
        Number of runs announced.
    stream : file, default=sys.stderr
        Where to write.
    quiet : bool, default=False
        Print nothing at all.
    refresh : float, default=0.5
        Seconds between redraws of the live line.
    """

    def __init__(self, total, stream=None, quiet=False, refresh=0.5):
        self.total = total
        self.stream = stream
        self.quiet = quiet
        self.refresh = refresh

    def __enter__(self):
        self._stream = self.stream or sys.stderr
        self._live = (not self.quiet) and getattr(self._stream, "isatty", bool)()
        self._lock = threading.Lock()
        self._done = 0
        self._label = ""
        self._iteration = None
        self._started = None
        self._stop = threading.Event()
        self._thread = None
        if self._live:
            self._thread = threading.Thread(target=self._redraw_loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._clear()

    def start(self, label):
        """Begin a run called ``label``."""
        with self._lock:
            self._label = label
            self._iteration = None
            self._started = time.perf_counter()
        self._draw()

    def iteration(self, n_iter):
        """Record that the current run reached iteration ``n_iter``."""
        self._iteration = n_iter

    def callback(self, components, n_iter):
        """A ``callback(components, n_iter)`` for the learners."""
        self.iteration(n_iter)

    def finish(self, summary):
        """End the current run and print its one-line ``summary``."""
        with self._lock:
            self._done += 1
            self._started = None
            if not self.quiet:
                self._clear_locked()
                print(f"[{self._done}/{self.total}] {summary}", file=self._stream)
                self._stream.flush()

    def _status(self):
        if self._started is None:
            return ""
        elapsed = time.perf_counter() - self._started
        text = f"[{self._done + 1}/{self.total}] {self._label}  {elapsed:6.1f} s"
        if self._iteration is not None:
            text += f"  iter {self._iteration}"
        return text

    def _draw(self):
        if not self._live:
            return
        with self._lock:
            status = self._status()
            if status:
                self._stream.write("\r\x1b[2K" + status[:160])
                self._stream.flush()

    def _clear_locked(self):
        if self._live:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()

    def _clear(self):
        if getattr(self, "_lock", None) is None:
            return
        with self._lock:
            self._clear_locked()

    def _redraw_loop(self):
        while not self._stop.wait(self.refresh):
            self._draw()
