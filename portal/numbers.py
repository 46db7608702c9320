"""Parsing whole numbers people and programs type."""


def is_digits(text: str) -> bool:
    """True for ASCII digits only: "²".isdigit() and "٣".isdigit() are True, but int() refuses "²"."""
    return text.isascii() and text.isdigit()
