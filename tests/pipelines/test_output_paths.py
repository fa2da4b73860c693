"""Output paths named after inputs: normalised, never outside the output, never two inputs on
one name; FIFOs and devices under the input are error rows and never read (no hangs)."""
from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from actors.columns import no_error, pack
from operators.media import encode_png
from pipelines.config import from_dict
from pipelines.local_files import NotRegularFileError
from pipelines.output_paths import OutputPathError, normalise_relative, output_uri, screen_inputs
from pipelines.restore_images import RestoreImagesConfig, run
from pipelines.sections import StorageConfig
from pipelines.stages.finish import FinishStage
from pipelines.storage import InputFile, list_inputs, read_bytes
from tests.pipelines.conftest import make_valid_images

FAST = {"degradation": {"name": "denoise", "noise_sigma": 0.05}, "solver": {"name": "diffpir", "nfe": 2},
        "prior": {"name": "gaussian", "s2": 0.05, "mean": 0.5}, "ray": {"actors": 1, "batch_size": 2}}


@contextlib.contextmanager
def deadline(seconds: float):
    """Fail (TimeoutError) instead of hanging: SIGALRM interrupts a blocked open() or read()."""
    def _raise(*_):
        raise TimeoutError(f"still running after {seconds} s: a hang")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _png(value: float) -> bytes:
    return encode_png(np.full((24, 32, 3), value, np.float32))


def _table(root: Path, name: str) -> list[dict]:
    return [r for f in sorted((root / name).glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


@pytest.mark.parametrize("rel, expected", [
    ("a.png", "a.png"), ("d/./img.png", "d/img.png"), ("d//img.png", "d/img.png"), ("./x/y.png", "x/y.png"),
    ("d/img.png/", "d/img.png"),
])
def test_normalise_relative(rel, expected):
    assert normalise_relative(rel) == expected


@pytest.mark.parametrize("rel, needle", [
    ("../e.png", "'..'"), ("a/../../e.png", "'..'"), ("a/../b.png", "'..'"), ("../../../tmp/x/ESC.png", "'..'"),
    ("/etc/x.png", "absolute"), ("", "empty"), ("./", "empty"), ("//", "absolute"), ("a\x00.png", "NUL"),
])
def test_refused_relative_paths(rel, needle):
    with pytest.raises(OutputPathError, match=needle):
        normalise_relative(rel)


@pytest.mark.parametrize("output", ["/out/run", "s3://bucket/out", "memory://out", "file:///out/run", "gcs://b/o/"])
def test_output_uri_stays_under_its_folder_on_every_filesystem(output):
    base = output.rstrip("/")
    assert output_uri(output, "restored", "d/./img.png") == f"{base}/restored/d/img.png"
    for bad in ("../x.png", "d/../../x.png", "/abs.png", ""):
        with pytest.raises(OutputPathError):
            output_uri(output, "restored", bad)


def test_screen_names_every_source_of_a_collision_and_keeps_the_rest():
    f = lambda rel: InputFile(f"s3://b/in/{rel}", rel)  # noqa: E731
    files = [f("d/./img.png"), f("d//img.png"), f("d/img.png"), f("ok.png"), f("../esc.png"), f("a.jpg"),
             f("a.jpg.png")]
    kept, problems = screen_inputs(files, lambda rel: [rel if rel.endswith(".png") else rel + ".png"])
    assert [k.relative_path for k in kept] == ["ok.png"]
    by_rel = {p["relative_path"]: p for p in problems}
    assert sorted(by_rel) == ["../esc.png", "a.jpg", "a.jpg.png", "d/./img.png", "d//img.png", "d/img.png"]
    for rel in ("d/./img.png", "d//img.png", "d/img.png"):
        msg = by_rel[rel]["error_message"]
        assert "3 inputs map to the same output d/img.png" in msg
        assert all(f"s3://b/in/{r}" in msg for r in ("d/./img.png", "d//img.png", "d/img.png")), msg
    assert "s3://b/in/a.jpg," in by_rel["a.jpg.png"]["error_message"]  # a.jpg -> a.jpg.png as well
    assert all(p["error_stage"] == "plan" and p["error_type"] == "OutputPathError" for p in problems)


def test_finish_stage_refuses_an_escaping_path(tmp_path):
    stage = FinishStage(str(tmp_path / "out"), "h" * 16, comparison_ids=("1",))
    img = np.full((8, 8, 3), 0.5, np.float32)
    out = stage.finish_row({"id": "1", "relative_path": "../../escaped.png", "restored": pack(img), "lq": pack(img),
                            "hq": b"", "grey": False, **no_error()})
    assert out["error_stage"] == "write" and out["error_type"] == "OutputPathError"
    assert not list(tmp_path.rglob("escaped.png"))


def test_special_files_are_never_read(tmp_path):
    fifo, dev = tmp_path / "f.png", tmp_path / "z.png"
    os.mkfifo(fifo)
    dev.symlink_to("/dev/zero")
    with deadline(20):
        for p in (fifo, dev):
            with pytest.raises(NotRegularFileError, match="not a regular file"):
                read_bytes(str(p))


def test_traversal_and_colliding_s3_keys_are_error_rows_and_never_written(ray_local, s3_server, tmp_path):
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=s3_server, key="testing", secret="testing")
    fs.mkdir("escape")
    keys = {"in/ok.png": 0.2, "in/../../../tmp/x/ESC.png": 0.3, "in/a/../../e.png": 0.4,
            "in/d/img.png": 0.5, "in/d/./img.png": 0.6, "in/d//img.png": 0.7}
    for key, v in keys.items():
        fs.pipe(f"escape/{key}", _png(v))
    out = tmp_path / "a" / "out"
    storage = {"endpoint_url": s3_server}
    listed = list_inputs("s3://escape/in", StorageConfig(endpoint_url=s3_server))
    landing = {f.relative_path: os.path.normpath(out / "restored" / os.path.normpath(f.relative_path))
               for f in listed if ".." in f.relative_path}
    assert landing == {"../../../tmp/x/ESC.png": str(tmp_path / "tmp" / "x" / "ESC.png"),
                       "a/../../e.png": str(out / "e.png")}  # where the old join wrote them
    cfg = from_dict(RestoreImagesConfig, {"input": "s3://escape/in", "output": str(out), "storage": storage,
                                          "mlflow": {"enabled": False}, **FAST})
    cfg.validate()
    summary = run(cfg)
    assert summary.total_results == 1 and summary.total_errors == 5
    assert [r["relative_path"] for r in _table(out, "results")] == ["ok.png"]
    errors = {e["source_uri"].removeprefix("s3://escape/in/"): e for e in _table(out, "errors")}
    assert sorted(errors) == sorted(k.removeprefix("in/") for k in keys if k != "in/ok.png")
    for name in ("../../../tmp/x/ESC.png", "a/../../e.png"):
        assert errors[name]["stage"] == "plan" and "'..'" in errors[name]["message"]
    for name in ("d/img.png", "d/./img.png", "d//img.png"):
        msg = errors[name]["message"]
        assert "3 inputs map to the same output d/img.png" in msg, msg
        assert all(f"s3://escape/in/{other}" in msg for other in ("d/img.png", "d/./img.png", "d//img.png"))
    assert not any(os.path.exists(p) for p in landing.values())
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.suffix == ".png")
    assert written == ["comparisons/ok.png", "restored/ok.png"]
    assert summary.errors == 5 and run(cfg).skipped == 6  # recorded once: a re-run adds no rows
    assert len(_table(out, "errors")) == 5


def test_fifo_and_device_in_the_input_are_error_rows_and_the_job_finishes(ray_local, tmp_path):
    root = tmp_path / "in"
    valid = make_valid_images(root)
    os.mkfifo(root / "f.png")
    (root / "sub" / "z.png").symlink_to("/dev/zero")
    cfg = from_dict(RestoreImagesConfig, {"input": str(root), "output": str(tmp_path / "out"), "synthesize": True,
                                          "mlflow": {"enabled": False}, **FAST})
    with deadline(300):
        summary = run(cfg)
    assert summary.total_results == len(valid) and summary.total_errors == 2
    errors = {e["relative_path"]: e for e in _table(tmp_path / "out", "errors")}
    assert sorted(errors) == ["f.png", "sub/z.png"]
    assert "a FIFO (named pipe), not a regular file" in errors["f.png"]["message"]
    assert "a character device, not a regular file" in errors["sub/z.png"]["message"]
    assert all(e["stage"] == "plan" and e["error_type"] == "NotRegularFileError" for e in errors.values())


def test_video_plan_refuses_clips_for_one_output_and_fifos_before_probing(tmp_path):
    from pipelines.restore_video import RestoreVideoConfig
    from pipelines.video_rows import plan_clips
    from tests.pipelines.test_restore_video import make_clip

    root = tmp_path / "in"
    for name in ("a.ts", "a.mkv", "b.mp4"):  # h264 output: a.ts -> a.mkv (its container changes), a.mkv kept
        make_clip(root / name, frames=4, audio=False)
    os.mkfifo(root / "f.mp4")
    cfg = from_dict(RestoreVideoConfig, {"input": str(root), "output": str(tmp_path / "out"),
                                         "codec": {"name": "h264"}, "mlflow": {"enabled": False}})
    with deadline(60):
        clips, rows, skipped, errors = plan_clips(cfg, "h" * 16)
    assert [c.relative_path for c in clips] == ["b.mp4"] and {r["relative_path"] for r in rows} == {"b.mp4"}
    by_rel = {e["relative_path"]: e for e in errors}
    assert sorted(by_rel) == ["a.mkv", "a.ts", "f.mp4"]
    for rel in ("a.mkv", "a.ts"):
        assert "2 inputs map to the same output a.mkv" in by_rel[rel]["message"]
        assert str(root / "a.mkv") in by_rel[rel]["message"] and str(root / "a.ts") in by_rel[rel]["message"]
    assert by_rel["f.mp4"]["error_type"] == "NotRegularFileError" and by_rel["f.mp4"]["stage"] == "plan"
    assert len(_table(tmp_path / "out", "errors")) == 3
