"""Carry a long evaluate grid across machines: `save` packs the results table of an output into
one Parquet file in the repo (metrics only, no images), `restore` puts it back, after which the
same `restoray run configs/evaluate.yaml` skips every recorded row (ids hash everything that
changes a result) and runs the rest.

    python benchmarks/grid_snapshot.py save    [--output runs/evaluate] [--file benchmarks/evaluate-grid/results.parquet]
                                               [--prune [--config configs/evaluate.yaml]]
    python benchmarks/grid_snapshot.py restore [--output runs/evaluate] [--file ...]

`save --prune` keeps only the rows the config's grid plans now (their ids): rows superseded by a
retrained prior or unfolding, or by a changed preset, are dropped instead of carried.

Errors are not carried: a row that failed is retried. The comparison panels of rows run
elsewhere are not carried either (delete those images' rows from the snapshot to redraw them).

    python benchmarks/grid_snapshot.py rekey --added SOLVER.FIELD=VALUE [--added ...] [--config configs/evaluate.yaml]

`rekey` is for solver config fields added after rows ran, whose VALUEs (JSON) run exactly the
code the rows ran (e.g. `langevin.renoise=true`): ids hash the full solver spec, so every such
row would otherwise be recomputed. Each current grid row of SOLVER whose spec has every
FIELD = VALUE given and whose id without those fields is recorded gets a copy under its current
id (its method_spec updated; the metrics are the recorded ones), in one new results shard. Rows
of other values (a preset that now sets a FIELD otherwise) keep no copy: they run.
"""
from __future__ import annotations

import argparse
import copy
import glob
import hashlib
import json
import os
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]


def plan(config: str):
    """(resolved evaluate config, its planned grid rows), as the job plans them."""
    sys.path.insert(0, str(REPO))
    from pipelines.cli import load_job_config
    from pipelines.evaluate_grid import plan_grid

    cfg = load_job_config(config, [])[0].resolved()
    return cfg, plan_grid(cfg.datasets, cfg.tasks, cfg.methods, cfg.seed, cfg.mod, cfg.output, cfg.storage)[0]


def planned_ids(config: str) -> set[str]:
    """The ids of every row the config's evaluate grid plans now."""
    return {r["id"] for r in plan(config)[1]}


def save(output: Path, file: Path, keep: set[str] | None = None) -> int:
    """Pack the results under ``output`` with the snapshot's own rows (newest wins by id); with
    ``keep``, only rows of those ids."""
    parts = sorted(glob.glob(str(output / "results" / "**" / "*.parquet"), recursive=True))
    tables = [pq.read_table(p) for p in parts]
    if file.exists():
        tables.insert(0, pq.read_table(file))
    if not tables:
        raise SystemExit(f"no results under {output / 'results'}")
    rows = {r["id"]: r for r in pa.concat_tables(tables, promote_options="default").to_pylist()
            if keep is None or r["id"] in keep}
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


def rekey(config: str, output: Path, added: list[str]) -> int:
    sys.path.insert(0, str(REPO))
    from pipelines.evaluate_grid import grid_row_id
    from pipelines.prior_files import weights_digest

    fields = {}
    for item in added:
        target, _, value = item.partition("=")
        solver, _, name = target.partition(".")
        if not (solver and name and value):
            raise SystemExit(f"--added wants SOLVER.FIELD=VALUE, got {item!r}")
        fields.setdefault(solver, {})[name] = json.loads(value)
    if len(fields) != 1:
        raise SystemExit(f"--added: fields of one solver per run, got {sorted(fields)}")
    (solver, fields), = fields.items()
    cfg, grid = plan(config)
    degradations = {t.name: t.degradation for t in cfg.tasks}
    old_ids = {}
    for r in grid:
        spec = json.loads(r["method_spec"])
        if spec["kind"] != "solver" or spec["solver"]["name"] != solver:
            continue
        if any(name not in spec["solver"] or spec["solver"][name] != value for name, value in fields.items()):
            continue
        old = copy.deepcopy(spec)
        for name in fields:
            del old["solver"][name]
        crop = None if r["crop"] < 0 else r["crop"]
        old_id = grid_row_id(cfg.seed, r["source_uri"], crop, cfg.mod, degradations[r["task"]], old,
                             weights_digest(old["prior"], old["solver"]))
        old_ids[old_id] = r
    parts = sorted(glob.glob(str(output / "results" / "**" / "*.parquet"), recursive=True))
    table = pa.concat_tables([pq.read_table(p) for p in parts], promote_options="default")
    have = set(table.column("id").to_pylist())
    rows = []
    for row in table.to_pylist():
        new = old_ids.get(row["id"])
        if new is not None and new["id"] not in have:
            rows.append({**row, "id": new["id"], "method_spec": new["method_spec"]})
            have.add(new["id"])
    if rows:
        name_hash = hashlib.sha256(json.dumps(sorted(r["id"] for r in rows)).encode()).hexdigest()[:16]
        pq.write_table(pa.Table.from_pylist(rows, schema=table.schema),
                       output / "results" / f"part-rekey-{name_hash}.parquet")
    return len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["save", "restore", "rekey"])
    ap.add_argument("--output", default=str(REPO / "runs" / "evaluate"))
    ap.add_argument("--file", default=str(REPO / "benchmarks" / "evaluate-grid" / "results.parquet"))
    ap.add_argument("--config", default="configs/evaluate.yaml")
    ap.add_argument("--prune", action="store_true", help="save: only the rows --config's grid plans now")
    ap.add_argument("--added", action="append", default=[], help="rekey: SOLVER.FIELD=VALUE (JSON value), repeatable")
    args = ap.parse_args()
    output, file = Path(args.output).resolve(), Path(args.file).resolve()
    config = str(Path(args.config).resolve()) if Path(args.config).exists() else args.config
    os.chdir(REPO)  # the config's relative paths (data, weights) are the repo's
    if args.action == "rekey":
        n = rekey(config, output, args.added)
        print(f"rekey: {n} rows copied under their current ids ({args.added})")
        return
    if args.action == "save":
        n = save(output, file, planned_ids(config) if args.prune else None)
    else:
        n = restore(output, file)
    print(f"{args.action}: {n} rows ({args.file} <-> {args.output}/results)")


if __name__ == "__main__":
    main()
