"""The evaluate benchmark: run `restoray run configs/evaluate.yaml` and record its markdown
table in benchmarks/RESULTS.md under a dated section with the exact command and machine.

    python benchmarks/evaluate.py [--config configs/evaluate.yaml] [--set key.path=value ...]
                                  [--no-record]

``--set`` goes to `restoray run` unchanged, e.g. smaller grids:
``--set datasets.0.limit=3 --set datasets.1.limit=1 --set datasets.1.crop=256``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "RESULTS.md"


def machine() -> str:
    """CPU model and count, GPU (if torch sees one), Python and OS, in one line."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"{os.cpu_count()} CPU cores ({model}), {gpu}; Python {platform.python_version()}, {platform.system()}"


def section(command: str, seconds: float, load: tuple[float, float], table: str) -> str:
    today = dt.date.today().isoformat()
    return "\n".join([
        f"## evaluate: restoration benchmark grid ({today})", "",
        f"- Machine: {machine()}; 1-minute load average {load[0]:.1f} at the start, {load[1]:.1f} at the end "
        "(other work on the machine, if any, shares the cores).",
        f"- Command: `{command}`",
        f"- Wall time: {seconds / 60:.1f} min (Ray startup and model loading included).",
        "- PSNR/SSIM on RGB in [0, 1] against the clean (centre-cropped, mod-8) image; seconds are per "
        "restoration inside the actor; NFE counts network evaluations (backward passes apart).", "",
        table.strip(), ""])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/evaluate.yaml")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
    ap.add_argument("--no-record", action="store_true", help="print the section, do not touch RESULTS.md")
    args = ap.parse_args()
    os.chdir(REPO)  # the config's relative paths (../shared/data, ./runs) are relative to the repo

    from pipelines.cli import load_job_config
    from pipelines.storage import join, read_bytes

    cfg, _ = load_job_config(args.config, args.overrides)
    cmd = ["restoray", "run", args.config, *[f"--set={o}" for o in args.overrides]]
    shown = " ".join(shlex.quote(c) for c in ["restoray", "run", args.config]
                     + [x for o in args.overrides for x in ("--set", o)])
    exe = Path(sys.executable).with_name("restoray")
    print(f"running: {shown}", flush=True)
    load0, t0 = os.getloadavg()[0], time.perf_counter()
    subprocess.run([str(exe) if exe.exists() else cmd[0], *cmd[1:]], check=True)
    seconds, load1 = time.perf_counter() - t0, os.getloadavg()[0]
    table = read_bytes(join(cfg.output, "results.md"), cfg.storage).decode()
    text = section(shown, seconds, (load0, load1), table)
    print(text)
    if not args.no_record:
        with open(RESULTS, "a") as f:
            f.write("\n" + text)
        print(f"recorded in {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
