"""The evaluate job's speed/quality plot: per task, mean PSNR against mean seconds per image,
one point per method (its NFE in the label), solvers and baselines marked apart. PNG bytes."""
from __future__ import annotations

import io
import math
from collections import defaultdict


def psnr_vs_seconds(results: list[dict], tasks: list, kinds: dict[str, str], dataset: str | None = None) -> bytes:
    """results: the evaluate rows (task, method, psnr, seconds, nfe); one subplot per task that
    has rows (of ``dataset`` when given), seconds on a log axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in results:
        if dataset is None or r.get("dataset") == dataset:
            groups[(r["task"], r["method"])].append(r)
    names = [t.name for t in tasks if any(k[0] == t.name for k in groups)]
    cols = min(4, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, task in zip(axes.flat, names):
        for (t, method), rs in sorted(groups.items()):
            if t != task:
                continue
            ok = [r for r in rs if r["psnr"] is not None and r["psnr"] == r["psnr"]]
            if not ok:
                continue
            psnr = sum(r["psnr"] for r in ok) / len(ok)
            secs = max(sum(r["seconds"] for r in ok) / len(ok), 1e-3)
            nfe = round(sum(r["nfe"] for r in ok) / len(ok))
            solver = kinds.get(method) == "solver"
            ax.scatter([secs], [psnr], marker="o" if solver else "s", c="tab:blue" if solver else "tab:orange")
            ax.annotate(f"{method}" + (f" ({nfe})" if solver else ""), (secs, psnr), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("seconds / image", fontsize=8)
        ax.set_ylabel("PSNR (dB)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    title = "PSNR vs seconds per image (o: diffusion solver, NFE in brackets; s: classical baseline)"
    fig.suptitle(title + (f" - {dataset}" if dataset else ""), fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
