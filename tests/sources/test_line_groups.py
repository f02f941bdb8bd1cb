"""Lines in groups for change detection's fast path (``sources/files/lines.py``)."""

from __future__ import annotations

import itertools
import random

from ometria_sync.sources.files.lines import GROUP_MAX, Line, group_lines


def _lines(n: int, seed: int = 1) -> list[bytes | Line]:
    rnd = random.Random(seed)
    return [b'{"id":"c%d","firstname":"%s"}' % (i, b"x" * rnd.randrange(1, 40))
            for i in range(n)]


def test_groups_cover_every_line_with_exact_positions() -> None:
    """Concatenated, the groups are the lines; each starts where the one before ended, at
    the byte offset and line number the lines add up to."""
    lines = _lines(1000)
    groups = group_lines(lines, 100, 7)
    assert [raw for g in groups for raw in g.lines] == lines
    assert groups[0].start == (100, 7)
    assert all(a.end == b.start for a, b in itertools.pairwise(groups))
    assert groups[-1].end == (100 + sum(len(raw) + 1 for raw in lines), 1007)
    assert 1 < len(groups) < 1000 and max(len(g.lines) for g in groups) <= GROUP_MAX


def test_a_line_inserted_moves_no_other_groups_boundary() -> None:
    """Only the group holding the new line changes: the others are byte for byte the same."""
    lines = _lines(1000)
    before = {b"\n".join(g.lines) for g in group_lines(lines, 0, 0)}  # type: ignore[arg-type]
    changed = [*lines[:500], b'{"id":"new","firstname":"inserted"}', *lines[500:]]
    after = [b"\n".join(g.lines) for g in group_lines(changed, 0, 0)]  # type: ignore[arg-type]
    assert sum(1 for g in after if g not in before) <= 2


def test_a_line_over_the_limit_ends_a_group_that_is_not_plain() -> None:
    """A special line (over the limit, or the last without a newline) is never skipped as it
    is: its group is not plain, and the positions still add up."""
    lines = _lines(10)
    lines[4] = Line(b"{", 5000, 4999, over=True)
    groups = group_lines(lines, 0, 0)
    special = [g for g in groups if not g.plain]
    assert [g.lines for g in special] == [[lines[4]]]
    assert [raw for g in groups for raw in g.lines] == lines
    assert groups[-1].end[1] == 10
    assert all(a.end == b.start for a, b in itertools.pairwise(groups))
