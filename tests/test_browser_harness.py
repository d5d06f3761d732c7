"""The browser harness (tests/browser.py) must catch what breaks a report in a real browser, and pass a good one.

Each page is a plotly figure written as the reports are (plotly.js inline, one self-contained file)."""
import plotly.graph_objects as go
import plotly.io as pio
import pytest
from plotly.subplots import make_subplots

from browser import assert_clean, assert_plots_have_data, inspect_page, launch_browser

TABLE = "<table id='scores'><caption>Scores</caption><tr><th>net</th><th>ms</th></tr><tr><td>a</td><td>1</td></tr></table>"


def write_page(tmp_path, fig, name, head="", body=""):
    html = pio.to_html(fig, include_plotlyjs=True, full_html=True, div_id=name)
    html = html.replace("<head>", f"<head><title>{name}</title>{head}", 1).replace("<body>", f"<body>{body}", 1)
    path = tmp_path / f"{name}.html"
    path.write_text(html)
    return path


def inspect(browser, path):
    return inspect_page(browser, path, path.with_suffix(".png"))


def two_panels():
    """1x2: a linear panel and a log-log panel, both with points."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["linear", "log-log"])
    fig.add_trace(go.Scatter(x=[1, 2, 3], y=[4, 5, 6], name="lin"), row=1, col=1)
    fig.add_trace(go.Scatter(x=[1, 10, 100], y=[2, 50, 1000], name="log"), row=1, col=2)
    fig.update_xaxes(type="log", row=1, col=2)
    fig.update_yaxes(type="log", row=1, col=2)
    return fig.update_layout(title="good")


def test_good_page_passes(browser, tmp_path):
    path = write_page(tmp_path, two_panels(), "good", body=TABLE)
    report = inspect(browser, path)
    assert_clean(report)
    assert_plots_have_data(report)
    assert report.title == "good"
    assert report.tables == [{"id": "scores", "caption": "Scores", "first_row": ["net", "ms"]}]
    assert report.screenshot.stat().st_size > 1000
    (plot,) = report.plots
    assert (plot["id"], plot["title"]) == ("good", "good")
    assert [(t["type"], t["xaxis"], t["yaxis"], t["points"]) for t in plot["traces"]] == [
        ("scatter", "x", "y", 3), ("scatter", "x2", "y2", 3)]
    assert [(s["id"], s["traces"]) for s in plot["subplots"]] == [("xy", 1), ("x2y2", 1)]
    y2 = plot["axes"]["y2"]
    assert y2["type"] == "log" and y2["data"] == [2, 1000]
    assert y2["range"][0] < 2 and 1000 < y2["range"][1] < 1e4  # data units, not log10


def test_empty_subplot_fails(browser, tmp_path):
    fig = make_subplots(rows=1, cols=2)
    fig.add_trace(go.Scatter(x=[1, 2], y=[3, 4]))
    fig.add_trace(go.Scatter(x=[1, 2], y=[5, 6]))  # no row/col: both land in panel 1
    report = inspect(browser, write_page(tmp_path, fig, "empty_panel"))
    assert_clean(report)
    with pytest.raises(AssertionError, match=r"plot 'empty_panel': subplot x2y2 \(x2/y2\) has no trace"):
        assert_plots_have_data(report)


def test_log_axis_spanning_empty_decades_fails(browser, tmp_path):
    fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[1, 10, 100]))
    fig.update_yaxes(type="log", range=[-3, 66])  # plotly takes log10 of a log axis' range: 1e-3 .. 1e66
    report = inspect(browser, write_page(tmp_path, fig, "wide_log"))
    assert_clean(report)
    with pytest.raises(AssertionError, match=r"plot 'wide_log': yaxis: log range .* 64\.0 empty decades"):
        assert_plots_have_data(report)


def test_external_script_is_reported(browser, tmp_path):
    cdn = "https://cdn.plot.ly/plotly-2.35.2.min.js"
    path = write_page(tmp_path, two_panels(), "cdn", head=f'<script src="{cdn}"></script>')
    report = inspect(browser, path)
    assert report.external_requests == [cdn]
    assert any(r.startswith(cdn) for r in report.failed_requests)  # aborted: the tests never reach the network
    with pytest.raises(AssertionError, match="external request: https://cdn.plot.ly"):
        assert_clean(report)
    assert_plots_have_data(report)  # the inline plotly.js still drew the figure


def test_js_error_is_reported(browser, tmp_path):
    path = tmp_path / "boom.html"
    path.write_text('<!doctype html><html><body><script>throw new Error("boom")</script></body></html>')
    report = inspect(browser, path)
    assert any("boom" in e for e in report.console_errors), report.console_errors
    with pytest.raises(AssertionError, match="console error: .*boom"):
        assert_clean(report)
    with pytest.raises(AssertionError, match="no plotly graphs"):
        assert_plots_have_data(report)


@pytest.mark.parametrize("ci, outcome", [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_no_chromium_skips_here_and_fails_on_ci(monkeypatch, ci, outcome):
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(outcome, match="no chromium on PATH"):
        with launch_browser():
            pass
