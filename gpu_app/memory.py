"""A process-wide budget of bytes for decoded pixels: decoders wait for room instead of piling up.

A decoder reserves what decoding an image will cost at its peak before it decodes (known from the
header), keeps only the decoded array's bytes once done, and those return to the budget when the
array itself is freed (after inference has consumed it). So memory follows the pixels really alive,
however many files a request carries or requests arrive at once, and nothing is ever leaked by a
forgotten release.
"""

from __future__ import annotations

import ctypes
import threading
import weakref

import numpy as np


class MemoryBudget:
    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("a memory budget needs a positive capacity")
        self.capacity = capacity
        self._free = capacity
        # Re-entrant: an array freed by the garbage collector while this thread holds the lock
        # returns its bytes from inside the lock.
        self._room = threading.Condition(threading.RLock())

    @property
    def free(self) -> int:
        with self._room:
            return self._free

    def reserve(self, nbytes: int) -> Reservation:
        """Wait until `nbytes` are free and take them. More than the capacity waits for the whole
        budget: one image larger than the budget is decoded alone rather than never."""
        wanted = max(0, min(int(nbytes), self.capacity))
        with self._room:
            while self._free < wanted:
                self._room.wait()
            self._free -= wanted
        return Reservation(self, wanted)

    def _give_back(self, nbytes: int) -> None:
        if nbytes <= 0:
            return
        with self._room:
            self._free = min(self.capacity, self._free + nbytes)
            self._room.notify_all()


class Reservation:
    """Bytes taken from a budget: `keep_for` ties them to an array, `release` gives them back."""

    def __init__(self, budget: MemoryBudget, nbytes: int) -> None:
        self._budget = budget
        self._held = nbytes
        self._lock = threading.Lock()

    def _take(self) -> int:
        with self._lock:
            held, self._held = self._held, 0
            return held

    def release(self) -> None:
        """Give everything back (idempotent); for a decode that failed."""
        self._budget._give_back(self._take())

    def keep_for(self, array: np.ndarray) -> np.ndarray:
        """Keep the array's bytes (at most what was reserved) until the array is freed; the rest of
        the reservation (the decode's transient peak) is free again now."""
        held = self._take()
        kept = min(held, array.nbytes)
        self._budget._give_back(held - kept)
        if kept:
            weakref.finalize(array, self._budget._give_back, kept)
        return array

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()  # whatever `keep_for` did not keep


_M_MMAP_THRESHOLD = -3  # glibc mallopt parameters
_M_ARENA_MAX = -8


def _mallopt(parameter: int, value: int) -> bool:
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(parameter, value))


def cap_malloc_arenas(count: int = 2) -> bool:
    """At most `count` glibc heaps for all threads. By default each of the app's dozens of threads
    (request pool, decoders, inference, jobs) may get its own heap, and every heap keeps what was
    freed in it: serving sequential uploads took RSS from 180 MB ready to 400 MB, 350 MB with two
    heaps (bench/README section 7). False where the C library has no mallopt (not glibc)."""
    return _mallopt(_M_ARENA_MAX, count)


def map_large_buffers_alone(threshold: int = 4 * 1024 * 1024) -> bool:
    """Make glibc give every buffer of `threshold` bytes or more its own mapping, returned to the OS
    when freed. By default glibc's threshold rises with use (up to 32 MiB), after which decoded
    pixel buffers come from per-thread heaps that keep their freed memory: with four decoder threads
    and inference, 20 large PNGs left 1.25 GB resident instead of 0.5 GB. False where the C library
    has no mallopt (not glibc); harmless to call again."""
    return _mallopt(_M_MMAP_THRESHOLD, threshold)
