"""Defensive XML reading for instrument metadata files.

Instrument XML (Harmony ``Index.idx.xml``, Yokogawa ``.mlf``/``.mrf``) is parsed with
:mod:`xml.etree.ElementTree`. Before parsing, the file is scanned for ``<!DOCTYPE`` and
``<!ENTITY`` declarations and refused if it has any: instrument files never need a DTD,
and refusing them rules out entity-expansion attacks. Every parse error is turned into a
:class:`~napari_openhcs.microscopes.detect.PlateFormatError` naming the file.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from .detect import PlateFormatError

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
_FORBIDDEN = tuple(
    token.encode(enc)
    for token in ("<!DOCTYPE", "<!ENTITY")
    for enc in ("utf-8", "utf-16-le", "utf-16-be")
)
_OVERLAP = max(len(t) for t in _FORBIDDEN)


@lru_cache(maxsize=4096)
def local_name(tag: str) -> str:
    """Return ``tag`` without its ``{namespace}`` prefix."""
    return tag.rsplit("}", 1)[-1]


def namespace(tag: str) -> str:
    """Return the namespace of ``tag`` (``""`` when it has none)."""
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def local_attrib(elem: ET.Element) -> dict[str, str]:
    """Return ``elem``'s attributes keyed by their local names (namespace stripped)."""
    if not elem.attrib:
        return {}
    return {local_name(k): v for k, v in elem.attrib.items()}


def child_texts(elem: ET.Element) -> dict[str, tuple[str, dict[str, str]]]:
    """Return ``{local name: (text, attributes)}`` of ``elem``'s direct children.

    The first child of a given name wins; text is stripped (``""`` when empty).
    """
    out: dict[str, tuple[str, dict[str, str]]] = {}
    for child in elem:
        name = local_name(child.tag)
        if name not in out:
            out[name] = ((child.text or "").strip(), local_attrib(child))
    return out


def check_no_doctype(path: Path) -> None:
    """Refuse ``path`` if it declares a DOCTYPE or ENTITY anywhere.

    Raises
    ------
    PlateFormatError
        If the file cannot be read or contains a DTD declaration.
    """
    try:
        with open(path, "rb") as fh:
            tail = b""
            while chunk := fh.read(_CHUNK):
                window = tail + chunk
                if any(token in window for token in _FORBIDDEN):
                    raise PlateFormatError(
                        f"{path}: refusing XML with a DOCTYPE or ENTITY declaration "
                        "(instrument metadata files never need one)"
                    )
                tail = window[-_OVERLAP:]
    except OSError as exc:
        raise PlateFormatError(f"cannot read metadata file {path}: {exc}") from exc


def _parse_error(path: Path, exc: ET.ParseError) -> PlateFormatError:
    line, col = getattr(exc, "position", (0, 0))
    return PlateFormatError(
        f"{path}: malformed or truncated XML (line {line}, column {col}): {exc}. "
        "Re-export the metadata file from the instrument software."
    )


def iter_elements(path: Path) -> Iterator[tuple[str, ET.Element]]:
    """Stream ``(event, element)`` pairs (``"start"``/``"end"``) from an XML file.

    The caller may ``clear()`` elements after their ``"end"`` event to keep memory flat.

    Raises
    ------
    PlateFormatError
        If the file is unreadable, declares a DTD, or is malformed/truncated.
    """
    check_no_doctype(path)
    try:
        yield from ET.iterparse(path, events=("start", "end"))
    except ET.ParseError as exc:
        raise _parse_error(path, exc) from None
    except OSError as exc:
        raise PlateFormatError(f"cannot read metadata file {path}: {exc}") from exc


def parse_file(path: Path) -> ET.Element:
    """Parse a (small) XML file and return its root element.

    Raises
    ------
    PlateFormatError
        If the file is unreadable, declares a DTD, or is malformed/truncated.
    """
    check_no_doctype(path)
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise _parse_error(path, exc) from None
    except OSError as exc:
        raise PlateFormatError(f"cannot read metadata file {path}: {exc}") from exc
