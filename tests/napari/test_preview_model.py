"""Preview scheduling (re-run from the changed step) and preview layers, without Qt."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine_steps import max_project, normalize, scale
from napari_openhcs import FunctionStep, open_plate
from napari_openhcs._napari._preview_model import PreviewScheduler, preview_layers
from napari_openhcs.core.preview import StepPreview, WellPreview


def fake_preview(well: str = "A01", site: int | None = None) -> WellPreview:
    return WellPreview(well=well, site=site)


def test_first_run_starts_at_zero_then_from_the_changed_step() -> None:
    sched = PreviewScheduler()
    req = sched.next_request([], "A01", None)
    assert req.start == 0 and req.previous is None
    done = fake_preview()
    assert sched.finished(req, done)
    assert not sched.is_dirty
    sched.invalidate(3)
    sched.invalidate(2)
    req = sched.next_request([], "A01", None)
    assert req.start == 2 and req.previous is done


def test_another_well_starts_from_scratch() -> None:
    sched = PreviewScheduler()
    sched.finished(sched.next_request([], "A01", None), fake_preview())
    sched.invalidate(2)
    req = sched.next_request([], "A02", None)
    assert req.start == 0 and req.previous is None
    sched.finished(req, fake_preview("A02"))
    sched.target_changed()
    sched.invalidate(1)
    assert sched.next_request([], "A02", None).start == 0


def test_a_superseded_run_is_stale_and_its_steps_stay_dirty() -> None:
    sched = PreviewScheduler()
    sched.finished(sched.next_request([], "A01", None), fake_preview())
    sched.invalidate(1)
    first = sched.next_request([], "A01", None)
    sched.invalidate(3)  # change while running: the next run must still start at 1
    second = sched.next_request([], "A01", None)
    assert second.start == 1
    assert not sched.finished(first, fake_preview())  # stale
    assert sched.finished(second, fake_preview())


def test_a_cancelled_preview_keeps_its_steps_dirty() -> None:
    sched = PreviewScheduler()
    sched.finished(sched.next_request([], "A01", None), fake_preview())
    sched.invalidate(2)
    req = sched.next_request([], "A01", None)
    cancelled = fake_preview()
    cancelled.cancelled = True
    sched.finished(req, cancelled)
    assert sched.dirty_from == 2


def step_preview(index: int, name: str, channels: int = 2, sites=(1,)) -> StepPreview:
    fields = {s: np.full((channels, 1, 1, 8, 8), s, np.float32) for s in sites}
    return StepPreview(index=index, name=name, channel_names=["DAPI", "FITC"][:channels],
                       channel_colors=["0000FF", "00FF00"][:channels], data=fields[sites[0]], fields=fields,
                       scale_um=(2.0, 0.5, 0.5), tables={}, elapsed_s=0.01)


def test_layers_are_named_by_list_position_including_disabled_steps() -> None:
    steps = [FunctionStep(func=normalize, name="norm"),
             FunctionStep(func=max_project, name="off", enabled=False),
             FunctionStep(func=scale, name="scale")]
    preview = fake_preview(site=1)
    preview.steps = [step_preview(0, "norm"), step_preview(1, "scale")]
    layers = preview_layers(preview, steps)
    assert [kw["name"] for _, kw, _ in layers] == ["1 norm [DAPI]", "1 norm [FITC]", "3 scale [DAPI]",
                                                   "3 scale [FITC]"]
    data, kwargs, kind = layers[1]
    assert kind == "image" and data.shape == (1, 1, 8, 8)
    assert kwargs["colormap"] == "#00FF00"
    assert kwargs["scale"] == (1.0, 2.0, 0.5, 0.5)


def test_sites_are_pasted_at_their_stage_positions(tiny_plate: Path) -> None:
    plate = open_plate(tiny_plate)
    px = plate.pixel_size_um
    preview = fake_preview("A01")
    sp = step_preview(0, "norm", channels=1, sites=plate.sites)
    sp.fields = {s: np.full((1, 1, 1, *plate.image_shape), s, np.float32) for s in plate.sites}
    sp.scale_um = (1.0, px, px)
    preview.steps = [sp]
    (data, kwargs, _), = preview_layers(preview, [FunctionStep(func=normalize, name="norm")], plate)
    positions = {s: plate.site_position_um("A01", s) for s in plate.sites}
    y0 = min(p[0] for p in positions.values())
    x0 = min(p[1] for p in positions.values())
    assert kwargs["translate"][-2:] == (y0, x0)
    for s, (y, x) in positions.items():
        r, c = round((y - y0) / px), round((x - x0) / px)
        assert data[0, 0, r, c] == s  # a site's first pixel is its own (later sites overlap)
    h, w = plate.image_shape
    assert data.shape[-2:] == (round((max(p[0] for p in positions.values()) - y0) / px) + h,
                               round((max(p[1] for p in positions.values()) - x0) / px) + w)


def test_tables_with_centroids_become_points() -> None:
    preview = fake_preview(site=1)
    sp = step_preview(0, "count", channels=1)
    sp.tables = {"nuclei": {"label": np.array([1, 2]), "centroid_y": np.array([2.0, 4.0]),
                            "centroid_x": np.array([6.0, 8.0])}}
    preview.steps = [sp]
    layers = preview_layers(preview, [FunctionStep(func=normalize, name="count")])
    points = [ld for ld in layers if ld[2] == "points"]
    assert len(points) == 1
    data, kwargs, _ = points[0]
    np.testing.assert_allclose(data, [[1.0, 3.0], [2.0, 4.0]])
    assert kwargs["name"] == "1 count [nuclei]"
    assert list(kwargs["features"]["label"]) == [1, 2]
