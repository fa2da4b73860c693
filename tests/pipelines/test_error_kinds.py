"""Errors have a kind (actors/error_kind.py): transient ones are retried by storage calls and
by a re-run, permanent ones only by ``--retry-errors``; tables read back once per id; the
exit status says when rows failed. Toy jobs and restore-images on a real local Ray, S3 on
moto's server (stopped mid-job, then started again on the same port)."""
from __future__ import annotations

import dataclasses
import errno
import socket
import time
from pathlib import Path

import pytest
import yaml

from actors.columns import error_fields
from actors.error_kind import PERMANENT, TRANSIENT, error_kind, kind_of_type
from pipelines.cli import main
from pipelines.config import from_dict
from pipelines.job import Plan, run_job
from pipelines.retry import retry_call
from pipelines.sections import StorageConfig
from pipelines.summary import JobSummary
from pipelines.tables import error_record, finished_ids, latest_errors, write_shard
from tests.pipelines.conftest import make_broken_files, make_valid_images
from tests.pipelines.test_job import SquaresConfig, SquaresJob, _table

REPO = Path(__file__).resolve().parents[2]


def _botocore_errors():
    from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

    return [EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
            ReadTimeoutError(endpoint_url="http://127.0.0.1:9")]


def test_each_exception_type_has_its_kind():
    import torch
    from aiohttp import ServerDisconnectedError

    from operators.media import MediaError
    from operators.video.probe import VideoError
    from pipelines.config import ConfigError

    transient = [TimeoutError("read timed out"), ConnectionRefusedError(), ConnectionResetError(),
                 OSError(errno.EIO, "I/O error"), OSError(errno.ENOSPC, "disk full"), OSError("EREMOTEIO-like 500"),
                 OSError(errno.EBUSY, "SlowDown"), MemoryError(), torch.OutOfMemoryError("CUDA out of memory"),
                 ServerDisconnectedError(), *_botocore_errors()]
    permanent = [ValueError("bad"), MediaError("cannot decode image"), VideoError("truncated"),
                 ConfigError("bad key"), FileNotFoundError("gone"), PermissionError("denied"),
                 IsADirectoryError(), OSError(errno.EINVAL, "InvalidArgument"), OSError(errno.EREMCHG, "redirect"),
                 KeyError("x"), RuntimeError("a bug"), TypeError("a bug")]
    assert [error_kind(e) for e in transient] == [TRANSIENT] * len(transient)
    assert [error_kind(e) for e in permanent] == [PERMANENT] * len(permanent)
    assert error_fields("read", TimeoutError("slow"))["error_kind"] == TRANSIENT
    assert error_fields("decode", MediaError("corrupt"))["error_kind"] == PERMANENT
    # rows recorded before kinds existed: by the name of their type
    assert [kind_of_type(n) for n in ("OSError", "TimeoutError", "EndpointConnectionError", "MediaError",
                                      "FileNotFoundError", "ValueError", "UnicodeDecodeError")] == [
        TRANSIENT, TRANSIENT, TRANSIENT, PERMANENT, PERMANENT, PERMANENT, PERMANENT]


def test_storage_calls_retry_transient_errors_with_backoff_and_nothing_else():
    calls, sleeps = [], []

    def fails_twice() -> str:
        calls.append(1)
        if len(calls) <= 2:
            raise ConnectionResetError("connection reset by peer")
        return "bytes"

    storage = StorageConfig(retries=3, retry_backoff_s=0.2)
    assert retry_call(fails_twice, storage, sleep=sleeps.append) == "bytes" and len(calls) == 3
    assert len(sleeps) == 2 and 0.1 <= sleeps[0] <= 0.2 and 0.2 <= sleeps[1] <= 0.4  # 0.2 * 2**k * [0.5, 1]
    calls.clear()
    with pytest.raises(ConnectionResetError):  # retries spent: the last error
        retry_call(fails_twice, StorageConfig(retries=1, retry_backoff_s=0.0), sleep=sleeps.append)
    assert len(calls) == 2

    def missing():
        calls.append(1)
        raise FileNotFoundError("no such key")

    calls.clear()
    with pytest.raises(FileNotFoundError):
        retry_call(missing, storage, sleep=sleeps.append)
    assert len(calls) == 1  # permanent: never retried


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_s3_read_during_an_outage_succeeds_once_the_store_is_back(tmp_path):
    """A real outage: moto's server stopped, started again on the same port 2 s later while
    ``read_bytes`` is retrying (moto keeps its buckets in the process). s3fs and botocore
    retry first (about 2-10 s); ``storage.retries`` (pipelines.retry) is the layer above."""
    import threading

    import s3fs
    from moto.server import ThreadedMotoServer

    from pipelines.storage import read_bytes

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    url = f"http://127.0.0.1:{port}"
    fs = s3fs.S3FileSystem(endpoint_url=url, key="testing", secret="testing")
    fs.mkdir("blip")
    fs.pipe("blip/a.bin", b"payload")
    server.stop()
    restarted = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    timer = threading.Timer(2.0, restarted.start)
    timer.start()
    try:
        t0 = time.perf_counter()
        data = read_bytes("s3://blip/a.bin", StorageConfig(endpoint_url=url, retries=8, retry_backoff_s=0.5))
        assert data == b"payload" and time.perf_counter() - t0 >= 1.5
    finally:
        timer.join()
        restarted.stop()


class FlakySquares(SquaresJob):
    """values < 0 fail permanently (ValueError); value 2 fails transiently (TimeoutError)
    while the file ``<output>/../outage`` exists, as a read would during an outage."""

    def stages(self, ds, chash: str, plan: Plan):
        outage = str(Path(self.cfg.output).parent / "outage")

        def square(batch: dict) -> dict:
            import os

            from actors.columns import batch_to_rows, error_fields, no_error, rows_to_batch

            out = []
            for r in batch_to_rows(batch):
                err = no_error()
                try:
                    if int(r["value"]) < 0:
                        raise ValueError(f"negative: {r['value']}")
                    if int(r["value"]) == 2 and os.path.exists(outage):
                        raise TimeoutError("storage did not answer in 60 s")
                except Exception as exc:  # noqa: BLE001
                    err = error_fields("square", exc)
                out.append({**r, "square": int(r["value"]) ** 2, **err})
            return rows_to_batch(out)

        return ds.map_batches(square, batch_size=2)


def test_a_rerun_retries_transient_errors_only_and_retry_errors_retries_all(ray_local, tmp_path):
    (tmp_path / "outage").touch()
    cfg = from_dict(SquaresConfig, {"values": [1, -1, 2, 3], "output": str(tmp_path / "out"),
                                    "mlflow": {"enabled": False}})
    first = run_job(FlakySquares(cfg))
    assert (first.done, first.errors, first.errors_by_kind) == (2, 2, {PERMANENT: 1, TRANSIENT: 1})
    assert "1 of 4 rows failed transiently" in first.failure(cfg.max_error_fraction)
    kinds = {r["id"]: (r["error_type"], r["kind"]) for r in _table(tmp_path / "out", "errors")}
    assert kinds == {"v1": ("ValueError", PERMANENT), "v2": ("TimeoutError", TRANSIENT)}

    (tmp_path / "outage").unlink()  # storage is back
    second = run_job(FlakySquares(cfg))
    assert (second.planned, second.done, second.skipped) == (1, 1, 3)  # only the transient row
    assert (second.total_results, second.total_errors, second.errors_by_kind) == (3, 1, {PERMANENT: 1, TRANSIENT: 0})
    assert second.failure(cfg.max_error_fraction) is None  # 1 of 4 failed, permanently: within 0.5
    assert "1 of 4 rows failed, more than max_error_fraction 0" in second.failure(0.0)
    assert len(_table(tmp_path / "out", "errors")) == 2  # v2's old error row is still there, not counted

    third = run_job(FlakySquares(dataclasses.replace(cfg, retry_errors=True)))
    assert (third.planned, third.errors, third.total_results, third.total_errors) == (1, 1, 3, 1)  # v1 once
    assert run_job(FlakySquares(cfg)).planned == 0


def test_the_latest_error_of_an_id_decides_and_results_count_once(tmp_path):
    out = str(tmp_path)
    older = error_record("a", "s", "a.png", "read", "MediaError", "corrupt", PERMANENT, "h")
    newer = {**error_record("a", "s", "a.png", "read", "TimeoutError", "slow", TRANSIENT, "h"),
             "recorded_at": older["recorded_at"] + 1}
    write_shard(out, "errors", [newer])
    write_shard(out, "errors", [older])
    assert "a" not in finished_ids(out, "h")  # a --retry-errors run failed transiently last: retried
    legacy = error_record("b", "s", "b.png", "read", "EndpointConnectionError", "down", "", "h")
    legacy = {k: v for k, v in legacy.items() if k not in ("kind", "recorded_at")}  # written before kinds
    write_shard(out, "errors", [legacy, {**legacy, "id": "c", "error_type": "MediaError"}])
    assert {i: r["kind"] for i, r in latest_errors(out, "h").items()} == {"a": TRANSIENT, "b": TRANSIENT,
                                                                          "c": PERMANENT}
    assert finished_ids(out, "h") == {"c"} and finished_ids(out, "other hash") == set()
    for part in ([{"id": "x", "psnr": 10.0, "config_hash": "h"}, {"id": "y", "psnr": 20.0, "config_hash": "h"}],
                 [{"id": "x", "psnr": 10.0, "config_hash": "h"}, {"id": "b", "psnr": 40.0, "config_hash": "h"}]):
        write_shard(out, "results", part)  # x twice (two writers), b retried and then done
    summary = JobSummary(job="j", output=out, config_hash="h")
    summary.finalize_from_tables(StorageConfig())
    assert (summary.total_results, summary.means["psnr"]) == (3, pytest.approx(70 / 3))
    assert summary.errors_by_kind == {PERMANENT: 1, TRANSIENT: 1} and summary.total_errors == 2  # a, c
    assert summary.errors_text() == "2 errors (1 permanent, 1 transient)"


def _restore_config(tmp_path, **kw) -> dict:
    data = {"job": "restore-images", "input": str(tmp_path / "in"), "output": str(tmp_path / "out"),
            "degradation": {"name": "denoise", "noise_sigma": 0.05}, "solver": {"name": "diffpir", "nfe": 2},
            "prior": {"name": "gaussian", "s2": 0.05, "mean": 0.5}, "max_pixels": 1_000_000,
            "ray": {"actors": 1, "batch_size": 2}, "mlflow": {"enabled": False}}
    data.update(kw)
    return data


def test_exit_status_says_when_rows_failed(ray_local, tmp_path, capsys):
    make_broken_files(tmp_path / "in")  # 5 broken: corrupt, truncated, empty, not an image, too large
    (tmp_path / "in" / "ok").mkdir()
    make_valid_images(tmp_path / "in" / "ok")  # 5 valid
    for name in ("truncated.png", "notes.png"):
        (tmp_path / "in" / name).unlink()  # 3 of 8 fail: within the default 0.5
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(_restore_config(tmp_path)))
    assert main(["run", str(path)]) == 0
    printed = capsys.readouterr()
    assert "5 results, 3 errors (3 permanent)" in printed.out and "failed" not in printed.err
    assert main(["run", str(path), "--set", "max_error_fraction=0.25"]) == 1  # a re-run reads the totals
    printed = capsys.readouterr()
    assert "(0 new, 8 already done)" in printed.out
    assert "restoray: failed: 3 of 8 rows failed, more than max_error_fraction 0.25" in printed.err
    assert main(["run", str(path), "--retry-errors", "--dry-run"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["retry_errors"] is True
    assert main(["run", str(path), "--retry-errors"]) == 0  # the 3 errors run again, and fail again
    printed = capsys.readouterr()
    assert "3 errors (3 permanent) (0 new, 5 already done)" in printed.out
    assert "[restore-images] 3/3 rows (3 errors)" in printed.err


def test_raising_max_pixels_retries_too_large_errors(ray_local, tmp_path):
    from pipelines.restore_images import RestoreImagesConfig, run

    make_broken_files(tmp_path / "in")
    for p in (tmp_path / "in").iterdir():
        if p.name != "bomb.png":  # 1200 x 1000
            p.unlink()
    cfg = from_dict(RestoreImagesConfig, _restore_config(tmp_path))
    first = run(cfg)
    assert (first.total_errors, first.errors_by_kind[PERMANENT]) == (1, 1)
    assert run(cfg).planned == 0  # permanent under this config
    raised = run(dataclasses.replace(cfg, max_pixels=2_000_000))
    assert (raised.planned, raised.total_results, raised.total_errors) == (1, 1, 0)


def test_storage_stopped_mid_job_then_restored_the_rerun_completes_every_row(ray_local, tmp_path):
    """The S3 input's server stops once the job has planned: every read fails transiently
    (after its retries), the run says so; with the server back the re-run restores all."""
    import s3fs
    from moto.server import ThreadedMotoServer

    from pipelines.restore_images import RestoreImagesConfig, RestoreImagesJob

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    url = f"http://127.0.0.1:{port}"
    fs = s3fs.S3FileSystem(endpoint_url=url, key="testing", secret="testing")
    fs.mkdir("outage")
    names = make_valid_images(tmp_path / "src")[2:4]  # two: each read waits out s3fs's and botocore's retries
    for n in names:
        fs.put(str(tmp_path / "src" / n), f"outage/in/{n}")
    cfg = from_dict(RestoreImagesConfig, _restore_config(
        tmp_path, input="s3://outage/in", storage={"endpoint_url": url, "retries": 1, "retry_backoff_s": 0.1}))

    class Outage(RestoreImagesJob):
        def stages(self, ds, chash, plan):
            server.stop()  # planned (listed) with the store up; every read after this fails
            return super().stages(ds, chash, plan)

    first = run_job(Outage(cfg))
    assert (first.done, first.errors_by_kind) == (0, {PERMANENT: 0, TRANSIENT: len(names)})
    assert "failed transiently" in first.failure(cfg.max_error_fraction)
    errors = _table(tmp_path / "out", "errors")
    assert {(e["stage"], e["kind"]) for e in errors} == {("read", TRANSIENT)}
    back = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    back.start()
    try:
        second = run_job(RestoreImagesJob(cfg))
    finally:
        back.stop()
    assert (second.planned, second.done, second.total_results, second.total_errors) == (2, 2, 2, 0)
    assert second.failure(cfg.max_error_fraction) is None
    assert sorted(r["relative_path"] for r in _table(tmp_path / "out", "results")) == sorted(names)
