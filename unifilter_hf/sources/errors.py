"""The source layer's error type and the field that marks a row that could not even be parsed."""

from __future__ import annotations

from ..errors import UniFilterError

__all__ = ["ERROR_FIELD", "SourceError"]

# Set on a row that could not be parsed (bad JSON line, CSV record, oversized tar member); its value is the
# reason, naming the file and the line or member. The curation decoder reads the same name.
ERROR_FIELD = "__error__"


class SourceError(UniFilterError, ValueError):
    """A source that cannot be opened or read; the message is one line naming the file and the fix."""
