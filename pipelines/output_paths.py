"""Output paths named after inputs: one normalisation, checked at plan time and at write time.

An input's relative path (its key below the input root, exactly as listed) reaches an output
name only through ``normalise_relative``: '/'-separated, empty and '.' parts dropped
(``d/./img.png`` and ``d//img.png`` -> ``d/img.png``); empty, absolute and '..' paths are
refused. ``output_uri`` joins the result under a folder of the output and checks, lexically
and so the same for local paths, s3:// and any fsspec URI, that it is still below it.

``screen_inputs`` runs at plan time, before anything is read, and returns error rows for
inputs that must not run: refused paths, local files that are not regular files (FIFOs,
devices, sockets), and every input of a group whose outputs would share one name (each of
them names all the sources), so no output is ever silently overwritten.
"""
from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from dataclasses import replace

import fsspec

from pipelines.storage import InputFile, join

MAX_NAMED = 10  # sources listed in one collision message


class OutputPathError(ValueError):
    """A relative path that cannot name an output; permanent."""


def normalise_relative(rel: str) -> str:
    """``rel`` as a clean posix relative path; OutputPathError when it is empty, absolute,
    holds a '..' part or a NUL byte."""
    rel = str(rel)
    if rel.startswith("/"):
        raise OutputPathError(f"relative path {rel!r} is absolute: refused")
    if "\x00" in rel:
        raise OutputPathError(f"relative path {rel!r} holds a NUL byte: refused")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise OutputPathError(f"relative path {rel!r} has a '..' part (it could name a file outside the "
                              f"output): refused")
    if not parts:
        raise OutputPathError(f"relative path {rel!r} is empty: refused")
    return "/".join(parts)


def output_uri(output: str, folder: str, rel: str) -> str:
    """``<output>/<folder>/<normalised rel>``, refused unless it stays below ``<output>/<folder>/``."""
    base = join(output, folder)
    uri = join(base, normalise_relative(rel))
    base_path = posixpath.normpath(fsspec.core.split_protocol(base)[1])
    path = posixpath.normpath(fsspec.core.split_protocol(uri)[1])
    if not path.startswith(base_path.rstrip("/") + "/"):
        raise OutputPathError(f"output path for {rel!r} is not below {folder}/ of the output: refused")
    return uri


def problem_row(f: InputFile, error_type: str, message: str) -> dict:
    """A plan-time failure as a stage row (``pipelines.streaming.error_row`` makes the table row)."""
    from pipelines.tables import image_id

    return {"id": image_id(f.uri), "source_uri": f.uri, "relative_path": f.relative_path,
            "error_stage": "plan", "error_type": error_type, "error_message": message}


def screen_inputs(files: Iterable[InputFile],
                  names: Callable[[str], Iterable[str]]) -> tuple[list[InputFile], list[dict]]:
    """(inputs safe to run, with normalised relative paths; problem rows for the rest).

    ``names(rel)``: the output paths (below the output) an input with normalised path
    ``rel`` writes; a name two inputs share makes all of them problem rows."""
    from pipelines.local_files import special_file_problem

    kept: list[InputFile] = []
    listed: list[InputFile] = []  # as listed, for the error rows
    problems: list[dict] = []
    owners: dict[str, list[int]] = {}
    for f in files:
        protocol = fsspec.core.split_protocol(f.uri)[0] or "file"
        special = special_file_problem(f.uri.removeprefix("file://")) if protocol in ("file", "local") else None
        if special:
            problems.append(problem_row(f, "NotRegularFileError", special))
            continue
        try:
            rel = normalise_relative(f.relative_path)
        except OutputPathError as e:
            problems.append(problem_row(f, "OutputPathError", str(e)))
            continue
        for name in set(names(rel)):
            owners.setdefault(name, []).append(len(kept))
        kept.append(replace(f, relative_path=rel))
        listed.append(f)
    clashes: dict[int, tuple[str, list[int]]] = {}
    for name, idx in owners.items():
        if len(idx) > 1:
            for i in idx:
                clashes.setdefault(i, (name, idx))
    for i, (name, idx) in sorted(clashes.items()):
        sources = [kept[j].uri for j in idx]
        shown = ", ".join(sources[:MAX_NAMED]) + (f" and {len(sources) - MAX_NAMED} more" if len(sources) > MAX_NAMED else "")
        problems.append(problem_row(listed[i], "OutputPathError",
                                    f"{len(sources)} inputs map to the same output {name}: {shown}; "
                                    f"none of them is written (rename the inputs)"))
    return [f for i, f in enumerate(kept) if i not in clashes], problems
