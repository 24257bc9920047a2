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

# The most bytes, and the most buffers, one thread keeps between fits.
MAX_KEPT_BYTES = 32 * 2**20
MAX_KEPT_BUFFERS = 16

_LOCAL = threading.local()


@contextmanager
def scratch():
    """Yield ``empty(shape)``: uninitialised float64 arrays valid inside the block.

    ``empty`` takes the smallest kept buffer large enough, or allocates
    one. At the end of the block the buffers go back to the thread's pool,
    ahead of those kept from earlier fits; the pool keeps from its front as
    many as fit in ``MAX_KEPT_BYTES`` and ``MAX_KEPT_BUFFERS``.
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
        kept = []
        n_bytes = 0
        for buffer in taken + pool:
            if (
                len(kept) < MAX_KEPT_BUFFERS
                and n_bytes + buffer.nbytes <= MAX_KEPT_BYTES
            ):
                kept.append(buffer)
                n_bytes += buffer.nbytes
        pool[:] = kept
