"""The one error type the project raises for bad input.

Every message names where the bad value came from (a file, a config key, a CLI flag) so the CLI and
the site build can print one line and exit non-zero instead of a traceback.
"""

from __future__ import annotations


class CalcError(ValueError):
    """Bad input: ``source`` is a file path or ``"config"``/``"--flag"``, ``field`` the offending key."""

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None) -> None:
        self.message = message
        self.source = source
        self.field = field
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.source, self.field) if part)
        return f"{where}: {self.message}" if where else self.message

    def located(self, source: str) -> "CalcError":
        """The same error, attributed to ``source`` (e.g. the file the config came from)."""
        return CalcError(self.message, source=source, field=self.field)
