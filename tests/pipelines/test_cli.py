"""The `restoray` console script: help, dry-run, and one clear message per config error."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_help_describes_job_kinds(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "restore-images" in text and "train-prior" in text
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "--dry-run" in capsys.readouterr().out


def test_console_script_installed():
    exe = shutil.which("restoray") or str(Path(sys.executable).parent / "restoray")
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "restore-images" in out.stdout


def test_dry_run_prints_resolved_config(capsys):
    assert main(["run", str(REPO / "configs/quickstart.yaml"), "--dry-run", "--set", "solver.nfe=7"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["solver"]["name"] == "diffpir" and cfg["solver"]["nfe"] == 7
    assert cfg["ray"]["num_cpus_per_actor"] == 0.5  # defaults resolved
    # solver, prior and degradation too: the config's fields, the preset of sr (symbolic preset kept)
    assert (cfg["solver"]["preset"], cfg["solver"]["samples"], cfg["solver"]["tile_size"]) == ("auto", 1, 256)
    from operators.solvers.presets import preset_values

    assert cfg["solver"]["lam"] == preset_values("diffpir", "sr")["lam"] and cfg["solver"]["rho"] == 7.0
    assert cfg["prior"] == {"name": "embedded", "weights": None, "grey": False, "dtype": "float32"}
    assert cfg["degradation"]["mode"] == "bicubic" and cfg["degradation"]["kernel_file"] is None


@pytest.mark.parametrize("override, needle", [
    ("solver.name=nosuch", "'solver.name': unknown solver 'nosuch'; valid choices: "),
    ("prior.name=nosuch", "'prior.name': unknown prior 'nosuch'; valid choices: "),
    ("degradation.name=nosuch", "'degradation.name': unknown degradation 'nosuch'; valid choices: "),
    ("ray.actors=two", "'ray.actors': expected an integer"),
    ("colour=1", "unknown config key 'colour'"),
    ("job=restore-everything", "'job': 'restore-everything' is not a job kind"),
])
def test_config_errors_exit_nonzero_with_one_message(capsys, override, needle):
    code = main(["run", str(REPO / "configs/quickstart.yaml"), "--set", override])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err, err
    assert len(err.strip().splitlines()) == 1


def test_every_shipped_config_validates(capsys):
    for path in sorted((REPO / "configs").glob("*.yaml")):
        if path.name == "presets.yaml":  # solver presets, not a job (tests/operators/solvers/test_presets.py)
            continue
        assert main(["run", str(path), "--dry-run"]) == 0, path
        assert yaml.safe_load(capsys.readouterr().out)["job"] == yaml.safe_load(path.read_text())["job"]


@pytest.mark.parametrize("override, needle", [
    ("solver.nfe=[1, 2", "--set solver.nfe: value '[1, 2' is not valid YAML"),
    ("input={a: b", "--set input: value '{a: b' is not valid YAML"),
])
def test_bad_set_yaml_exits_2_with_one_message(capsys, override, needle):
    assert main(["run", str(REPO / "configs/quickstart.yaml"), "--set", override]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1, err


def test_missing_input_exits_2_with_one_message(capsys, tmp_path):
    missing = tmp_path / "no-such-folder"
    code = main(["run", str(REPO / "configs/restore-images.yaml"), "--set", f"input={missing}",
                 "--set", f"output={tmp_path / 'out'}", "--set", "mlflow.enabled=false"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"input not found: {missing}" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("override, needle", [
    ("prior.weights=/nonexistent.safetensors",
     "'prior': prior 'embedded' needs /nonexistent.safetensors, which does not exist; train them with `restoray"),
    ("prior={name: diffusers, model: /no/such/sd-model}",
     "needs /no/such/sd-model, which does not exist; give an existing folder"),
])
def test_missing_prior_files_fail_at_config_time(capsys, override, needle):
    assert main(["run", str(REPO / "configs/quickstart.yaml"), "--set", override]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1, err


def test_hub_ids_are_not_checked_for_files():
    from pipelines.prior_files import check_prior_files, prior_files

    spec = {"name": "diffusers", "model": "google/ddpm-cat-256"}
    assert prior_files(spec) == []
    check_prior_files(spec)
