"""Input rules shared by the web form and the REST API."""

from __future__ import annotations

import unicodedata

from django.core.exceptions import ValidationError

# Cc: C0/C1 controls (CR, LF, NUL, TAB, ESC...); Zl/Zp: the Unicode line and paragraph separators.
# Format characters (Cf) stay allowed: emoji sequences need the zero-width joiner, RTL names need marks.
_FORBIDDEN_CATEGORIES = {"Cc", "Zl", "Zp"}


def validate_single_line_text(value: str) -> None:
    """A name ends up in e-mail headers and PDFs: a line break or control character there is never legitimate."""
    if any(unicodedata.category(char) in _FORBIDDEN_CATEGORIES for char in value):
        raise ValidationError(
            "Use letters, spaces and punctuation only: line breaks and control characters are not allowed.",
            code="control_characters",
        )
