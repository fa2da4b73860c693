"""Solving an actor call's rows in batches: rows that agree on everything their solve depends on
share one solver call, each row drawing from its own generator, so a row's result does not
depend on the rows it was batched with (operators.solvers.generators.GeneratorBatch).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from actors.runtime import timed_solve
from operators.degradations.base import Degradation
from operators.priors.base import Prior
from operators.solvers.base import SolverOutput
from operators.solvers.config import SolverConfig
from operators.solvers.generators import ROW_COUPLED
from operators.solvers.posterior import PosteriorConfig

Solved = tuple[SolverOutput, float]  # one row's output (x: (1, C, H, W)) and seconds


@dataclass(frozen=True)
class RowSolve:
    """One row's solve, ready to run. y: (1, C, h, w) on the actor's device; ``degradation``:
    the row's spec as JSON; ``method``: JSON of anything else that fixes the solve and can differ
    between rows of one actor (EvaluateActor: the method spec; "" where the actor fixes it)."""

    row_id: str
    y: torch.Tensor
    op: Degradation
    degradation: str
    solver: str
    solve: Callable[..., SolverOutput]
    prior: Prior
    nfe: int
    config: SolverConfig
    posterior: PosteriorConfig
    method: str = ""

    def key(self) -> str | None:
        """Rows with equal keys may share a call; None: this row is solved alone."""
        if self.solver in ROW_COUPLED:
            return None
        return json.dumps([list(self.y.shape), json.loads(self.degradation), self.solver, self.nfe,
                           self.method, self.config.to_dict(), self.posterior.samples,
                           self.posterior.estimate], sort_keys=True)


def check_solve_batch(solve_batch: int) -> int:
    """``solve_batch`` (most rows per solve) as given, if an integer >= 1."""
    if isinstance(solve_batch, bool) or not isinstance(solve_batch, int) or solve_batch < 1:
        raise ValueError(f"solve_batch must be an integer >= 1, got {solve_batch!r}")
    return solve_batch


def solve_groups(keys: Sequence[str | None], max_rows: int) -> list[list[int]]:
    """Row indices in groups of equal key, at most ``max_rows`` each, in order of first row;
    a None key is a group of its own."""
    groups: dict[object, list[list[int]]] = {}
    for i, key in enumerate(keys):
        chunks = groups.setdefault(key if key is not None else ("alone", i), [[]])
        if len(chunks[-1]) >= max(1, max_rows):
            chunks.append([])
        chunks[-1].append(i)
    return sorted((c for chunks in groups.values() for c in chunks), key=lambda c: c[0])


def solve_rows(tasks: Sequence[RowSolve | None], seed: int, max_rows: int = 1) -> list[Solved | Exception | None]:
    """Each task's (output, seconds), or the exception its solve raised; None where the task is None.

    Rows of equal :meth:`RowSolve.key` run together, up to ``max_rows`` per call; a row's
    ``seconds`` is then its call's time divided evenly over the call's rows, and ``nfe`` the
    call's count (one batched NFE is one NFE of each row). A batched call that fails is rerun
    row by row, so only the rows that fail alone become errors (a batch too big for the device
    memory is thus solved one row at a time)."""
    out: list[Solved | Exception | None] = [None] * len(tasks)
    todo = [i for i, t in enumerate(tasks) if t is not None]
    for group in solve_groups([tasks[i].key() for i in todo], max_rows):
        rows = [todo[g] for g in group]
        try:
            for i, solved in zip(rows, _solve_batch([tasks[i] for i in rows], seed), strict=True):
                out[i] = solved
        except Exception as exc:  # noqa: BLE001 - per row below, or this row's error
            if len(rows) == 1:
                out[rows[0]] = exc
                continue
            for i in rows:
                try:
                    out[i] = _solve_batch([tasks[i]], seed)[0]
                except Exception as row_exc:  # noqa: BLE001 - the row's error
                    out[i] = row_exc
    return out


def _solve_batch(tasks: list[RowSolve], seed: int) -> list[Solved]:
    """One call over ``tasks`` (equal keys), split back into rows."""
    t = tasks[0]
    y = t.y if len(tasks) == 1 else torch.cat([task.y for task in tasks])
    ids = t.row_id if len(tasks) == 1 else [task.row_id for task in tasks]
    result, seconds = timed_solve(t.solve, y, t.op, t.prior, t.nfe, t.config, seed, ids, t.posterior)
    return [(row_output(result, b), seconds / len(tasks)) for b in range(len(tasks))]


def row_output(result: SolverOutput, b: int) -> SolverOutput:
    """Row b of a batched output: x and std (B, C, H, W) -> (1, C, H, W); NFE and extras shared."""
    std = None if result.std is None else result.std[b:b + 1]
    return SolverOutput(x=result.x[b:b + 1], nfe=result.nfe, nfe_backward=result.nfe_backward, std=std,
                        extras=result.extras)
