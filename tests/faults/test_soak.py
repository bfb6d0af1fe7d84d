"""The soak's CI variant: a smaller steady load through the whole lifecycle, no error.

The full soak (1,000 conversations, several minutes here) is a script, tests/faults/soak.py,
run by hand; its figures are in README.md. This variant checks the same things on fewer
conversations and prints the same figures. Memory is bounded generously: a leak of even half a
megabyte per conversation would break it, a warm-up or a garbage-collector spike would not.
"""

from __future__ import annotations

import pytest

from tests.faults.conftest import LabFactory
from tests.faults.soak import MB, soak

pytestmark = pytest.mark.slow

CONVERSATIONS = 100
MAX_GROWTH = 50 * MB


async def test_soak_whole_lifecycle_no_error(labs: LabFactory) -> None:
    report = await soak(await labs("soak"), CONVERSATIONS)
    print("\n".join(report.lines()))
    assert report.errors == []
    assert report.completed == CONVERSATIONS
    assert report.final_rss - report.warm_rss < MAX_GROWTH
