"""Input sets and the original's outputs, held in memory while small and in files, one set read at a time, beyond.

The verification runs each model on a few input sets and compares every candidate rewrite with the original's
outputs on them, so both are kept for the whole conversion. On large inputs they outweigh the run itself: a chain
of six 256-wide MatMuls at [8, 32768, 256] holds 3 sets of a 256 MB input and a 256 MB output, 1.5 GB, where
onnxruntime running the original once peaks at 0.85 GB. Past HOLD_BYTES in all, each array of a set is saved to a .npy
file in a folder of its own (under the conversion's work folder beside the output when there is one) and read
back when that set runs, so that one set is in memory at a time (issue 25, case 8).

A set is a dict (an input set: name -> array) or a list (a model's outputs in order); values that are not arrays
(a sequence or map output) stay in memory.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any, Iterator, List, Optional, Sequence

import numpy as np

HOLD_BYTES = 16 * 2**20


class _Saved:
    """An array in a .npy file."""
    __slots__ = ("path",)

    def __init__(self, path: str):
        self.path = path


def _nbytes(item) -> int:
    values = item.values() if isinstance(item, dict) else item
    return sum(v.nbytes for v in values if isinstance(v, np.ndarray))


class Held(Sequence):
    """Sets appended one by one; indexing or iterating gives each back whole (read from its files if saved)."""

    def __init__(self, workdir: Optional[str] = None, limit: Optional[int] = None):
        self._items: List[Any] = []
        self._workdir, self._limit = workdir, HOLD_BYTES if limit is None else limit
        self._bytes, self._folder = 0, None   # a tempfile.TemporaryDirectory once something is saved
        self._files = 0

    def append(self, item) -> None:
        self._bytes += _nbytes(item)
        if self._bytes > self._limit:
            for i, kept in enumerate(self._items):   # those held so far go to files too
                self._items[i] = self._save(kept)
            item = self._save(item)
        self._items.append(item)

    def extend(self, items: Iterator) -> None:
        """Append each item as it comes, holding none of them here while the next is made."""
        while True:
            item = next(items, None)
            if item is None:
                return
            self.append(item)
            del item

    @property
    def on_disk(self) -> bool:
        return self._folder is not None

    def _save(self, item):
        if self._folder is None:
            self._folder = tempfile.TemporaryDirectory(prefix="fc2conv-held-", dir=self._workdir)
        pairs = item.items() if isinstance(item, dict) else enumerate(item)
        saved = {} if isinstance(item, dict) else [None] * len(item)
        for key, value in pairs:
            if isinstance(value, np.ndarray) and value.dtype != object:
                path = os.path.join(self._folder.name, f"{self._files}.npy")
                self._files += 1
                np.save(path, value, allow_pickle=False)
                value = _Saved(path)
            saved[key] = value
        return saved

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int):
        item = self._items[index]
        load = lambda v: np.load(v.path, allow_pickle=False) if isinstance(v, _Saved) else v
        return {k: load(v) for k, v in item.items()} if isinstance(item, dict) else [load(v) for v in item]

    def __iter__(self) -> Iterator:
        return (self[i] for i in range(len(self._items)))

    def close(self) -> None:
        if self._folder is not None:
            self._folder.cleanup()
