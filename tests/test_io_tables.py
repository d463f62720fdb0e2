"""Per-well measurement tables and the consolidated plate table."""

from __future__ import annotations

import csv
import errno

import numpy as np
import pytest

from napari_openhcs.io import (
    StorageFullError,
    combine_well_tables,
    inject_fault,
    read_table_csv,
    well_table_path,
    write_table_csv,
)


def test_write_columns_and_rows(tmp_path):
    path = write_table_csv(
        tmp_path / "t.csv",
        {"label": np.array([1, 2], np.int32), "area": np.array([10.5, np.nan], np.float32)},
    )
    assert path.read_text() == "label,area\n1,10.5\n2,nan\n"
    write_table_csv(tmp_path / "r.csv", [{"a": 1, "b": "x, y"}, {"b": None, "c": 0.1}])
    rows = list(csv.reader((tmp_path / "r.csv").read_text().splitlines()))
    assert rows == [["a", "b", "c"], ["1", "x, y", ""], ["", "", "0.1"]]
    back = read_table_csv(tmp_path / "t.csv")
    assert back["label"].tolist() == [1, 2]
    assert back["area"][0] == pytest.approx(10.5) and np.isnan(back["area"][1])


def test_columns_of_different_lengths_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="different lengths"):
        write_table_csv(tmp_path / "t.csv", {"a": [1, 2], "b": [1]})
    assert not (tmp_path / "t.csv").exists()


def test_combine_well_tables(tmp_path):
    write_table_csv(well_table_path(tmp_path, "cells", "b3"), {"label": [1, 2], "area": [5, 6]})
    write_table_csv(well_table_path(tmp_path, "cells", "A10"), {"label": [1], "mean": [0.5]})
    write_table_csv(well_table_path(tmp_path, "cells", "A02"), {"label": []})
    (tmp_path / "cells" / "notes.csv").write_text("x\n1\n")
    out = combine_well_tables(tmp_path, "cells")
    assert out == tmp_path / "cells.csv"
    rows = list(csv.reader(out.read_text().splitlines()))
    assert rows == [
        ["well", "label", "mean", "area"],
        ["A10", "1", "0.5", ""],
        ["B03", "1", "", "5"],
        ["B03", "2", "", "6"],
    ]


def test_table_write_on_full_disk(tmp_path):
    with inject_fault(errno.ENOSPC, after_bytes=3):
        with pytest.raises(StorageFullError, match="t.csv"):
            write_table_csv(tmp_path / "t.csv", {"a": list(range(100))})
    assert list(tmp_path.iterdir()) == []
