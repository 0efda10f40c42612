"""Command-line flags generated from a settings model: one per field, help and default from it.

The model validates; the flags only collect strings. So `--help` and validation read the same
field definitions and cannot drift, and a new setting is a flag (and a GAMESYNC_* variable) the
moment it is declared.
"""

from __future__ import annotations

import argparse
import enum
import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

__all__ = ["add_settings_flags", "flag_help", "given_settings"]


def _plain(annotation: Any) -> Any:
    """The annotation without `None` and `Annotated` wrappers."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _plain(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return _plain(rest[0])
    return annotation


def _choices(annotation: Any) -> list[str] | None:
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [str(member.value) for member in annotation]
    if typing.get_origin(annotation) is Literal:
        return [str(value) for value in typing.get_args(annotation)]
    return None


_METAVARS: dict[Any, str] = {int: "N", float: "NUM", Path: "PATH", str: "TEXT"}


def _shown(default: Any) -> str:
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, float):
        return f"{default:g}"
    if isinstance(default, enum.Enum):
        return str(default.value)
    if isinstance(default, tuple | list):
        return ",".join(map(str, default)) or "none"
    if default == "":
        return '""'
    return str(default)


def flag_help(field: FieldInfo) -> str:
    """One line: the field's description and its default (unless the description says it)."""
    description = field.description or ""
    if "default" not in description:
        description = f"{description} (default: {_shown(field.default)})".strip()
    return description.replace("%", "%%")  # argparse formats help with %


def add_settings_flags(parser: argparse.ArgumentParser, model: type[BaseSettings]) -> None:
    """Add `--field-name` for every field of `model`; unset flags stay out of the namespace."""
    for name, field in model.model_fields.items():
        annotation = _plain(field.annotation)
        flag = "--" + name.replace("_", "-")
        common: dict[str, Any] = {
            "dest": name,
            "default": argparse.SUPPRESS,
            "help": flag_help(field),
        }
        if annotation is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **common)
            continue
        choices = _choices(annotation)
        if choices is not None:
            parser.add_argument(flag, choices=choices, metavar="|".join(choices), **common)
            continue
        is_list = typing.get_origin(annotation) is tuple
        metavar = "A,B" if is_list else _METAVARS.get(annotation, "TEXT")
        parser.add_argument(flag, metavar=metavar, **common)


def given_settings(args: argparse.Namespace, model: type[BaseSettings]) -> dict[str, Any]:
    """The settings given as flags, by field name, as strings for the model to validate."""
    return {name: getattr(args, name) for name in model.model_fields if hasattr(args, name)}
