"""Write a model card for trained weights from their metadata and training history.

    python -m pipelines.training.model_card weights/embedded_pixel.safetensors \
        --title "Embedded pixel prior" --hardware "2 CPU cores" --evaluation eval.md
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from safetensors import safe_open


def loss_table(history: list[dict], rows: int = 12) -> str:
    """Markdown table of the loss at ~``rows`` evenly spaced logged steps."""
    if not history:
        return "(no history)"
    idx = sorted({round(i * (len(history) - 1) / max(1, rows - 1)) for i in range(rows)})
    lines = ["| step | loss (EDM-weighted / reconstruction) | minutes |", "|---:|---:|---:|"]
    lines += [f"| {history[i]['step']} | {history[i]['loss']:.4f} | {history[i]['seconds'] / 60:.1f} |" for i in idx]
    return "\n".join(lines)


def render(weights: Path, title: str, hardware: str, evaluation: str, notes: str = "") -> str:
    with safe_open(str(weights), framework="pt") as f:
        meta = dict(f.metadata() or {})
        n_params = sum(_numel(f.get_slice(k).get_shape()) for k in f.keys())
    hist_path = Path(str(weights) + ".history.json")
    history = json.loads(hist_path.read_text()) if hist_path.is_file() else []
    size_mb = os.path.getsize(weights) / 1e6
    meta_lines = "\n".join(f"- `{k}`: `{v}`" for k, v in sorted(meta.items()) if k != "format")
    return f"""# {title}

File: `weights/{weights.name}` ({size_mb:.1f} MB, {n_params / 1e6:.2f} M parameters, safetensors;
the architecture config is in the file's metadata and rebuilt by the loader).

## Training

- Trained by this project's own job: `restoray run configs/{_config_for(meta)}` (Ray Train
  TorchTrainer, one worker) on `../shared/data/train/BSDS400_color` (400 BSDS500 train+test
  images, research/non-commercial terms), random patches with flips and 90-degree rotations.
- Hardware: {hardware}.
- Steps and wall time: {meta.get('steps', '?')} steps, {float(meta.get('train_seconds', 0)) / 60:.0f} minutes
  (of the last run; resumed runs continue the step count).
- Weights are the exponential moving average (with warm-up) of the trained parameters.

Metadata:
{meta_lines}

## Loss curve

{loss_table(history)}

## Evaluation

{evaluation.strip()}
{notes}
"""


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


PAIRED_CONFIGS = {"inn": "train-inn.yaml", "latent_inn": "train-latent-inn.yaml",
                  "conditional": "train-conditional.yaml", "irsde": "train-irsde.yaml"}


def _config_for(meta: dict) -> str:
    if meta.get("training_kind") in PAIRED_CONFIGS:
        return PAIRED_CONFIGS[meta["training_kind"]]
    kind = meta.get("kind")
    if kind in ("autoencoder", "block_codec"):
        return "train-codec.yaml"
    return "train-latent.yaml" if "latent_prior" in meta else "train-prior.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights", type=Path)
    ap.add_argument("--title", required=True)
    ap.add_argument("--hardware", default="2 CPU cores (AMD EPYC), no GPU")
    ap.add_argument("--evaluation", type=Path, help="a markdown file with the evaluation section")
    ap.add_argument("--notes", default="")
    args = ap.parse_args()
    evaluation = args.evaluation.read_text() if args.evaluation else "(see benchmarks/RESULTS.md)"
    out = args.weights.with_suffix(".md")
    out.write_text(render(args.weights, args.title, args.hardware, evaluation, args.notes))
    print(out)


if __name__ == "__main__":
    main()
