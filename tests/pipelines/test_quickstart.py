"""The README's quickstart config, end to end through the CLI with the shipped embedded prior
(fewer NFE and smaller crops than the real run, which benchmarks/RESULTS.md times)."""
from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from pipelines.cli import main
from tests.conftest import mlflow_store

REPO = Path(__file__).resolve().parents[2]


def test_quickstart_restores_the_sample_photos(ray_local, tmp_path, capsys):
    out = tmp_path / "quickstart"
    code = main(["run", str(REPO / "configs/quickstart.yaml"), "--set", f"output={out}",
                 "--set", "solver.nfe=6", "--set", "solver.sigma_max=0.3",
                 "--set", f"mlflow.tracking_uri={mlflow_store(tmp_path)}"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "6 results, 0 errors" in printed and str(out) in printed and "mlflow:   run" in printed
    rows = pq.read_table(str(out / "results")).to_pylist()
    assert len(rows) == 6 and {r["prior"] for r in rows} == {"embedded"}
    # at 6 NFE from sigma 0.3 the embedded prior restores noisy x2 SR clearly above bicubic
    mean = lambda k: sum(r[k] for r in rows) / len(rows)
    assert mean("psnr") > mean("lq_psnr") + 1.0, (mean("psnr"), mean("lq_psnr"))
    assert len(list((out / "restored").glob("*.png"))) == 6
