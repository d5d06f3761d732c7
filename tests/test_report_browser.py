"""`analyze --html` and `dse --html` pages opened in a real browser (Debian's chromium via Playwright):
no console errors or requests, every panel with data, axes spanning it, the tables there."""
import pytest

from browser import assert_clean, assert_plots_have_data, inspect_page
from conftest import LIGHT, run_cli

pytestmark = pytest.mark.slow   # starts chromium


def test_analyze_html_on_a_device_target(browser, tmp_path):
    html = tmp_path / "resnet50.html"
    run_cli("analyze", str(LIGHT / "light_resnet50.onnx"), "--target", "eyeriss", "--html", str(html), check_rc=0)
    page = inspect_page(browser, html, tmp_path / "analyze.png")
    assert_clean(page)
    assert_plots_have_data(page)
    roof = next(p for p in page.plots if p["title"].startswith("roofline"))
    assert {a["type"] for a in roof["axes"].values()} == {"log"}
    bound_traces = [t["name"] for t in roof["traces"] if t["name"].startswith("layers bound by")]
    assert bound_traces, roof["traces"]                  # points coloured by their bound
    assert any("GB/s" in t["name"] for t in roof["traces"])   # a memory slope per level
    layers = next(t for t in page.tables if t["id"] == "layers")
    assert "bound" in layers["first_row"]


def test_analyze_html_with_bits_on_the_systolic_template(browser, tmp_path):
    html = tmp_path / "squeezenet.html"
    run_cli("analyze", str(LIGHT / "light_squeezenet.onnx"), "--target", "systolic", "--bits", "w4a8",
            "--html", str(html), check_rc=0)
    page = inspect_page(browser, html, tmp_path / "systolic.png")
    assert_clean(page)
    assert_plots_have_data(page)
    assert "4" in page.tables[-1]["first_row"] or any(t["id"] == "layers" for t in page.tables)


def test_dse_html(browser, tmp_path):
    ranges = tmp_path / "ranges.toml"
    ranges.write_text('[systolic.ranges]\nrows = [8, 16, 32]\ncols = [8, 16, 32]\nifmap_sram_kb = [32, 128]\n'
                      'filter_sram_kb = [32, 128]\nofmap_sram_kb = [32]\ndataflow = ["ws", "os"]\n'
                      'dram_bandwidth_words = [8, 32]\n')
    html = tmp_path / "dse.html"
    run_cli("dse", str(LIGHT / "light_squeezenet.onnx"), "--ranges", str(ranges), "--out", str(tmp_path / "dse"),
            "--html", str(html), check_rc=0)
    page = inspect_page(browser, html, tmp_path / "dse.png")
    assert_clean(page)
    assert_plots_have_data(page)
    (plot,) = page.plots
    assert len(plot["subplots"]) == 3
    assert any(t["id"] == "pareto" for t in page.tables)


def test_unwritable_html_path_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    r = run_cli("analyze", str(LIGHT / "light_squeezenet.onnx"), "--target", "host", "--html",
                str(tmp_path / "file" / "out.html"), check_rc=2)
    assert "cannot write" in r.stderr and "Traceback" not in r.stderr
