"""The contiguous low watermark over batches that finish out of order."""

from __future__ import annotations

import pytest

from ometria_sync.pipeline.watermark import Watermark


def test_moves_only_over_a_contiguous_prefix() -> None:
    """Batch 2 and 1 settle before 0: nothing moves until 0 settles, then it jumps to 2."""
    mark = Watermark()
    assert not mark.settle(2, 300, 100)
    assert not mark.settle(1, 200, 100)
    assert mark.position is None and mark.pending == 2
    assert mark.settle(0, 100, 100)
    assert mark.position == 300 and mark.records == 300 and mark.pending == 0


def test_a_gap_holds_the_watermark() -> None:
    mark = Watermark()
    mark.settle(0, 100, 100)
    mark.settle(2, 300, 100)
    assert mark.position == 100


def test_settling_twice_is_a_bug() -> None:
    mark = Watermark()
    mark.settle(0, 100, 1)
    with pytest.raises(ValueError, match="settled twice"):
        mark.settle(0, 100, 1)
