"""Qt dock widgets (thin views over the pure models of :mod:`napari_openhcs._napari`)."""
