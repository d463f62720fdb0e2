"""npe2 widget contributions: one dock per view, all sharing the viewer's session."""

import napari.viewer
from qtpy.QtWidgets import QWidget

from ._session import session_for


def plate_map_widget(napari_viewer: napari.viewer.Viewer) -> QWidget:
    """Return the plate map dock for ``napari_viewer``."""
    from ._qt.plate_map import PlateMapWidget

    return PlateMapWidget(session_for(napari_viewer), napari_viewer)


def pipeline_editor_widget(napari_viewer: napari.viewer.Viewer) -> QWidget:
    """Return the pipeline editor dock for ``napari_viewer``."""
    from ._qt.pipeline_editor import PipelineEditorWidget

    return PipelineEditorWidget(session_for(napari_viewer).pipeline)


def preview_widget(napari_viewer: napari.viewer.Viewer) -> QWidget:
    """Return the preview dock for ``napari_viewer``."""
    from ._qt.preview import PreviewWidget

    return PreviewWidget(session_for(napari_viewer), napari_viewer)


def run_plate_widget(napari_viewer: napari.viewer.Viewer) -> QWidget:
    """Return the run plate dock for ``napari_viewer``."""
    from ._qt.run_plate import RunPlateWidget

    return RunPlateWidget(session_for(napari_viewer), napari_viewer)


def measurements_widget(napari_viewer: napari.viewer.Viewer) -> QWidget:
    """Return the measurements dock for ``napari_viewer``."""
    from ._qt.measurements import MeasurementsWidget

    return MeasurementsWidget(session_for(napari_viewer))
