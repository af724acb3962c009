"""Arrow text read where it lies: the offsets of a string array's cells, so byte lengths and a
cell's bytes are numpy slices rather than a Python string per cell."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def text_offsets(text: pa.Array) -> np.ndarray:
    """Where each cell of a string (or large string) array starts in its data buffer, and where
    the last ends: len(text) + 1 offsets (a null's cell is as long as an empty one: 0 bytes)."""
    offsets = text.buffers()[1]
    if offsets is None:
        return np.zeros(len(text) + 1, dtype=np.int64)
    width = np.int64 if pa.types.is_large_string(text.type) else np.int32
    return np.frombuffer(memoryview(offsets), dtype=width)[text.offset:text.offset + len(text) + 1]
