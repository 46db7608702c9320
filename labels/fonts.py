"""Font tooling checks: WeasyPrint subsets fonts fast only with HarfBuzz's subsetting library."""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache


@lru_cache(maxsize=1)
def harfbuzz_subset_available() -> bool:
    """Whether libharfbuzz-subset can be loaded (Debian: libharfbuzz-subset0); without it PDFs render slowly."""
    candidates = [ctypes.util.find_library("harfbuzz-subset"), "libharfbuzz-subset.so.0", "libharfbuzz-subset.0.dylib"]
    for name in candidates:
        if not name:
            continue
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return True
    return False
