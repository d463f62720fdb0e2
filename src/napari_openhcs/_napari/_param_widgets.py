"""magicgui widgets for a function's parameters, generated from its ``ParameterSpec`` s."""

from __future__ import annotations

import logging
import typing
from typing import Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FloatSlider,
    FloatSpinBox,
    LineEdit,
    LiteralEvalLineEdit,
    Slider,
    SpinBox,
    create_widget,
)
from magicgui.widgets.bases import ValueWidget

logger = logging.getLogger(__name__)

_BIG = 1e9


def _plain_type(annotation: Any) -> Any:
    """Return ``int``/``float``/``bool``/``str`` for simple annotations (``X | None`` included)."""
    if annotation in (int, float, bool, str):
        return annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if len(args) == 1 and args[0] in (int, float, bool, str):
        return args[0]
    return None


def widget_for_parameter(spec: Any, value: Any = None, *, explicit: bool = False) -> ValueWidget:
    """Return a magicgui widget editing one parameter.

    Parameters
    ----------
    spec : ParameterSpec
        ``annotation``, ``default``, ``choices``, ``min``/``max``/``step``, ``description``.
    value : Any
        The current value (the default when ``explicit`` is false).
    explicit : bool
        Whether the step sets this argument (the label is then shown in bold).

    Returns
    -------
    ValueWidget
        A slider for a bounded number, a dropdown for choices, a spin box, check box
        or line edit for plain types, and a Python-literal line edit for anything else.
    """
    if not explicit:
        value = spec.default
    label = spec.name + (" *" if spec.required else "")
    tip = spec.description or ""
    if spec.required:
        tip = (tip + "\n" if tip else "") + "required: the step fails until it is set"
    common: dict[str, Any] = {"name": spec.name, "label": label, "tooltip": tip or None}
    kind = _plain_type(spec.annotation)
    if kind is None and value is not None and type(value) in (int, float, bool, str):
        kind = type(value)
    try:
        if spec.choices:
            choices = list(spec.choices)
            return ComboBox(choices=choices, value=value if value in choices else choices[0], **common)
        if kind is bool:
            return CheckBox(value=bool(value), **common)
        if kind in (int, float) and (value is None or isinstance(value, int | float)):
            lo = spec.min if spec.min is not None else -_BIG
            hi = spec.max if spec.max is not None else _BIG
            start = value if value is not None else (spec.min if spec.min is not None else 0)
            start = min(max(start, lo), hi)
            bounded = spec.min is not None and spec.max is not None
            if kind is int:
                step = int(spec.step or 1)
                cls = Slider if bounded else SpinBox
                return cls(value=int(start), min=int(lo), max=int(hi), step=step, **common)
            step = spec.step or ((hi - lo) / 100 if bounded else 0.1)
            if bounded:
                return FloatSlider(value=float(start), min=lo, max=hi, step=step, **common)
            return FloatSpinBox(value=float(start), min=lo, max=hi, step=step, **common)
        if kind is str:
            return LineEdit(value="" if value is None else value, **common)
        if spec.annotation not in (None, typing.Any):
            widget = create_widget(value=value, annotation=spec.annotation, **common)
            if isinstance(widget, ValueWidget):
                return widget
    except Exception as exc:  # an annotation magicgui cannot show: fall back to a literal
        logger.debug("no widget for %s (%s); using a literal editor", spec.name, exc)
    widget = LiteralEvalLineEdit(**common)
    widget.native.setText(repr(value))
    return widget


def widget_value(widget: ValueWidget) -> Any:
    """Return the value a widget holds, as a step argument.

    Raises
    ------
    ValueError
        If a literal editor holds text that is not a Python literal.
    """
    try:
        return widget.value
    except SyntaxError as exc:
        raise ValueError(f"{widget.name}: not a Python literal ({exc.msg})") from None


def set_widget_value(widget: ValueWidget, value: Any) -> None:
    """Show ``value`` in ``widget`` without emitting ``changed``."""
    with widget.changed.blocked():
        if isinstance(widget, LiteralEvalLineEdit):
            widget.native.setText(repr(value))
        else:
            widget.value = value
