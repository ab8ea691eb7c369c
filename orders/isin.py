"""ISIN syntax and check digit (ISO 6166)."""

import re

ISIN_PATTERN = re.compile(r"^[A-Z]{2}[A-Z0-9]{9}[0-9]$")


def isin_check_digit(body: str) -> int:
    """The check digit for the first eleven characters of an ISIN (Luhn over digits)."""
    digits = "".join(str(int(char, 36)) for char in body)
    total = 0
    # Double every second digit counting from the right, starting with the rightmost.
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return (10 - total % 10) % 10


def is_valid_isin(value: str) -> bool:
    return bool(ISIN_PATTERN.match(value)) and isin_check_digit(value[:11]) == int(value[11])
