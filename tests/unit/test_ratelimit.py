"""The shared rate limiter on a real SQLite file: a burst across a window boundary is still limited."""

import pytest

from portal.db import make_engine, migrate
from portal.web.ratelimit import hit


@pytest.fixture
def engine(tmp_path):
    url = f"sqlite:///{tmp_path / 'rl.db'}"
    migrate(url)
    return make_engine(url)


def test_limit_within_one_window(engine):
    decisions = [hit(engine, "k", 3, 60, now=1000.0 + i) for i in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[-1].retry_after_s > 0


def test_burst_straddling_a_window_boundary_is_limited(engine):
    for i in range(3):  # the last seconds of one window …
        assert hit(engine, "k", 3, 60, now=1079.0 + i * 0.1).allowed
    assert not hit(engine, "k", 3, 60, now=1080.5).allowed  # … and the first second of the next


def test_old_windows_fade_out(engine):
    for i in range(3):
        hit(engine, "k", 3, 60, now=1000.0 + i)
    assert hit(engine, "k", 3, 60, now=1200.0).allowed  # two windows later nothing is left
    assert hit(engine, "other", 3, 60, now=1000.0).allowed  # keys are independent
