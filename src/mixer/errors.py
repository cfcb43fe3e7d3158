"""Errors a user can act on.

Every failure the user can fix is a :class:`MixerError` carrying the exit code the CLI
returns: 2 for a bad recipe or usage, 1 for a data problem. The CLI prints the message
and never a traceback; library users catch the same classes.
"""

from __future__ import annotations


class MixerError(Exception):
    """Base class: a message meant for the user, plus the CLI exit code."""

    exit_code = 1


class RecipeError(MixerError):
    """The recipe (or a --set override, or a CLI argument) is wrong: exit 2."""

    exit_code = 2


class DataError(MixerError):
    """An input file or the data in it is wrong, or a target cannot be met: exit 1."""

    exit_code = 1


class OutputError(MixerError):
    """The output cannot be written (exists, unwritable, inside an input): exit 1."""

    exit_code = 1


def located(reason: str, where: str | None = None, at: str | None = None) -> str:
    """A problem with one record as one line: ``where: reason at at`` (``messages[3]: unknown role
    'bot'``, ``empty user turn at position 2``). The manifest counts ``reason`` alone, which is the
    same for every record with the problem; ``where`` and ``at`` say where in this one it is."""
    return (f"{where}: " if where else "") + reason + (f" at {at}" if at else "")
