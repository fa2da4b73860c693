"""The evaluate job's report: the markdown table (task x method means per dataset, best
solver vs best baseline) and the labelled comparison grids (input | each method [| its
posterior std] | reference, with PSNR / SSIM)."""
from __future__ import annotations

import math
from collections import defaultdict

from operators.comparison import Panel, estimate_title, labelled_grid, scores, std_panel
from operators.media import decode_image, encode_png


def _mean(vals) -> float:
    vals = [float(v) for v in vals if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(vals) / len(vals) if vals else math.nan


def _f(v: float, fmt: str) -> str:
    return "-" if v != v else format(v, fmt)


def markdown_table(results: list[dict], datasets: list, tasks: list, methods: list,
                   skipped: list[dict], errors: list[dict]) -> str:
    """Per dataset: | task | method | n | PSNR | SSIM | NFE | NFE bwd | s / image |, the
    input y's scores first and the best PSNR of each task in bold; then the best diffusion
    solver against the best classical baseline per task (methods run on every image), the same
    per prior, the solvers below their input, the methods run on a subset (``limit``) against
    the full-set best on the same images; then skipped pairs and errors."""
    kinds = {m.name: _kind(m) for m in methods}
    prior_of = {m.name: m.prior["name"] for m in methods if m.kind == "solver" and m.prior}
    priors = list(dict.fromkeys(prior_of.values()))
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in results:
        groups[(r["dataset"], r["task"], r["method"])].append(r)
    lines = []
    for d in datasets:
        n_img = len({r["source_uri"] for r in results if r["dataset"] == d.name})
        crop = f"centre crop {d.crop}" if d.crop else "whole images"
        lines += [f"### {d.name} ({n_img} image{'s' if n_img != 1 else ''}, {crop})", "",
                  "| task | method | n | PSNR (dB) | SSIM | NFE | NFE bwd | s / image |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        best_rows, subset_rows, prior_rows, below = [], [], [], []
        for t in tasks:
            rows = {m.name: groups.get((d.name, t.name, m.name), []) for m in methods}
            rows = {k: v for k, v in rows.items() if v}
            if not rows:
                continue
            means = {k: _mean(r["psnr"] for r in v) for k, v in rows.items()}
            full = max(len(v) for v in rows.values())
            subset_rows += _subset_lines(t.name, rows, full, kinds)
            best = max(means, key=lambda k: -math.inf if means[k] != means[k] else means[k])
            any_rows = next(iter(rows.values()))
            lq_p, lq_s = _mean(r["lq_psnr"] for r in any_rows), _mean(r["lq_ssim"] for r in any_rows)
            lines.append(f"| {t.name} | *input y* | {len(any_rows)} | {_f(lq_p, '.2f')} | {_f(lq_s, '.4f')} | | | |")
            for name, v in rows.items():
                p = _f(means[name], ".2f")
                cols = [_f(_mean(r["ssim"] for r in v), ".4f"), _f(_mean(r["nfe"] for r in v), ".0f"),
                        _f(_mean(r["nfe_backward"] for r in v), ".0f"), _f(_mean(r["seconds"] for r in v), ".2f")]
                shown = f"**{p}**" if name == best else p
                lines.append(f"| {t.name} | {name} | {len(v)} | {shown} | {' | '.join(cols)} |")
            full_means = {k: v for k, v in means.items() if len(rows[k]) == full}
            best_rows.append(_best_line(t.name, full_means, kinds))
            for prior in priors if len(priors) > 1 else ():
                mine = {k: v for k, v in full_means.items() if prior_of.get(k, prior) == prior}
                prior_rows.append(_best_line(f"{t.name} | {prior}", mine, kinds))
            below += [f"{name} on {t.name} ({means[name]:.2f} < {_mean(r['lq_psnr'] for r in v):.2f})"
                      for name, v in rows.items() if kinds.get(name) == "solver"
                      and means[name] < _mean(r["lq_psnr"] for r in v)]
        lines += ["", f"Best diffusion solver vs best classical baseline on {d.name} (PSNR, dB; methods run "
                  f"on every image of the task):", "",
                  "| task | best solver | PSNR | best baseline | PSNR | margin |", "|---|---|---:|---|---:|---:|",
                  *best_rows, ""]
        if prior_rows:
            lines += [f"The same per prior (its solvers only) on {d.name}:", "",
                      "| task | prior | best solver | PSNR | best baseline | PSNR | margin |",
                      "|---|---|---|---:|---|---:|---:|", *prior_rows, ""]
        lines += [f"Solvers below their input's PSNR on {d.name}: " + ("; ".join(below) if below else "none") + ".",
                  ""]
        if subset_rows:
            lines += [f"Methods run on a subset of {d.name} (`limit`), against the best solver run on every "
                      f"image, on the same images (PSNR, dB):", "",
                      "| task | method | n | PSNR | best full-set solver | its PSNR | margin |",
                      "|---|---|---:|---:|---|---:|---:|", *subset_rows, ""]
    not_applicable = [f"{s['method']} on {s['task']}" for s in skipped if s["reason"] != "not in the method's tasks"]
    if not_applicable:
        lines += ["Not applicable (skipped): " + "; ".join(not_applicable) + ".", ""]
    subsets = [f"{m.name} ({', '.join(m.tasks)})" for m in methods if m.tasks is not None]
    if subsets:
        lines += ["Run on the config's subset of tasks only: " + "; ".join(subsets) + ".", ""]
    limited = [f"{m.name} ({m.limit})" for m in methods if m.limit is not None]
    if limited:
        lines += ["Run on the first images of each dataset only (`limit`): " + "; ".join(limited) + ".", ""]
    if errors:
        counts: dict[tuple, int] = defaultdict(int)
        for e in errors:
            counts[(e.get("dataset"), e.get("task"), e.get("method"))] += 1
        lines.append("Errors (see the errors table): " + "; ".join(
            f"{m} on {d}/{t}: {n}" for (d, t, m), n in sorted(counts.items(), key=str)) + ".")
    return "\n".join(lines).rstrip() + "\n"


def _subset_lines(task: str, rows: dict[str, list[dict]], full: int, kinds: dict[str, str]) -> list[str]:
    """One line per method with fewer rows than the task's full count: its mean PSNR against
    the best solver among those with every image, both on the subset's images."""
    lines = []
    for name, v in rows.items():
        if len(v) == full:
            continue
        uris = {r["source_uri"] for r in v}
        paired = {k: _mean(r["psnr"] for r in w if r["source_uri"] in uris) for k, w in rows.items()
                  if len(w) == full and kinds.get(k) == "solver"}
        mine = _mean(r["psnr"] for r in v)
        best = max(paired, key=lambda k: -math.inf if paired[k] != paired[k] else paired[k]) if paired else "-"
        bp = paired.get(best, math.nan)
        lines.append(f"| {task} | {name} | {len(v)} | {_f(mine, '.2f')} | {best} | {_f(bp, '.2f')} | "
                     f"{_f(mine - bp, '+.2f')} |")
    return lines


def _kind(method) -> str:
    """solver, baseline (classical) or learned (a pretrained regressor run as a baseline)."""
    from operators.baselines import LEARNED

    if method.kind == "baseline" and (method.baseline or {}).get("name") in LEARNED:
        return "learned"
    return method.kind


def _best_line(task: str, means: dict[str, float], kinds: dict[str, str]) -> str:
    def top(kind: str) -> tuple[str, float]:
        c = {k: v for k, v in means.items() if kinds.get(k) == kind and v == v}
        return max(c.items(), key=lambda kv: kv[1]) if c else ("-", math.nan)

    (s, sp), (b, bp) = top("solver"), top("baseline")
    return f"| {task} | {s} | {_f(sp, '.2f')} | {b} | {_f(bp, '.2f')} | {_f(sp - bp, '+.2f')} |"


def comparison_grid(panel: dict, order: list[str], height: int = 160) -> bytes:
    """PNG: input | each method in ``order`` (and its posterior std, where it has one) |
    reference, labelled with PSNR / SSIM (operators.comparison). ``panel``: {"lq", "hq": PNG
    bytes, "lq_scores": (psnr, ssim), "methods": {name: {"png", "scores", "samples",
    "estimate", "std_png", "std_mean"}}}, as pipelines.evaluate keeps them."""
    panels = [Panel("input", decode_image(panel["lq"]).pixels, scores(*panel["lq_scores"]))]
    for name in order:
        m = panel["methods"].get(name)
        if m is None:
            continue
        title = estimate_title(name, m["samples"], m["estimate"])
        panels.append(Panel(title, decode_image(m["png"]).pixels, scores(*m["scores"])))
        if m["std_png"]:
            panels.append(std_panel(decode_image(m["std_png"]).pixels, m["std_mean"], f"{name} std"))
    panels.append(Panel("reference", decode_image(panel["hq"]).pixels))
    return encode_png(labelled_grid(panels, height=height))
