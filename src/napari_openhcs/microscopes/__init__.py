"""Microscope formats: each handler turns a plate folder into a :class:`Plate`."""

from .plate import ChannelInfo, ImageRecord, Plate

__all__ = ["ChannelInfo", "ImageRecord", "Plate"]
