"""Progress lines: counts, elapsed time, and an ETA from the timed units only."""

from ssp.core.progress import Progress, duration


def test_eta_is_the_mean_of_timed_units_times_the_units_left(monkeypatch):
    clock = iter([100.0, 110.0, 130.0, 150.0])  # start, then after each unit
    monkeypatch.setattr("ssp.core.progress.time.monotonic", lambda: next(clock))
    p = Progress(4)
    assert p.step(timed=False) == "1/4 done, 10s elapsed"  # reused: no time to extrapolate from
    assert p.step() == "2/4 done, 30s elapsed, ETA 1m00s"  # 30 s over 1 timed unit, 2 left
    assert p.step() == "3/4 done, 50s elapsed, ETA 25s"  # 50 s over 2 timed units, 1 left


def test_no_eta_when_units_differ_in_size(monkeypatch):
    clock = iter([0.0, 5.0])
    monkeypatch.setattr("ssp.core.progress.time.monotonic", lambda: next(clock))
    assert Progress(6, eta=False).step() == "1/6 done, 5s elapsed"


def test_durations():
    assert [duration(s) for s in (4.4, 65, 3600 + 125)] == ["4s", "1m05s", "1h02m"]
