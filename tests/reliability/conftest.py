"""Fixtures of the reliability suite: pristine plates, an uninterrupted baseline run,
and the bookkeeping the report (``make_report.py``) aggregates.

Every test module sets ``pytestmark = pytest.mark.category("<name>")``; the category
and the number of wells whose data was lost (``data_lost``) are recorded as JUnit XML
properties of each test case.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from napari_openhcs.testing import make_synthetic_plate

from ._support import (
    WELLS,
    Snapshot,
    check_plate_valid,
    lost_wells,
    register_functions,
    run,
    snapshot,
    unregister_functions,
)

CATEGORY_MARKER = "category"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{CATEGORY_MARKER}(name): reliability fault category (a report row)")


@pytest.fixture(autouse=True)
def _record_category(request: pytest.FixtureRequest, record_property: Callable[[str, object], None]) -> None:
    marker = request.node.get_closest_marker(CATEGORY_MARKER)
    if marker is None:
        raise pytest.UsageError(f"{request.node.nodeid} has no @pytest.mark.category(...)")
    record_property("category", marker.args[0])


@pytest.fixture(scope="session")
def tiny_plate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pristine "tiny" synthetic ImageXpress plate, with four wells. Never modified."""
    return make_synthetic_plate(tmp_path_factory.mktemp("pristine"), spec="tiny", seed=0, wells=WELLS)


@pytest.fixture(scope="session")
def baseline(tiny_plate: Path, tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    """Output of an uninterrupted run of the reliability pipeline on the pristine plate."""
    out = tmp_path_factory.mktemp("baseline")
    results = run(tiny_plate, out)
    assert all(r.status == "done" for r in results.values()), {w: r.error for w, r in results.items()}
    snap = snapshot(out)
    assert sorted(snap.images) == sorted(WELLS) and sorted(snap.tables) == sorted(WELLS)
    return snap


@pytest.fixture
def nothing_lost(baseline: Snapshot, record_property: Callable[[str, object], None]) -> Callable[..., None]:
    """Assert the output is valid and ``wells`` equal the baseline; record ``data_lost``.

    ``data_lost`` is the number of those wells whose images or table are missing or
    differ from the uninterrupted run (the report's "data lost" column). Wells that
    are expected to fail are passed as ``absent``: they must be neither listed in the
    plate nor have tables. ``exact=False`` allows complete wells on disk that are not
    yet listed (a run killed between a well's rename and the plate update).
    """

    def check(out: Path, wells: Iterable[str], absent: Iterable[str] = (), *, exact: bool = True) -> None:
        wells = sorted(wells)
        lost = lost_wells(out, baseline, wells)
        record_property("data_lost", len(lost))
        record_property("wells_compared", len(wells))
        assert not lost, f"data lost or changed in wells {lost}"
        listed = check_plate_valid(out, exact=exact)
        assert set(wells) <= set(listed)
        shown = sorted(set(absent) & set(listed))
        assert not shown, f"wells {shown} should not be in the output plate"
        tables = sorted(w for w in absent if (out / "tables" / "stats" / f"{w}.csv").exists())
        assert not tables, f"tables of wells {tables} that did not complete were left behind"

    return check


@pytest.fixture
def registered_functions() -> Iterator[None]:
    """Register the suite's step functions by name for one test (pipeline files need names)."""
    register_functions()
    yield
    unregister_functions()
