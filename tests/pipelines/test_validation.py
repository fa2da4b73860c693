"""Bad configs fail at load: `restoray run` exits 2 with one line naming the key, before any
work (numbers finite and in range, the Ray pool, output vs input, weights headers, MLflow)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from pipelines.cli import main

REPO = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, data: dict) -> str:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _base(tmp_path: Path) -> dict:
    (tmp_path / "in").mkdir(exist_ok=True)
    return {"job": "restore-images", "input": str(tmp_path / "in"), "output": str(tmp_path / "out"),
            "degradation": {"name": "denoise", "noise_sigma": 0.05}, "solver": {"name": "diffpir", "nfe": 2},
            "prior": {"name": "gaussian", "s2": 0.05, "mean": 0.5},
            "ray": {"actors": 2, "batch_size": 1, "num_cpus": 2, "num_cpus_per_actor": 0.5},
            "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"}}


def _merge(base: dict, over: dict) -> dict:
    """``over`` on ``base``, section by section; a spec with its own ``name`` replaces the base's."""
    out = dict(base)
    for k, v in over.items():
        merge = isinstance(v, dict) and isinstance(base.get(k), dict) and "name" not in v
        out[k] = _merge(base[k], v) if merge else v
    return out


def _run(capsys, path: str) -> tuple[int, str]:
    code = main(["run", path, "--dry-run"])
    return code, capsys.readouterr().err


def _missing_driver_uri() -> str:
    """A database URI whose Python driver is not installed here."""
    for module, uri in (("psycopg2", "postgresql+psycopg2://user@localhost/mlflow"),
                        ("MySQLdb", "mysql+mysqldb://user@localhost/mlflow"),
                        ("pyodbc", "mssql+pyodbc://user@localhost/mlflow")):
        if importlib.util.find_spec(module) is None:
            return uri
    pytest.skip("every database driver is installed: no missing-driver URI to try")


def test_the_base_config_is_valid(capsys, tmp_path):
    assert _run(capsys, _write(tmp_path, _base(tmp_path))) == (0, "")


BAD = [
    ({"degradation": {"noise_sigma": float("nan")}}, "'degradation.noise_sigma': must be a finite number, got nan"),
    ({"degradation": {"noise_sigma": 5}}, "'degradation.noise_sigma': must be in [0, 1]"),
    ({"degradation": {"noise_sigma": -0.1}}, "'degradation.noise_sigma': must be in [0, 1]"),
    ({"degradation": {"noise_poisson_peak": 0}}, "'degradation.noise_poisson_peak': must be a finite number > 0"),
    ({"solver": {"zeta": float("inf")}}, "'solver.zeta': must be a finite number, got inf"),
    ({"max_pixels": -1}, "'max_pixels': must be >= 1, got -1"),
    ({"comparisons": -1}, "'comparisons': must be >= 0, got -1"),
    ({"flush_rows": 0}, "'flush_rows': must be >= 1, got 0"),
    ({"ray": {"batch_size": 0}}, "'ray.batch_size': must be >= 1, got 0"),
    ({"ray": {"solve_batch": 0}}, "'ray.solve_batch': must be >= 1, got 0"),
    ({"ray": {"actors": -5}}, "'ray.actors': must be >= 1, got -5"),
    ({"ray": {"actors": 100000}}, "'ray.actors': 100000 actors do not fit on this machine: at most 4 "
                                  "(2 CPUs / num_cpus_per_actor 0.5)"),
    ({"ray": {"actors": 5}}, "'ray.actors': 5 actors do not fit on this machine: at most 4"),
    ({"ray": {"num_cpus_per_actor": 0}}, "'ray.num_cpus_per_actor': must be a finite number > 0"),
    ({"ray": {"object_store_mb": 10}}, "'ray.object_store_mb': must be >= 75"),
    ({"storage": {"read_timeout_s": 0}}, "'storage.read_timeout_s': must be a finite number > 0"),
    ({"prior": {"name": "embedded", "weights": "/etc/passwd"}}, "'prior.weights': /etc/passwd is not a safetensors file"),
    ({"prior": {"name": "dncnn", "weights": "/etc/passwd"}}, "'prior.weights': /etc/passwd is not a PyTorch checkpoint"),
    ({"prior": {"name": "ffdnet", "weights": "/etc/passwd"}}, "'prior.weights': /etc/passwd is not a MATLAB v7.3"),
    ({"mlflow": {"tracking_uri": "nosuch://host/db"}}, "'mlflow.tracking_uri': nosuch://host/db: unknown tracking scheme"),
    ({"mlflow": {"tracking_uri": "http://127.0.0.1:9"}}, "'mlflow.tracking_uri': http://127.0.0.1:9: the tracking server "
                                                         "does not answer"),
    ({"mlflow": {"tracking_uri": "sqlite:///{tmp}/job.yaml/mlflow.db"}},  # a file where its folder should be
     "'mlflow.tracking_uri': sqlite:///{tmp}/job.yaml/mlflow.db: the SQLite database {tmp}/job.yaml/mlflow.db "
     "cannot be created ({tmp}/job.yaml is not a writable folder)"),
]


@pytest.mark.parametrize("over, needle", BAD)
def test_bad_values_exit_2_with_one_line_naming_the_key(capsys, tmp_path, over, needle):
    over = yaml.safe_load(yaml.safe_dump(over).replace("{tmp}", str(tmp_path)))
    needle = needle.replace("{tmp}", str(tmp_path))
    code, err = _run(capsys, _write(tmp_path, _merge(_base(tmp_path), over)))
    assert code == 2 and f"restoray: config error: config key {needle}" in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_actors_up_to_the_machine_pass(capsys, tmp_path):
    assert _run(capsys, _write(tmp_path, _merge(_base(tmp_path), {"ray": {"actors": 4}})))[0] == 0
    joined = {"ray": {"actors": 100000, "address": "ray://elsewhere:10001"}}  # sized when joined, not here
    assert _run(capsys, _write(tmp_path, _merge(_base(tmp_path), joined)))[0] == 0


def test_a_tracking_uri_whose_driver_is_missing_fails_before_any_work(capsys, tmp_path):
    uri = _missing_driver_uri()
    code, err = _run(capsys, _write(tmp_path, _merge(_base(tmp_path), {"mlflow": {"tracking_uri": uri}})))
    assert code == 2 and "config key 'mlflow.tracking_uri': " in err and "driver is not installed" in err, err
    assert "user@" not in err and len(err.strip().splitlines()) == 1  # credentials never printed
    off = {"mlflow": {"tracking_uri": uri, "enabled": False}}
    assert _run(capsys, _write(tmp_path, _merge(_base(tmp_path), off)))[0] == 0


@pytest.mark.parametrize("output, needle", [
    ("{in}", "is the input 'input'"), ("{in}/out", "is inside the input 'input'"),
    ("{in}/sub/../..//in/x", "is inside the input 'input'"), ("{link}/out", "is inside the input 'input'"),
])
def test_output_equal_to_or_inside_the_input_is_refused(capsys, tmp_path, output, needle):
    base = _base(tmp_path)
    (tmp_path / "link").symlink_to(tmp_path / "in")
    data = {**base, "output": output.format(**{"in": base["input"], "link": tmp_path / "link"})}
    code, err = _run(capsys, _write(tmp_path, data))
    assert code == 2 and "config key 'output': " in err and needle in err, err


@pytest.mark.parametrize("input_uri, output, bad", [
    ("s3://bucket/in", "s3://bucket/in/out", True), ("s3a://bucket/in/**/*.png", "s3://bucket/in/runs", True),
    ("s3://bucket/in", "s3://bucket/input-restored", False), ("s3://bucket/in", "s3://other/in", False),
])
def test_output_inside_an_object_store_input(capsys, tmp_path, input_uri, output, bad):
    data = {**_base(tmp_path), "input": input_uri, "output": output}
    code, err = _run(capsys, _write(tmp_path, data))
    assert code == (2 if bad else 0), err
    assert ("config key 'output'" in err) == bad


def test_other_jobs_check_their_keys_too(capsys, tmp_path):
    evaluate = yaml.safe_load((REPO / "configs/evaluate-smoke.yaml").read_text())
    evaluate["tasks"][0]["degradation"]["noise_sigma"] = 5
    code, err = _run(capsys, _write(tmp_path, evaluate))
    assert code == 2 and "config key 'tasks[0].degradation.noise_sigma': must be in [0, 1]" in err, err
    evaluate = yaml.safe_load((REPO / "configs/evaluate-smoke.yaml").read_text())
    evaluate["output"] = evaluate["datasets"][0]["input"]
    code, err = _run(capsys, _write(tmp_path, evaluate))
    assert code == 2 and "is the input 'datasets[0].input'" in err, err
    synth = {"job": "synth-pairs", "input": str(tmp_path), "output": str(tmp_path / "pairs"), "limit_images": 0}
    code, err = _run(capsys, _write(tmp_path, synth))
    assert code == 2 and "is inside the input 'input'" in err, err
    synth["output"] = str(tmp_path.parent / f"{tmp_path.name}-pairs")
    code, err = _run(capsys, _write(tmp_path, synth))
    assert code == 2 and "config key 'limit_images': must be >= 1 or null, got 0" in err, err
    video = {"job": "restore-video", "input": str(tmp_path), "output": "/nonexistent/out", "segment_frames": 0}
    code, err = _run(capsys, _write(tmp_path, video))
    assert code == 2 and "config key 'segment_frames': must be >= 1" in err, err
    video = {**video, "segment_frames": 8, "solver": {"name": "dvdnet"}, "video_prior": {"name": "dvdnet", "weights": "/etc"}}
    code, err = _run(capsys, _write(tmp_path, video))
    assert code == 2 and "config key 'video_prior.weights': /etc/model_spatial.pth does not exist" in err, err
    train = {"job": "train-prior", "lr": float("nan")}
    code, err = _run(capsys, _write(tmp_path, train))
    assert code == 2 and "config key 'lr': must be a finite number, got nan" in err, err
    train = {"job": "train-prior", "init_weights": "/etc/passwd"}
    code, err = _run(capsys, _write(tmp_path, train))
    assert code == 2 and "config key 'init_weights': /etc/passwd is not a safetensors file" in err, err
