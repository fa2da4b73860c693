"""Carry a long evaluate grid across machines: `save` packs the results table of an output into
one Parquet file in the repo (metrics only, no images), `restore` puts it back, after which the
same `restoray run configs/evaluate.yaml` skips every recorded row (ids hash everything that
changes a result) and runs the rest.

    python benchmarks/grid_snapshot.py save    [--output runs/evaluate] [--file benchmarks/evaluate-grid/results.parquet]
    python benchmarks/grid_snapshot.py restore [--output runs/evaluate] [--file ...]

Errors are not carried: a row that failed is retried. The comparison panels of rows run
elsewhere are not carried either (delete those images' rows from the snapshot to redraw them).
"""
from __future__ import annotations

import argparse
import glob
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]


def save(output: Path, file: Path) -> int:
    parts = sorted(glob.glob(str(output / "results" / "**" / "*.parquet"), recursive=True))
    tables = [pq.read_table(p) for p in parts]
    if file.exists():
        tables.insert(0, pq.read_table(file))
    if not tables:
        raise SystemExit(f"no results under {output / 'results'}")
    rows = {r["id"]: r for r in pa.concat_tables(tables, promote_options="default").to_pylist()}
    table = pa.Table.from_pylist(list(rows.values()), schema=tables[-1].schema)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(".tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, file)
    return table.num_rows


def restore(output: Path, file: Path) -> int:
    target = output / "results" / "part-snapshot.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    table = pq.read_table(file)
    pq.write_table(table, target)
    return table.num_rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["save", "restore"])
    ap.add_argument("--output", default=str(REPO / "runs" / "evaluate"))
    ap.add_argument("--file", default=str(REPO / "benchmarks" / "evaluate-grid" / "results.parquet"))
    args = ap.parse_args()
    n = (save if args.action == "save" else restore)(Path(args.output), Path(args.file))
    print(f"{args.action}: {n} rows ({args.file} <-> {args.output}/results)")


if __name__ == "__main__":
    main()
