"""Tag patterns (Quay's `tag_glob_csv` root rule): Unix shell-style globs, a tag is mirrored when any matches.

Syntax: `*` any characters, `?` one character, `[seq]` one character of seq (ranges such as `0-9`
allowed), `[!seq]` one character not in seq. Each rule value may itself be a comma-separated list.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

# Tag characters plus the glob syntax; anything else could never match a tag.
_PATTERN_TOKEN = re.compile(r"\[!?[A-Za-z0-9_.-]+\]|[A-Za-z0-9_.*?-]")


class InvalidPatternError(ValueError):
    """A tag pattern that is empty or not a glob over tag characters; the message says which."""


def check_pattern(pattern: str) -> str:
    """The pattern itself when valid; InvalidPatternError otherwise (empty, an unclosed or empty
    `[`, characters a tag cannot hold)."""
    if not pattern:
        raise InvalidPatternError("a tag pattern cannot be empty")
    position = 0
    while position < len(pattern):
        token = _PATTERN_TOKEN.match(pattern, position)
        if token is None:
            raise InvalidPatternError(
                f"invalid tag pattern {pattern!r} at position {position}: use tag characters"
                " [A-Za-z0-9_.-] and the wildcards *, ?, [seq], [!seq]"
            )
        position = token.end()
    return pattern


def parse_patterns(values: Iterable[str]) -> list[str]:
    """The patterns of Quay's rule_value list (items may be comma-separated), validated, in order,
    without repeats; InvalidPatternError for a bad one or when there is none."""
    patterns = [check_pattern(part.strip()) for value in values for part in value.split(",")]
    if not patterns:
        raise InvalidPatternError("at least one tag pattern is required")
    return list(dict.fromkeys(patterns))


def matches(tag: str, patterns: Iterable[str]) -> bool:
    """True when any pattern matches the whole tag (case-sensitive, as tags are)."""
    return any(fnmatch.fnmatchcase(tag, pattern) for pattern in patterns)


def select_tags(tags: Iterable[str], patterns: Iterable[str]) -> list[str]:
    """The tags that match any pattern, sorted, each once."""
    wanted = list(patterns)
    return sorted({tag for tag in tags if matches(tag, wanted)})
