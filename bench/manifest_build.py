"""Benchmark: build a 10,000-line customs manifest in mixed currencies.

Run by hand:  .venv/bin/python bench/manifest_build.py [--lines 10000] [--runs 5]
Also times CSV and JSON export of the same manifest (PDF is not timed: a
10,000-line PDF is hundreds of pages and not a realistic collection).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, date, datetime
from decimal import Decimal

from customs.documents import manifest_to_csv, manifest_to_json
from customs.manifest import build_manifest
from customs.model import ManifestInputLine
from customs.mrn import make_mrn
from customs.rates import RateTable

TARGET_SECONDS = 2.0
CURRENCIES = ("SEK", "NOK", "EUR", "DKK", "ISK")
CN_CODES = ("61091000", "61102099", "64039993", "42022210", "62034231", "95030075")
RATES = RateTable(
    date=date(2024, 5, 17),
    source="ECB",
    rates={"SEK": Decimal("11.6200"), "NOK": Decimal("11.6275"), "DKK": Decimal("7.4611"), "ISK": Decimal("150.10")},
)


def make_lines(count: int, seed: int = 42) -> list[ManifestInputLine]:
    rng = random.Random(seed)
    mrns = [make_mrn(2024, "SE", f"{n:012d}", "A") for n in range(max(1, count // 4))]
    lines = []
    for index in range(count):
        quantity = rng.randint(1, 4)
        lines.append(
            ManifestInputLine(
                rma=f"R-{index:06d}",
                mrn=rng.choice(mrns),
                goods_item_number=rng.randint(1, 5),
                cn_code=rng.choice(CN_CODES),
                description="Returned article",
                quantity=quantity,
                unit_value_minor=rng.randint(1, 500_000),
                currency=rng.choice(CURRENCIES),
                origin_country="PT",
                net_weight_grams=rng.randint(50, 3_000) * quantity,
                gross_weight_grams=rng.choice((None, rng.randint(100, 4_000) * quantity)),
                reason="did not fit",
            )
        )
    return lines


def timed(function, runs: int) -> list[float]:
    durations = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        durations.append(time.perf_counter() - start)
    return durations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    lines = make_lines(args.lines)
    when = datetime.now(UTC)
    build = lambda: build_manifest("BENCH", lines, RATES, generated_at=when)  # noqa: E731
    manifest = build()
    assert manifest.grand_total.declared_value_minor == sum(l.declared_value_minor for l in manifest.lines)

    build_times = timed(build, args.runs)
    csv_times = timed(lambda: manifest_to_csv(manifest), args.runs)
    json_times = timed(lambda: manifest_to_json(manifest), args.runs)
    median = statistics.median(build_times)
    print(f"lines: {args.lines}, runs: {args.runs}, currencies: {', '.join(CURRENCIES)}")
    print(f"build_manifest   median {median * 1000:8.1f} ms  (min {min(build_times) * 1000:.1f}, max {max(build_times) * 1000:.1f})")
    print(f"manifest_to_csv  median {statistics.median(csv_times) * 1000:8.1f} ms")
    print(f"manifest_to_json median {statistics.median(json_times) * 1000:8.1f} ms")
    print(f"target < {TARGET_SECONDS:.0f} s: {'PASS' if median < TARGET_SECONDS else 'FAIL'}")


if __name__ == "__main__":
    main()
