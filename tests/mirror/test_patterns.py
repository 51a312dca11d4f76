"""Tag patterns: the table of seed 001 §8.9 and the patterns refused."""

from __future__ import annotations

import pytest

from services.mirror.patterns import InvalidPatternError, parse_patterns, select_tags

# Every tag the seed's examples mention.
SEED_TAGS = ["v32", "v3.1", "v3.2", "v3.2-4beta", "v3.3"]

# Seed 001 §8.9.2, "Example Pattern | Example Matches". The seed lists examples: under the glob
# syntax of §8.9.1 `v3.*` also matches v3.3 (`*` matches all characters), which the table's row
# leaves out; the row is checked as listed, plus v3.3.
SEED_TABLE = [
    ("v3*", ["v32", "v3.1", "v3.2", "v3.2-4beta", "v3.3"]),
    ("v3.*", ["v3.1", "v3.2", "v3.2-4beta", "v3.3"]),
    ("v3.?", ["v3.1", "v3.2", "v3.3"]),
    ("v3.[12]", ["v3.1", "v3.2"]),
    ("v3.[12]*", ["v3.1", "v3.2", "v3.2-4beta"]),
    ("v3.[!1]*", ["v3.2", "v3.2-4beta", "v3.3"]),
]


@pytest.mark.parametrize(("pattern", "expected"), SEED_TABLE)
def test_seed_pattern_table(pattern: str, expected: list[str]) -> None:
    assert select_tags(SEED_TAGS, parse_patterns([pattern])) == sorted(expected)


def test_patterns_combine_and_rule_values_may_be_comma_separated() -> None:
    patterns = parse_patterns(["v3.[12], latest", "v32"])
    assert patterns == ["v3.[12]", "latest", "v32"]
    assert select_tags([*SEED_TAGS, "latest", "v4"], patterns) == ["latest", "v3.1", "v3.2", "v32"]


def test_matching_is_case_sensitive_and_whole_tag() -> None:
    assert select_tags(["Latest", "latest", "latest-1"], parse_patterns(["latest"])) == ["latest"]


@pytest.mark.parametrize("pattern", ["", " ", "v3[", "v3[]", "v3]", "a b", "v3.[^1]", "!v3", "v3/1", "v3,"])
def test_invalid_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(InvalidPatternError):
        parse_patterns([pattern])


def test_at_least_one_pattern_is_required() -> None:
    with pytest.raises(InvalidPatternError):
        parse_patterns([])
