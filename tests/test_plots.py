"""The charts a researcher reads: colours per arm, intervals only where there are some, axes from 0.

Checked on the matplotlib figures themselves (the patches, error bars, limits and legend
placement), not on the size of a PNG.
"""

from matplotlib.colors import to_hex

from ssp.evaluation.compare import bars_figure
from ssp.evaluation.evaluate import chart_figure
from ssp.evaluation.intervals import interval


def _by_arm(seeds: dict[str, list[float]]) -> dict:
    return {
        arm: {m: {"pass@1": interval(v), "pass@4": interval(v)} for m in ("sft", "signal")}
        for arm, v in seeds.items()
    }


def _bars(ax):
    return [c for c in ax.containers if hasattr(c, "patches")]


def test_compare_bars_are_coloured_by_arm_and_one_seed_draws_no_interval():
    fig = bars_figure("heldout", _by_arm({"rl.lam=0": [0.2], "rl.lam=4": [0.3]}))
    ax = fig.axes[0]
    colours = [to_hex(c.patches[0].get_facecolor()) for c in _bars(ax)]
    assert colours[0] == colours[1] != colours[2] == colours[3]  # (arm, model) rows, two arms
    assert all(c.errorbar is None for c in _bars(ax))
    assert "no interval" in fig._suptitle.get_text() and "95%" not in fig._suptitle.get_text()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["rl.lam=0", "rl.lam=4"]
    assert ax.get_xlim()[0] == 0


def test_compare_bars_with_seeds_draw_their_interval_and_the_seeds():
    fig = bars_figure("heldout", _by_arm({"a": [0.2, 0.3, 0.25], "b": [0.1, 0.1, 0.2]}))
    ax = fig.axes[0]
    assert all(c.errorbar is not None for c in _bars(ax))
    half = _bars(ax)[0].errorbar.lines[2][0].get_segments()[0]  # the first bar's interval, in %
    assert abs((half[1][0] - half[0][0]) / 2 - 100 * interval([0.2, 0.3, 0.25])["ci95"]) < 1e-9
    assert "95% interval" in fig._suptitle.get_text()


def test_pass1_chart_starts_at_zero_and_keeps_its_legend_off_the_bars():
    summary = {
        "benchmarks": {"tiny_heldout": {}},
        "results": {"base": {"tiny_heldout": {"pass@1": 0.0}}, "sft": {}},
    }
    fig = chart_figure(summary)
    ax = fig.axes[0]
    assert ax.get_ylim()[0] == 0 and ax.get_ylim()[1] > 0  # all zero: matplotlib alone would go to -0.05
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    assert ax.get_legend().get_window_extent(renderer).x0 >= ax.get_window_extent(renderer).x1
