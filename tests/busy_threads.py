"""A thread of the test's own process that keeps a CPU busy without the GIL,
as torch's OpenMP threads do while they spin between parallel regions."""

import hashlib
import threading


class Burner:
    """Burns a CPU from ``__enter__`` to ``__exit__`` (hashlib hashes large
    buffers with the GIL released, so the test's own thread runs on)."""

    def __init__(self):
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._burn, daemon=True)

    def _burn(self) -> None:
        data = bytes(1 << 20)
        while not self.stop.is_set():
            hashlib.sha256(data).digest()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
