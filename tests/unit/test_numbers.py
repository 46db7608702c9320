from portal.numbers import is_digits


def test_only_ascii_digits_count():
    assert is_digits("0") and is_digits("1234567890")
    for text in ("", " 1", "1.5", "-1", "²", "٣", "１", "1²"):
        assert not is_digits(text), text
