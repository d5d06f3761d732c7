"""Open a report in a real headless Chromium and say what a reader would get (imported by tests as ``browser``).

The reports are self-contained plotly pages opened from file: URLs.  A page can look fine as HTML and still
show nothing: a script that throws, a CDN script that never loads, a panel whose traces went elsewhere, a
log axis stretched over 70 empty decades.  Only a browser that runs plotly.js sees those, so the tests read
what plotly.js itself computed (each graph div's ``_fullData`` / ``_fullLayout``) and check it here.

Only Debian's chromium is used (``executable_path``), never Playwright's own browser download.
"""
from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]   # a container's small /dev/shm must not crash the renderer
LOCAL_SCHEMES = ("file:", "data:", "about:", "blob:")  # blob: URLs are made by the page itself
RENDER_TIMEOUT_MS = 20_000
MAX_EMPTY_DECADES = 2.0  # a log axis may reach this far beyond its data on either side

# a request to anything but these is external; it is aborted (the tests never touch the network) and reported
_NETWORK = re.compile(r"^(?!(file|data|about|blob):)")

_RENDERED_JS = """() => Array.from(document.querySelectorAll('.plotly-graph-div, .js-plotly-plot'))
    .every(gd => gd._fullLayout && gd.querySelector('.main-svg'))"""

_FRAMES_JS = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"

# What plotly.js computed for each graph: traces (type, axes, finite points), cartesian subplots (how many
# visible traces have finite data there) and axes (type, range in data units, min/max of the data on it).
_PLOTS_JS = r"""() => Array.from(document.querySelectorAll('.plotly-graph-div, .js-plotly-plot'), gd => {
  const fl = gd._fullLayout, fd = gd._fullData;
  const title = (fl && fl.title && fl.title.text) || '', placeholder = fl && fl._dfltTitle && fl._dfltTitle.plot;
  const plot = {id: gd.id, title: title === placeholder ? '' : title, rendered: !!(fl && fd),
                traces: [], subplots: [], axes: {}};
  if (!plot.rendered) return plot;
  const isArr = a => a != null && typeof a === 'object' && typeof a.length === 'number';
  const flat = a => isArr(a) ? Array.from(a).flatMap(v => isArr(v) ? flat(v) : [v]) : [];
  const num = v => (v === null || v === '' || typeof v === 'boolean' || !Number.isFinite(+v)) ? null : +v;
  const axis = id => fl[id.replace(/^([xy])/, '$1axis')];
  const conv = (id, v) => {  // data value -> plotly's number on that axis, null if it is not drawn
    const ax = axis(id);
    if (!ax) return num(v);
    const c = num(ax.type === 'category' || ax.type === 'multicategory' ? ax.d2l_noadd(v) : ax.d2c(v));
    return c === null || (ax.type === 'log' && c <= 0) ? null : c;
  };
  const seen = {};  // axis id -> [min, max] of the finite data drawn on it
  const see = (id, c) => { if (c === null) return; const r = seen[id] || (seen[id] = [c, c]);
                           r[0] = Math.min(r[0], c); r[1] = Math.max(r[1], c); };
  const IMPLICIT = /^(scatter|scattergl|bar|heatmap|contour|waterfall|funnel)$/;  // x0 + i*dx when x is absent
  const coords = (t, k, n) => isArr(t[k]) ? Array.from(t[k])
      : (IMPLICIT.test(t.type) && typeof t[k + '0'] === 'number' && n)
        ? Array.from({length: n}, (_, i) => t[k + '0'] + i * (t['d' + k] ?? 1)) : null;
  for (const t of fd) {
    const tr = {type: t.type, name: t.name, visible: t.visible === true, points: 0};
    if (t.type === 'splom') {
      tr.xaxes = t.xaxes || []; tr.yaxes = t.yaxes || [];
      tr.values = (t.dimensions || []).map(d => d.visible === false ? 0 : flat(d.values).length);
      (t.dimensions || []).forEach((d, i) => {
        if (d.visible === false) return;
        const vals = flat(d.values);
        tr.points = Math.max(tr.points, vals.filter(v => num(v) !== null).length);
        if (tr.visible) for (const id of [tr.xaxes[i], tr.yaxes[i]]) if (id) vals.forEach(v => see(id, conv(id, v)));
      });
    } else if (t.type === 'parcoords' || t.type === 'parcats') {
      tr.values = (t.dimensions || []).map(d => flat(d.values).length);
      tr.points = Math.max(0, ...tr.values);
    } else if (t.type === 'table') {
      tr.values = ((t.cells && t.cells.values) || []).map(c => flat(c).length);
      tr.points = tr.values.reduce((a, b) => a + b, 0);
    } else if (t.xaxis && t.yaxis) {
      tr.xaxis = t.xaxis; tr.yaxis = t.yaxis;
      const z = isArr(t.z) ? t.z : null;
      const nx = z ? Math.max(0, ...Array.from(z, r => isArr(r) ? r.length : 1)) : (isArr(t.y) ? t.y.length : 0);
      const ny = z ? z.length : (isArr(t.x) ? t.x.length : 0);
      const xs = coords(t, 'x', nx), ys = coords(t, 'y', ny);
      const cx = xs ? xs.map(v => conv(t.xaxis, v)) : null, cy = ys ? ys.map(v => conv(t.yaxis, v)) : null;
      let ok;  // the drawn x and y values
      if (cx && cy && !z) {
        const n = Math.min(cx.length, cy.length), keep = [...Array(n).keys()].filter(i => cx[i] !== null && cy[i] !== null);
        ok = [keep.map(i => cx[i]), keep.map(i => cy[i])];
        tr.points = keep.length;
      } else {
        ok = [(cx || []).filter(c => c !== null), (cy || []).filter(c => c !== null)];
        tr.points = z ? flat(z).filter(v => num(v) !== null).length : Math.max(ok[0].length, ok[1].length);
      }
      if (tr.visible && tr.points) { ok[0].forEach(c => see(t.xaxis, c)); ok[1].forEach(c => see(t.yaxis, c)); }
    } else {  // pie, polar, geo, 3-D, ...: the largest finite data array
      tr.points = Math.max(0, ...['x', 'y', 'z', 'r', 'theta', 'values', 'lat', 'lon', 'a', 'b', 'c', 'value']
        .map(k => flat(isArr(t[k]) ? t[k] : [t[k]]).filter(v => num(v) !== null).length));
    }
    plot.traces.push(tr);
  }
  const live = plot.traces.filter(tr => tr.visible && tr.points > 0);
  // plotly drops unused axes from _fullLayout: the panels the figure laid out are its anchored axis pairs
  const pairs = new Set((fl._subplots && fl._subplots.cartesian) || []);
  for (const [key, ax] of Object.entries(gd.layout || {})) {
    const [, xy, n] = key.match(/^([xy])axis(\d*)$/) || [], a = ax && ax.anchor;
    if (xy === 'x' && /^y\d*$/.test(a)) pairs.add('x' + n + a);
    if (xy === 'y' && /^x\d*$/.test(a)) pairs.add(a + 'y' + n);
  }
  for (const id of pairs) {
    const [, x, y] = id.match(/^(x\d*)(y\d*)$/) || [];
    if (!x) continue;
    const n = live.filter(tr => (tr.xaxis === x && tr.yaxis === y)
                                || (tr.type === 'splom' && tr.xaxes.includes(x) && tr.yaxes.includes(y))).length;
    plot.subplots.push({id, xaxis: x, yaxis: y, traces: n});
  }
  const ids = [...((fl._subplots && fl._subplots.xaxis) || []), ...((fl._subplots && fl._subplots.yaxis) || [])];
  for (const id of ids) {
    const ax = axis(id);
    if (!ax || !isArr(ax.range)) continue;
    const range = Array.from(ax.range, v => num(ax.r2c(v)));  // log axes keep log10(range): r2c undoes it
    plot.axes[id] = {name: ax._name, type: ax.type, range, data: seen[id] || null};
  }
  return plot;
})"""

_TABLES_JS = r"""() => Array.from(document.querySelectorAll('table'), t => ({
  id: t.id, caption: t.caption ? t.caption.innerText.trim() : '',
  first_row: t.rows.length ? Array.from(t.rows[0].cells, c => c.innerText.trim()) : []}))"""


@dataclass
class PageReport:
    """What one page did in the browser; ``plots`` and ``tables`` are plain dicts (see ``inspect_page``)."""

    path: Path
    title: str = ""
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    plots: list[dict] = field(default_factory=list)
    tables: list[dict] = field(default_factory=list)
    screenshot: Path | None = None


def _unavailable(reason: str):
    """No browser: a skip on a developer's machine, a failure on CI (where these tests must run)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def launch_browser():
    """Yield a Playwright ``Browser`` on Debian's headless chromium; stop it and Playwright afterwards.

    Skips (fails when CI=true) if Playwright or chromium is missing or chromium will not start."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -c requirements.lock -e '.[test]')")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        _unavailable("no chromium on PATH (Debian: apt-get install chromium)")
    pw = sync_playwright().start()
    try:
        try:
            browser = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        except Error as exc:
            _unavailable(f"{exe} would not start: {exc.message.splitlines()[0]}")
        try:
            yield browser
        finally:
            browser.close()
    finally:
        pw.stop()


def inspect_page(page_or_browser, html_path: Path, screenshot: Path) -> PageReport:
    """Open ``html_path`` (a file: URL), wait for every plotly graph to render, save a full-page screenshot
    and return a ``PageReport``.

    Given a ``Browser`` it uses (and closes) a fresh page; given a ``Page`` it uses that one.  Requests that
    would leave the machine are aborted, so the result does not depend on the network, and listed in
    ``external_requests`` (and ``failed_requests``).  A graph that does not render within 20 s is left
    ``rendered: False`` and noted in ``console_errors``.

    Each plot: ``{id, title, rendered, traces, subplots, axes}``; a trace ``{type, name, visible, points}``
    (finite data points) plus ``xaxis``/``yaxis`` (cartesian), ``xaxes``/``yaxes`` (splom) or ``values``
    (the data values per dimension / column: splom, parcoords, parcats, table); a subplot ``{id, xaxis,
    yaxis, traces}`` (visible traces with finite data there); ``axes[id]``: ``{name, type, range, data}``,
    ``range`` as plotly computed it in data units (log axes: 10**range), ``data`` the [min, max] of the
    finite data drawn on the axis (None if none).  Each table: ``{id, caption, first_row}``.
    """
    owned = not hasattr(page_or_browser, "goto")
    page = page_or_browser.new_page() if owned else page_or_browser
    report = PageReport(path=Path(html_path), screenshot=Path(screenshot))

    def on_console(msg):
        if msg.type == "error":
            report.console_errors.append(msg.text)

    def on_request(req):
        if not req.url.startswith(LOCAL_SCHEMES):
            report.external_requests.append(req.url)

    handlers = {"console": on_console, "request": on_request,
                "pageerror": lambda exc: report.console_errors.append(f"uncaught: {exc}"),
                "requestfailed": lambda req: report.failed_requests.append(f"{req.url}: {req.failure}")}
    for event, handler in handlers.items():
        page.on(event, handler)
    page.route(_NETWORK, lambda route: route.abort())
    try:
        page.goto(Path(html_path).resolve().as_uri(), wait_until="load")
        try:
            page.wait_for_function(_RENDERED_JS, timeout=RENDER_TIMEOUT_MS)
        except Exception as exc:  # playwright's TimeoutError: report it, the plots say which did not render
            report.console_errors.append(f"plots did not render within {RENDER_TIMEOUT_MS / 1000:g} s: {exc}")
        page.evaluate(_FRAMES_JS)
        Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
        report.title = page.title()
        report.plots = page.evaluate(_PLOTS_JS)
        report.tables = page.evaluate(_TABLES_JS)
    finally:
        page.unroute(_NETWORK)
        for event, handler in handlers.items():
            page.remove_listener(event, handler)
        if owned:
            page.close()
    return report


def assert_clean(report: PageReport) -> None:
    """A self-contained report: no console errors or uncaught exceptions, no failed and no external requests."""
    problems = [f"console error: {e}" for e in report.console_errors]
    problems += [f"failed request: {r}" for r in report.failed_requests]
    problems += [f"external request: {r}" for r in report.external_requests]
    if problems:
        raise AssertionError(f"{report.path.name}:\n  " + "\n  ".join(problems))


def _plot_name(plot: dict) -> str:
    return f"plot {plot['id']!r}" + (f" ({plot['title']!r})" if plot["title"] else "")


def _axis_problem(ax: dict) -> str | None:
    """Why this axis shows its data badly, or None: its range must be finite and hold the data drawn on it;
    a log axis may not reach more than MAX_EMPTY_DECADES beyond its data."""
    rng = ax["range"]
    if len(rng) != 2 or any(r is None or not math.isfinite(r) for r in rng):
        return f"range {rng} is not finite"
    if ax["data"] is None:
        return None
    lo, hi = sorted(rng)
    dmin, dmax = ax["data"]
    if ax["type"] == "log":
        if lo <= 0:
            return f"log range {rng} reaches 0"
        lo, hi, dmin, dmax = map(math.log10, (lo, hi, dmin, dmax))
        empty = max(dmin - lo, hi - dmax)
        if empty > MAX_EMPTY_DECADES:
            return (f"log range {rng} spans {empty:.1f} empty decades beyond the data "
                    f"[{ax['data'][0]:g}, {ax['data'][1]:g}] (at most {MAX_EMPTY_DECADES:g})")
    tol = 1e-6 * max(hi - lo, abs(dmin), abs(dmax), 1e-300)
    if lo > dmin + tol or hi < dmax - tol:
        return f"range {rng} does not hold the data [{ax['data'][0]:g}, {ax['data'][1]:g}]"
    return None


def assert_plots_have_data(report: PageReport) -> None:
    """The page has plots, and each shows data: a trace with finite points, every cartesian subplot (each
    xaxis/yaxis pair in the layout) with a trace there, every axis range finite and holding its data."""
    problems = [] if report.plots else ["no plotly graphs on the page"]
    for plot in report.plots:
        name = _plot_name(plot)
        if not plot["rendered"]:
            problems.append(f"{name}: did not render")
            continue
        if not any(t["visible"] and t["points"] for t in plot["traces"]):
            problems.append(f"{name}: no trace has data")
        for sp in plot["subplots"]:
            if not sp["traces"]:
                problems.append(f"{name}: subplot {sp['id']} ({sp['xaxis']}/{sp['yaxis']}) has no trace with finite data")
        for axis_id, ax in plot["axes"].items():
            if (why := _axis_problem(ax)) is not None:
                problems.append(f"{name}: {ax['name'] or axis_id}: {why}")
    if problems:
        raise AssertionError(f"{report.path.name}:\n  " + "\n  ".join(problems))
