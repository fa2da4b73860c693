"""The `restoray` command line: `restoray run CONFIG [--set key.path=value ...] [--dry-run]
[--retry-errors]`.

Exit status: 0 done; 1 the run failed (rows failed transiently, or more than
``max_error_fraction`` of them; or it lost its output lease); 2 nothing ran (a config error,
a missing input, or another run holds the output's lease).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

import yaml

from pipelines.config import ConfigError, apply_overrides, from_dict, read_yaml, to_dict
from pipelines.jobs import JOBS
from pipelines.redact import redact_config


def _job_help() -> str:
    return "job kinds (the config's `job:` key):\n" + "\n".join(
        f"  {name:<16} {kind.description}" for name, kind in JOBS.items())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="restoray",
        description="restoray: image and video restoration at scale with diffusion priors, on Ray Data.",
        epilog=_job_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a job from a YAML config", epilog=_job_help(),
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         description="Run the job a YAML config describes (its `job:` key picks the kind).")
    run.add_argument("config", help="path to a YAML config, e.g. configs/quickstart.yaml")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                     help="override a config value (YAML syntax), e.g. --set solver.nfe=50; repeatable")
    run.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    run.add_argument("--retry-errors", action="store_true",
                     help="retry every error row, permanent ones too (a plain re-run retries transient errors "
                          "and errors recorded under another config)")
    return p


def load_job_config(path: str, overrides: list[str]):
    """Read, override and validate a config; return (config, run function)."""
    data = apply_overrides(read_yaml(path), overrides)
    job = data.get("job")
    if job not in JOBS:
        raise ConfigError(f"config key 'job': {job!r} is not a job kind; valid choices: {', '.join(JOBS)}")
    kind = JOBS[job]
    cfg = from_dict(kind.config, data)
    cfg.validate()
    resolved = getattr(cfg, "resolved", None)  # specs written out to their defaults (streaming jobs)
    return (cfg if resolved is None else resolved()), kind.run


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg, run = load_job_config(args.config, args.overrides)
        if args.retry_errors:
            if not hasattr(cfg, "retry_errors"):
                raise ConfigError(f"--retry-errors: job {cfg.job!r} records no error rows to retry")
            cfg = dataclasses.replace(cfg, retry_errors=True)
    except ConfigError as e:
        print(f"restoray: config error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(yaml.safe_dump(redact_config(to_dict(cfg)), sort_keys=False), end="")
        return 0
    from pipelines.lease import LeaseHeld, LeaseLost

    try:
        summary = run(cfg)
    except (FileNotFoundError, LeaseHeld) as e:  # a missing input or reference; the output in use
        print(f"restoray: {e}", file=sys.stderr)
        return 2
    except LeaseLost as e:
        print(f"restoray: {e}", file=sys.stderr)
        return 1
    print(summary.table())
    reason = summary.failure(cfg.max_error_fraction) if hasattr(cfg, "max_error_fraction") else None
    if reason:
        print(f"restoray: failed: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
