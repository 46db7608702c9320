"""segno's QR mask selection, computed faster: the same symbol, bit for bit.

ISO/IEC 18004 has the encoder try all eight data masks and keep the one with the lowest
penalty score. segno does that module by module in Python (about 4 ms of a label's render
time); here the same evaluation runs on whole rows: bytes.find and a regular expression for
the runs and finder-like patterns, integer bit operations for the 2x2 blocks.

It uses segno's own encoder helpers for everything but the scoring, and `fast_qr_matrix`
falls back to plain segno if those helpers ever change; tests/unit/labels/test_labels_qr.py
checks that the result is identical to segno's.
"""

from __future__ import annotations

import re
from functools import lru_cache

import segno
from segno import consts, encoder

_RUN = re.compile(rb"\x00{5,}|\x01{5,}")
_N3_PATTERN = bytes((1, 0, 1, 1, 1, 0, 1))
_TO_DIGITS = bytes.maketrans(b"\x00\x01", b"01")


@lru_cache(maxsize=40)
def _regions(width: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[tuple[int, ...], ...]]:
    """Per row, as bit masks (bit j = column j): data modules, reserved format/version modules,
    and for each of the 8 masks the data modules it flips. Built with segno's own helpers,
    exactly as segno.encoder.find_and_apply_best_mask and make_matrix build them."""
    reserved_grid = encoder.make_matrix(width, width)  # 0x2 everywhere, 0x0 where reserved
    plain_grid = encoder.make_matrix(width, width, reserve_regions=False)
    for grid in (reserved_grid, plain_grid):
        encoder.add_finder_patterns(grid, width, width)
        encoder.add_alignment_patterns(grid, width, width)
    data = tuple(sum(1 << j for j in range(width) if row[j] > 0x1) for row in reserved_grid)
    reserved = tuple(
        sum(1 << j for j in range(width) if row[j] != plain[j]) for row, plain in zip(reserved_grid, plain_grid)
    )
    flips = tuple(
        tuple(sum(1 << j for j in range(width) if data[i] >> j & 1 and mask(i, j)) for i in range(width))
        for mask in encoder.get_data_mask_functions(False)
    )
    return data, reserved, flips


def _row_bits(row: bytes | bytearray) -> int:
    """Row of 0/1 module bytes as an int, bit j = column j."""
    return int(bytes(row).translate(_TO_DIGITS)[::-1], 2)


_FROM_DIGITS = bytes.maketrans(b"01", b"\x00\x01")


def _bits_row(bits: int, width: int) -> bytes:
    return format(bits, f"0{width}b")[::-1].encode().translate(_FROM_DIGITS)


def penalty(rows: list[bytes], bits: list[int], width: int) -> int:
    """segno.encoder.evaluate_mask (N1 + N2 + N3 + N4) for a matrix of 0/1 module bytes.

    Rows and columns are scanned as one byte string with a 0x2 between lines, which no run
    or pattern can cross.
    """
    stride = width + 1
    lines = b"\x02".join((*rows, *(bytes(column) for column in zip(*rows))))
    runs = _RUN.findall(lines)  # N1: runs of 5 or more modules of one colour score length - 2
    score = sum(map(len, runs)) - 2 * len(runs)
    idx = lines.find(_N3_PATTERN)  # N3: 1:1:3:1:1 patterns; segno's n3_pattern_occurrences per line
    while idx != -1:
        start = idx - idx % stride
        offset = idx + 7
        if (
            idx - start in (0, width - 7)
            or not any(lines[max(idx - 4, start) : idx])
            or not any(lines[offset : min(offset + 4, start + width)])
        ):
            score += 40
        else:
            offset = idx + 4
        idx = lines.find(_N3_PATTERN, offset)
    pairs = (1 << (width - 1)) - 1
    full = (1 << width) - 1
    for above, below in zip(bits, bits[1:]):  # N2: 2x2 blocks of one colour score 3
        same_vertically = ~(above ^ below) & full
        same_horizontally = ~(below ^ (below >> 1)) & pairs
        score += 3 * (same_horizontally & same_vertically & (same_vertically >> 1)).bit_count()
    dark = sum(bit_row.bit_count() for bit_row in bits)
    percent = float(dark) / (width**2)
    return score + 10 * int(abs(percent * 100 - 50) / 5)  # N4: balance of dark and light


def fast_qr_matrix(url: str) -> tuple[bytearray, ...]:
    """The matrix segno.make_qr(url, error="m", boost_error=False) returns, mask chosen faster."""
    try:
        return _fast_qr_matrix(url)
    except (AttributeError, TypeError, ValueError, KeyError, IndexError):  # segno internals changed
        return segno.make_qr(url, error="m", boost_error=False).matrix


def _fast_qr_matrix(url: str) -> tuple[bytearray, ...]:
    # Mask 0 given: segno skips its own evaluation. Undo it, then score all eight.
    first = segno.make_qr(url, error="m", boost_error=False, mask=0)
    version = first.version
    if not isinstance(version, int) or first.error != "M":
        raise ValueError("not a QR Code symbol at level M")
    width = len(first.matrix)
    data, reserved, flips = _regions(width)
    final_bits = [_row_bits(row) for row in first.matrix]
    unmasked = [(bits ^ flip) & ~kept for bits, flip, kept in zip(final_bits, flips[0], reserved)]
    best_score, best_mask, best_rows = None, 0, None
    for mask, mask_flips in enumerate(flips):
        bits = [row ^ flip for row, flip in zip(unmasked, mask_flips)]
        rows = [_bits_row(row, width) for row in bits]
        score = penalty(rows, bits, width)
        if best_score is None or score < best_score:
            best_score, best_mask, best_rows = score, mask, rows
    if best_mask == 0:
        return first.matrix
    matrix = tuple(bytearray(row) for row in best_rows)
    encoder.add_format_info(matrix, version, consts.ERROR_LEVEL_M, best_mask)
    encoder.add_version_info(matrix, version)
    return matrix
