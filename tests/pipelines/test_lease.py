"""One writer per output (pipelines/lease.py) and an MLflow SQLite store that two processes
can set up at once (pipelines/tracking.py): two runs started together, stale leases, the
heartbeat, release on failure, S3's conditional write (moto), the CLI's exit status."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.config import from_dict
from pipelines.job import run_job
from pipelines.lease import LEASE_NAME, LeaseHeld, LeaseLost, OutputLease, create_exclusive
from pipelines.sections import LeaseConfig, StorageConfig
from tests.pipelines.test_job import SquaresConfig, SquaresJob, _table

REPO = Path(__file__).resolve().parents[2]


def _lease_file(output: Path, **fields) -> Path:
    record = {"run_id": "other", "host": "elsewhere", "pid": 1, "started": time.time(), "heartbeat": time.time()}
    output.mkdir(parents=True, exist_ok=True)
    tmp = output / f".tmp-{LEASE_NAME}"
    tmp.write_text(json.dumps({**record, **fields}))
    os.replace(tmp, output / LEASE_NAME)  # whole, as a run writes it
    return output / LEASE_NAME


def test_two_runs_started_together_one_refuses_and_no_row_is_written_twice(ray_local, tmp_path):
    attempted, summaries, refusals = threading.Event(), [], []

    class Waits(SquaresJob):
        def plan(self, chash):
            attempted.wait(20)  # hold the output until the other run has tried to take it
            return super().plan(chash)

    cfg = from_dict(SquaresConfig, {"values": [3, -1, 4, 5, 0], "output": str(tmp_path),
                                    "mlflow": {"enabled": False}})
    start = threading.Barrier(2)

    def one_run():
        start.wait()
        try:
            summaries.append(run_job(Waits(cfg)))
        except LeaseHeld as e:
            refusals.append(str(e))
        finally:
            attempted.set()

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(summaries) == 1 and len(refusals) == 1
    assert f"output {tmp_path} is in use by run " in refusals[0] and "lease.wait_s" in refusals[0]
    ids = [r["id"] for r in _table(tmp_path, "results")] + [r["id"] for r in _table(tmp_path, "errors")]
    assert sorted(ids) == ["v0", "v1", "v2", "v3", "v4"]  # each once
    assert not (tmp_path / LEASE_NAME).exists()  # released


def test_a_lease_is_refused_while_live_taken_over_when_stale_and_waited_for(tmp_path):
    _lease_file(tmp_path)  # another host, fresh heartbeat
    with pytest.raises(LeaseHeld, match="in use by run other \\(host elsewhere, pid 1, last heartbeat 0 s ago\\)"):
        OutputLease(str(tmp_path), LeaseConfig()).acquire()
    _lease_file(tmp_path, heartbeat=time.time() - 200)  # older than stale_s 120
    with OutputLease(str(tmp_path), LeaseConfig()) as lease:
        assert json.loads((tmp_path / LEASE_NAME).read_text())["run_id"] == lease.run_id
    assert not list(tmp_path.iterdir())  # lease and takeover marker gone

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _lease_file(tmp_path, host=socket.gethostname(), pid=int(gone.stdout))  # this host, process exited
    with OutputLease(str(tmp_path), LeaseConfig()) as lease:
        assert json.loads((tmp_path / LEASE_NAME).read_text())["run_id"] == lease.run_id

    holder = OutputLease(str(tmp_path), LeaseConfig())
    holder.acquire()
    threading.Timer(1.0, holder.release).start()
    t0 = time.perf_counter()
    with OutputLease(str(tmp_path), LeaseConfig(wait_s=30, heartbeat_s=0.2, stale_s=60)) as waiter:
        assert time.perf_counter() - t0 >= 0.9
        assert json.loads((tmp_path / LEASE_NAME).read_text())["run_id"] == waiter.run_id


def test_only_one_of_two_runs_takes_over_a_stale_lease(tmp_path):
    for _ in range(5):
        _lease_file(tmp_path, heartbeat=time.time() - 500)
        start, won, refused = threading.Barrier(2), [], []

        def take():
            lease = OutputLease(str(tmp_path), LeaseConfig(heartbeat_s=30, stale_s=60))
            start.wait()
            try:
                lease.acquire()
                won.append(lease)
            except LeaseHeld:
                refused.append(lease)

        threads = [threading.Thread(target=take) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert (len(won), len(refused)) == (1, 1)
        assert json.loads((tmp_path / LEASE_NAME).read_text())["run_id"] == won[0].run_id
        won[0].release()


def test_the_heartbeat_refreshes_and_a_taken_over_run_stops(tmp_path):
    lease = OutputLease(str(tmp_path), LeaseConfig(heartbeat_s=0.2, stale_s=1.0))
    lease.acquire()
    first = json.loads((tmp_path / LEASE_NAME).read_text())["heartbeat"]
    time.sleep(0.7)
    assert json.loads((tmp_path / LEASE_NAME).read_text())["heartbeat"] > first
    lease.check()
    _lease_file(tmp_path, run_id="usurper")  # as a run that found this lease stale would
    time.sleep(0.7)
    with pytest.raises(LeaseLost, match="another run took it over"):
        lease.check()
    lease.release()
    assert json.loads((tmp_path / LEASE_NAME).read_text())["run_id"] == "usurper"  # not ours to delete


def test_the_lease_is_released_when_the_run_fails(tmp_path):
    class Fails(SquaresJob):
        def plan(self, chash):
            assert (tmp_path / LEASE_NAME).is_file()
            raise RuntimeError("planning failed")

    cfg = from_dict(SquaresConfig, {"values": [1], "output": str(tmp_path), "mlflow": {"enabled": False}})
    with pytest.raises(RuntimeError, match="planning failed"):
        run_job(Fails(cfg))
    assert not (tmp_path / LEASE_NAME).exists()


def test_lease_on_s3_uses_a_conditional_write(s3_server):
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=s3_server, key="testing", secret="testing")
    fs.mkdir("leases")
    storage = StorageConfig(endpoint_url=s3_server)
    create_exclusive("s3://leases/x.json", b"first", storage)
    with pytest.raises(FileExistsError):  # S3 answers 412 to If-None-Match: *
        create_exclusive("s3://leases/x.json", b"second", storage)
    assert fs.cat("leases/x.json") == b"first"
    cfg = LeaseConfig(heartbeat_s=0.3, stale_s=30)
    with OutputLease("s3://leases/out", cfg, storage) as lease:
        with pytest.raises(LeaseHeld, match="is in use by run " + lease.run_id):
            OutputLease("s3://leases/out", cfg, storage).acquire()
        time.sleep(0.8)
        assert json.loads(fs.cat("leases/out/_lease.json"))["heartbeat"] > lease.started
    fs.invalidate_cache()
    assert not fs.exists("leases/out/_lease.json")


def test_cli_exits_2_when_the_output_is_in_use(tmp_path, capsys):
    out = tmp_path / "out"
    (tmp_path / "in").mkdir()
    _lease_file(out, run_id="busy", host=socket.gethostname(), pid=os.getpid())  # alive: this process
    code = main(["run", str(REPO / "configs/restore-images.yaml"), "--set", f"input={tmp_path / 'in'}",
                 "--set", f"output={out}", "--set", "mlflow.enabled=false"])
    err = capsys.readouterr().err
    assert code == 2 and f"restoray: output {out} is in use by run busy" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


MLFLOW_RUN = """
import sys, time
from pipelines.sections import MlflowConfig
from pipelines.tracking import log_run
import mlflow  # imported before the start line: every process sets the store up at once
while time.time() < float(sys.argv[2]):
    time.sleep(0.005)
print(log_run(MlflowConfig(tracking_uri="sqlite:///" + sys.argv[1]), "r", {"a": 1}, {"m": 1.0}, {})[0])
"""


def test_concurrent_mlflow_setup_on_one_sqlite_store(tmp_path):
    """Without the lock, 3 processes creating one store fail (``duplicate column name: step``,
    ``table experiments already exists``) in most tries."""
    db, start = tmp_path / "mlflow.db", time.time() + 15
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", MLFLOW_RUN, str(db), str(start)], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [e[-2000:] for _, e in outs]
    assert len({o.strip() for o, _ in outs}) == 3  # three runs logged


@pytest.mark.parametrize("override, needle", [
    ("lease.stale_s=0", "'lease.stale_s': must be a finite number >= 0.001, got 0"),
    ("lease.heartbeat_s=300", "'lease.heartbeat_s' (300) must be below 'lease.stale_s' (120)"),
    ("lease.wait_s=-1", "'lease.wait_s': must be a finite number >= 0, got -1"),
    ("max_error_fraction=1.5", "'max_error_fraction': must be in [0, 1], got 1.5"),
    ("storage.retries=-1", "'storage.retries': must be >= 0, got -1"),
])
def test_bad_lease_and_failure_keys_exit_2_with_one_line(capsys, override, needle):
    assert main(["run", str(REPO / "configs/quickstart.yaml"), "--set", override]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1, err
