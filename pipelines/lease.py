"""One writer per output: a run holds ``<output>/_lease.json`` while it plans, runs and logs.

The lease holds the run id, host, pid, start time and a heartbeat time a background thread
refreshes every ``heartbeat_s``. It is created with a conditional write, so of two runs
started together exactly one gets it:

- local paths: written to a temp file, then ``os.link``-ed to the lease name (the link fails
  if the name exists: O_EXCL semantics, and a reader never sees a half-written lease);
- S3: ``open(path, "xb")``, which s3fs sends as a PUT with ``If-None-Match: *`` (moto honours
  it too); S3 refuses it with 412 when the object exists;
- any other fsspec store without an exclusive mode: write, wait, read back and compare the
  run id (best effort: two runs can still both write before either reads).

A second run refuses with ``LeaseHeld`` (the CLI exits 2), or polls until ``wait_s`` is
spent. A lease is stale, and taken over, when its heartbeat is older than ``stale_s`` or its
process on this host is gone (a killed driver resumes at once on the same machine). Only one
run can take over a given stale lease: it first creates ``_lease.json.takeover-<holder's run
id>`` with the same conditional write. The lease is released (deleted, if still ours) at the
end, failures included; a run whose heartbeat finds another run's lease stops (``LeaseLost``).
Clocks of different hosts are compared for staleness: keep ``stale_s`` well above their skew.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid

from pipelines.redact import redact_uri
from pipelines.retry import retry_call
from pipelines.sections import LeaseConfig, StorageConfig
from pipelines.storage import filesystem, join, write_bytes_atomic

log = logging.getLogger(__name__)
LEASE_NAME = "_lease.json"


class LeaseHeld(RuntimeError):
    """Another live run holds the output's lease."""


class LeaseLost(RuntimeError):
    """This run's lease went stale and another run took it over."""


def create_exclusive(uri: str, data: bytes, storage: StorageConfig | None = None) -> None:
    """Write ``data`` to ``uri`` only if nothing is there; FileExistsError otherwise."""
    fs, path = filesystem(uri, storage)
    if "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        with open(tmp, "wb") as f:
            f.write(data)
        try:
            os.link(tmp, path)  # atomic, fails with FileExistsError when the name is taken
        finally:
            os.unlink(tmp)
        return
    try:
        with fs.open(path, "xb") as f:
            f.write(data)
        return
    except (ValueError, NotImplementedError, TypeError) as exc:  # no exclusive mode in this store
        log.info("lease: %s has no exclusive create (%s); write and read back", type(fs).__name__, exc)
    if fs.exists(path):
        raise FileExistsError(path)
    with fs.open(path, "wb") as f:
        f.write(data)
    time.sleep(0.5)
    if fs.cat_file(path) != data:
        raise FileExistsError(path)


def read_whole(uri: str, storage: StorageConfig | None = None) -> bytes:
    """The whole object, never a listing cache's idea of its size (s3fs caches listings)."""
    fs, path = filesystem(uri, storage)
    fs.invalidate_cache(path)
    return retry_call(lambda: fs.cat_file(path), storage, "lease read")


def read_lease(uri: str, storage: StorageConfig | None = None) -> dict | None:
    """The lease at ``uri`` as stored ({} when unreadable), or None when there is none; the
    driver's heartbeat and the workers' shard writers (pipelines.stages.write_rows) read it."""
    try:
        data = read_whole(uri, storage)
    except FileNotFoundError:
        return None
    try:
        holder = json.loads(data)
        return holder if isinstance(holder, dict) else {}
    except ValueError:
        return {}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OutputLease:
    """``with OutputLease(output, cfg, storage) as lease: ...``; ``lease.check()`` raises
    ``LeaseLost`` once the heartbeat has seen another run's lease."""

    def __init__(self, output: str, cfg: LeaseConfig, storage: StorageConfig | None = None,
                 clock=time.time) -> None:
        self.uri, self.cfg, self.storage, self.clock = join(output, LEASE_NAME), cfg, storage, clock
        self.output = output
        self.run_id = uuid.uuid4().hex
        self.started = clock()
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self) -> dict:
        return {"run_id": self.run_id, "host": socket.gethostname(), "pid": os.getpid(),
                "started": self.started, "heartbeat": self.clock()}

    def holder(self) -> dict | None:
        """The lease as stored ({} when unreadable), or None when there is none."""
        return read_lease(self.uri, self.storage)

    def stale(self, holder: dict) -> bool:
        if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int) \
                and not pid_alive(holder["pid"]):
            return True
        return self.clock() - float(holder.get("heartbeat") or 0.0) > self.cfg.stale_s

    def acquire(self) -> None:
        deadline = self.clock() + self.cfg.wait_s
        while True:
            try:
                retry_call(lambda: create_exclusive(self.uri, json.dumps(self.record()).encode(), self.storage),
                           self.storage, "lease create")
                break
            except FileExistsError:
                pass
            holder = self.holder()
            if holder is not None and holder.get("run_id") == self.run_id:
                break  # a retried create whose first attempt had landed
            if holder is not None and self.stale(holder) and self.take_over(holder):
                break
            if holder is not None and self.clock() >= deadline:
                raise LeaseHeld(self.refusal(holder))
            if holder is not None:
                time.sleep(max(0.05, min(self.cfg.heartbeat_s, deadline - self.clock(), 5.0)))
        self._thread = threading.Thread(target=self._beat, name="restoray-lease", daemon=True)
        self._thread.start()

    def take_over(self, stale: dict) -> bool:
        """Replace a stale lease; False when another run is taking it over or already has.
        A marker left by a taker that died mid-way is cleared once it is ``stale_s`` old."""
        marker = f"{self.uri}.takeover-{stale.get('run_id', 'unreadable')}"
        fs, path = filesystem(marker, self.storage)
        try:
            create_exclusive(marker, json.dumps({"run_id": self.run_id, "at": self.clock()}).encode(), self.storage)
        except FileExistsError:
            try:
                if self.clock() - float(json.loads(read_whole(marker, self.storage)).get("at", 0.0)) > self.cfg.stale_s:
                    fs.rm(path)
            except (FileNotFoundError, ValueError, AttributeError):
                pass
            return False
        try:
            if self.holder() != stale:
                return False  # replaced meanwhile (its owner's heartbeat, or another taker)
            log.warning("lease: taking over the stale lease of run %s (host %s, pid %s) on %s", stale.get("run_id"),
                        stale.get("host"), stale.get("pid"), redact_uri(self.output))
            self._write()
            return True
        finally:
            fs.rm(path)

    def refusal(self, holder: dict) -> str:
        age = self.clock() - float(holder.get("heartbeat") or 0.0)
        return (f"output {redact_uri(self.output)} is in use by run {holder.get('run_id')} (host {holder.get('host')}, "
                f"pid {holder.get('pid')}, last heartbeat {age:.0f} s ago); two runs on one output would write "
                f"its rows twice. Wait for it to finish, set lease.wait_s to wait, or, if that run is gone, its "
                f"lease goes stale after lease.stale_s = {self.cfg.stale_s:g} s "
                f"(lease file: {redact_uri(self.uri)})")

    def _write(self) -> None:
        write_bytes_atomic(self.uri, json.dumps(self.record()).encode(), self.storage)

    def _beat(self) -> None:
        while not self._stop.wait(self.cfg.heartbeat_s):
            try:
                holder = self.holder()
                if holder is not None and holder.get("run_id") not in (None, self.run_id):
                    self.lost = True
                    log.error("lease: run %s took over %s; this run stops writing", holder.get("run_id"),
                              redact_uri(self.output))
                    return
                self._write()
            except Exception as exc:  # noqa: BLE001 - keep beating; storage retries live below
                log.warning("lease: heartbeat failed (%s: %s)", type(exc).__name__, exc)

    def check(self) -> None:
        if self.lost:
            raise LeaseLost(f"the lease on {redact_uri(self.output)} went stale and another run took it over; "
                            f"this run stopped (its rows so far are kept; the other run skips them)")

    def release(self) -> None:
        """Stop the heartbeat and delete the lease if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        holder = self.holder()
        if holder is not None and holder.get("run_id") == self.run_id:
            fs, path = filesystem(self.uri, self.storage)
            fs.rm(path)

    def __enter__(self) -> OutputLease:
        if self.cfg.enabled:
            self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        if not self.cfg.enabled:
            return
        try:
            self.release()
        except Exception as e:  # noqa: BLE001 - never hide the run's own outcome behind this
            log.warning("lease: not released (%s: %s); it goes stale after %g s", type(e).__name__, e,
                        self.cfg.stale_s)
