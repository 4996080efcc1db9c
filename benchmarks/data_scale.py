"""The training data path at scale: time to the first batch and peak memory.

Usage: ``python benchmarks/data_scale.py [--sizes 10000 100000] [--batch 16]``.  Writes a JSONL
data set of N synthetic records (reference format, images as files cycling through a pool of
distinct pictures), then, in a fresh process per size, runs what ``vlthinker train`` runs before
step 1 — ``load_records`` (which checks every image file without decoding it) and
``training_rows`` — and reads the first batch the way the trainer does (images decoded there).
Prints seconds to the first batch and the process's peak resident memory; the targets are a
first batch within 60 s at 100k records and at most 300 MB more memory at 100k than at 10k.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_FIRST_BATCH_S = 60.0
TARGET_GROWTH_MB = 300.0


def write_dataset(folder: Path, n: int, pool: int) -> Path:
    """``folder/records.jsonl`` with ``n`` records whose images cycle through ``pool`` files."""
    from vlthinker.data import synthetic, write_records

    base = folder / "pool"
    if not (base / "records.jsonl").exists():
        write_records(synthetic.generate(pool, seed=0), base)
    lines = (base / "records.jsonl").read_text().splitlines()
    path = base / f"records-{n}.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for index in range(n):
            row = json.loads(lines[index % len(lines)])
            row["problem_id"] = f"item-{index}"
            handle.write(json.dumps(row) + "\n")
    return path


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure(path: Path, batch: int) -> dict[str, float]:
    """Run in a fresh process: the data path up to the first decoded batch."""
    from vlthinker.data import PromptConfig, load_records
    from vlthinker.train.dataset import training_rows

    baseline = _peak_mb()
    started = time.perf_counter()
    records = load_records(path)
    loaded = time.perf_counter()
    tasks = sorted({r.task for r in records})
    sources = sorted({r.source for r in records})
    dataset = training_rows(
        records,
        PromptConfig(),
        {t: i for i, t in enumerate(tasks)},
        {s: i for i, s in enumerate(sources)},
        "source",
    )
    built = time.perf_counter()
    rows = dataset.__getitems__(list(range(min(batch, len(dataset)))))  # the DataLoader's call
    assert all(row["images"][0].mode == "RGB" for row in rows)
    first = time.perf_counter()
    return {
        "records": len(dataset),
        "load_s": loaded - started,
        "rows_s": built - loaded,
        "first_batch_s": first - started,
        "baseline_mb": baseline,
        "peak_mb": _peak_mb(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--batch", type=int, default=16, help="records in the first batch")
    parser.add_argument("--pool", type=int, default=256, help="distinct image files")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure is not None:
        print(json.dumps(measure(args.measure, args.batch)))
        return 0
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            path = write_dataset(Path(tmp), n, args.pool)
            out = subprocess.run(
                [sys.executable, __file__, "--measure", str(path), "--batch", str(args.batch)],
                check=True,
                capture_output=True,
                text=True,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            results.append(result)
            print(
                f"{result['records']:>7,} records: first batch {result['first_batch_s']:6.1f} s "
                f"(load {result['load_s']:.1f} s, rows {result['rows_s']:.1f} s), peak memory "
                f"{result['peak_mb']:6.0f} MB ({result['peak_mb'] - result['baseline_mb']:.0f} MB "
                "over the imports)"
            )
    ok = all(r["first_batch_s"] <= TARGET_FIRST_BATCH_S for r in results)
    if len(results) >= 2:
        growth = results[-1]["peak_mb"] - results[0]["peak_mb"]
        print(
            f"memory growth {results[0]['records']:,} → {results[-1]['records']:,} records: "
            f"{growth:.0f} MB (target ≤ {TARGET_GROWTH_MB:.0f} MB)"
        )
        ok = ok and growth <= TARGET_GROWTH_MB
    print("targets met" if ok else "targets missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
