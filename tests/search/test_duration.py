"""Durations as a user writes them (``salttune.search.duration``)."""

import pytest

from salttune.search.duration import format_duration, parse_duration


@pytest.mark.parametrize("text, seconds", [
    ("90s", 90), ("45m", 2700), ("2h", 7200), ("1h30m", 5400), ("1h30m15s", 5415), ("1.5h", 5400), ("2m30s", 150),
    (" 2H ", 7200), ("5400", 5400), ("0.5", 0.5), (40, 40), (12.5, 12.5),
])
def test_durations_in_seconds(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["2x", "h", "", "  ", "1m2h", "2hh", "-5m", "1d", "0", 0, -3, "nan", "inf", True, None, [1]])
def test_bad_durations_name_the_value_and_the_forms(text):
    with pytest.raises(ValueError) as e:
        parse_duration(text)
    assert repr(text) in str(e.value) and "90s, 45m, 2h, 1h30m" in str(e.value)


@pytest.mark.parametrize("seconds, text", [(7200, "2h"), (5400, "1h30m"), (40, "40s"), (95, "1m35s"), (3661, "1h1m1s"), (2.5, "2.5s")])
def test_durations_print_as_they_are_written(seconds, text):
    assert format_duration(seconds) == text and parse_duration(text) == seconds


def test_planned_shares_print_in_whole_seconds_past_a_minute():
    assert format_duration(150.7847) == "2m31s" and format_duration(95.5) == "1m36s" and format_duration(12.34) == "12.3s"
