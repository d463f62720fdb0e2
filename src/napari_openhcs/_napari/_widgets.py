"""npe2 widget contributions: one dock class per view, all sharing the viewer's session.

napari builds a widget contribution by calling the class named in ``napari.yaml``
with ``napari_viewer=`` (a ``PublicOnlyProxy`` of the viewer). Each dock unwraps
the proxy, so every dock of one viewer finds the same :class:`HCSSession`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._qt.measurements import MeasurementsWidget
from ._qt.pipeline_editor import PipelineEditorWidget
from ._qt.plate_map import PlateMapWidget
from ._qt.preview import PreviewWidget
from ._qt.run_plate import RunPlateWidget
from ._session import real_viewer, session_for

if TYPE_CHECKING:
    import napari.viewer
    from qtpy.QtWidgets import QWidget


class PlateMapDock(PlateMapWidget):
    """*Plugins → napari-openhcs → Plate map*: the plate map of the viewer's session."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        viewer = real_viewer(napari_viewer)
        super().__init__(session_for(viewer), viewer, parent)


class PipelineEditorDock(PipelineEditorWidget):
    """*Plugins → napari-openhcs → Pipeline editor*: edits the session's pipeline."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(session_for(real_viewer(napari_viewer)).pipeline, parent)


class PreviewDock(PreviewWidget):
    """*Plugins → napari-openhcs → Preview*: runs the pipeline on the selected well."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        viewer = real_viewer(napari_viewer)
        super().__init__(session_for(viewer), viewer, parent)


class RunPlateDock(RunPlateWidget):
    """*Plugins → napari-openhcs → Run plate*: runs the pipeline on the plate."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        viewer = real_viewer(napari_viewer)
        super().__init__(session_for(viewer), viewer, parent)


class MeasurementsDock(MeasurementsWidget):
    """*Plugins → napari-openhcs → Measurements*: the tables of the session's last run."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(session_for(real_viewer(napari_viewer)), parent)
