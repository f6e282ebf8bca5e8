"""Numbers as the dashboard page writes them, for the terminal's copy of its figures."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal


def to_fixed(x: float, digits: int) -> str:
    """``x`` with ``digits`` decimals as JavaScript's ``toFixed`` writes it (a tie on the
    exact binary value rounds up, where Python's format rounds to even), so the terminal and
    the page show the same figure."""
    return str(Decimal(x).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))
