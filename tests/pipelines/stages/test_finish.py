"""Stage `finish` names: ``restored/<relative_path>.png``; reference matching by path, then stem."""
from __future__ import annotations

import numpy as np

from actors.columns import no_error, pack
from pipelines.restore_images import match_references
from pipelines.stages.finish import FinishStage, output_name
from pipelines.storage import InputFile


def test_output_name_keeps_the_extension():
    assert output_name("a.jpg") == "a.jpg.png"
    assert output_name("sub/a.PNG") == "sub/a.PNG"
    assert output_name("a.png") == "a.png"


def test_same_stem_inputs_do_not_collide(tmp_path):
    img = np.full((8, 8, 3), 0.5, np.float32)
    stage = FinishStage(str(tmp_path), "h" * 16, comparison_ids=("1", "2"))
    uris = []
    for rid, rel in (("1", "a.jpg"), ("2", "a.png")):
        row = {"id": rid, "relative_path": rel, "restored": pack(img), "lq": pack(img), "hq": b"",
               "grey": False, **no_error()}
        out = stage.finish_row(row)
        assert out["error_stage"] == "", out["error_message"]
        uris.append(out["restored_uri"])
    assert uris == [str(tmp_path / "restored" / "a.jpg.png"), str(tmp_path / "restored" / "a.png")]
    assert sorted(p.name for p in (tmp_path / "comparisons").iterdir()) == ["a.jpg.png", "a.png"]


def test_reference_matches_path_then_unique_stem():
    f = lambda rel: InputFile(f"/in/{rel}", rel)
    r = lambda rel: InputFile(f"/ref/{rel}", rel)
    files = [f("a.jpg"), f("a.png"), f("b.jpg"), f("c.jpg")]
    refs = [r("a.png"), r("a.tif"), r("b.png")]
    assert match_references(files, refs) == {"a.png": "/ref/a.png", "b.jpg": "/ref/b.png"}
