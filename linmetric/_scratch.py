"""Scratch memory that a thread reuses from one fit to the next.

Some fits write megabytes of temporary float64 arrays (LSML's differences
and their images, the diagonal MMC's squared differences). Memory fresh
from the operating system costs a page fault per 4 KiB page at its first
touch, and the allocator hands freed megabytes back to the system between
fits: on digits these faults were 15% of a diagonal MMC fit. Each thread
keeps a few buffers between fits instead. A fit borrows them for its
duration and returns them at the end, so a fit inside another (from a
callback) or in another thread never shares one; the arrays never leave
the fit.
"""

import threading
from contextlib import contextmanager

import numpy as np

# The most bytes of buffers one thread keeps between fits.
MAX_KEPT_BYTES = 32 * 2**20

_LOCAL = threading.local()


@contextmanager
def scratch():
    """Yield ``empty(shape)``: uninitialised float64 arrays valid inside the block.

    ``empty`` takes the smallest kept buffer large enough, or allocates
    one; at the end of the block the buffers go back to the thread's pool,
    the smallest first, as long as it holds at most ``MAX_KEPT_BYTES``.
    """
    pool = _LOCAL.__dict__.setdefault("pool", [])
    taken = []

    def empty(shape):
        size = int(np.prod(shape, dtype=np.int64))
        fitting = [i for i, buffer in enumerate(pool) if buffer.shape[0] >= size]
        if fitting:
            buffer = pool.pop(min(fitting, key=lambda i: pool[i].shape[0]))
        else:
            buffer = np.empty(size)
        taken.append(buffer)
        return buffer[:size].reshape(shape)

    try:
        yield empty
    finally:
        kept = sum(buffer.nbytes for buffer in pool)
        for buffer in sorted(taken, key=lambda buffer: buffer.shape[0]):
            if kept + buffer.nbytes <= MAX_KEPT_BYTES:
                pool.append(buffer)
                kept += buffer.nbytes
