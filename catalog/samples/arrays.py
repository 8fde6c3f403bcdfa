"""numpy string-array helpers shared by the sample generator, its vocabulary and writers."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

S = np.dtypes.StringDType()


def strs(values: Iterable[str]) -> np.ndarray:
    """An array of strings in numpy's variable-width string dtype."""
    return np.array(list(values), dtype=S)


def join(*parts: np.ndarray | str) -> np.ndarray:
    """Element-wise concatenation, pairing neighbours: fewer copies than a left fold."""
    level = list(parts)
    while len(level) > 1:
        pairs = range(0, len(level) - 1, 2)
        level = [np.strings.add(level[i], level[i + 1]) for i in pairs] + level[
            len(level) // 2 * 2 :
        ]
    return np.asarray(level[0])
