"""One self-contained HTML page: plotly.js inlined once, figures as divs, tables, no requests.

Figures carry their numbers as float32 typed arrays (plotly's base64 ``bdata``), about half
the bytes of JSON text, so a 500-trial study stays small beside the 4.8 MB plotly bundle.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

from codesign.files import write_text

CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1400px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}caption{text-align:left;font-weight:bold;padding:4px 0}
.note{color:#555;font-size:0.92em;max-width:70em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
code{background:#f6f6f6;padding:0 3px}"""


_RESOLVE = ("function resolve(o){if(Array.isArray(o))return o.map(resolve);"
            "if(o&&typeof o==='object'){if('$ref' in o)return Object.assign({},pool[o.$ref]);"
            "for(const k in o)o[k]=resolve(o[k]);}return o;}")
MIN_SHARED = 64          # base64 characters; shorter arrays are not worth a reference


def _share_arrays(o, pool: dict[str, int], arrays: list[dict]):
    """Replace each typed array (plotly's ``{"dtype", "bdata"}``) seen before by ``{"$ref": i}``."""
    if isinstance(o, list):
        return [_share_arrays(v, pool, arrays) for v in o]
    if isinstance(o, dict):
        if isinstance(o.get("bdata"), str) and len(o["bdata"]) >= MIN_SHARED:
            key = json.dumps(o, sort_keys=True)
            if key not in pool:
                pool[key] = len(arrays)
                arrays.append(o)
            return {"$ref": pool[key]}
        return {k: _share_arrays(v, pool, arrays) for k, v in o.items()}
    return o


def esc(x) -> str:
    return html.escape(str(x))


def fmt(v, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def table(headers: list[str], rows: list[list], caption: str = "", left: int = 1, table_id: str = "") -> str:
    """An HTML table; the first ``left`` columns are text (left-aligned), the rest numbers."""
    def cell(tag, i, v):
        return f"<{tag}{' class=l' if i < left else ''}>{esc(fmt(v))}</{tag}>"
    head = "<tr>" + "".join(cell("th", i, h) for i, h in enumerate(headers)) + "</tr>"
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f"<table{f' id={esc(table_id)}' if table_id else ''}>{cap}{head}{body}</table>"


class Page:
    """Sections appended in reading order; ``write`` inlines plotly.js once in the head."""

    def __init__(self, title: str):
        self.title = title
        self.parts: list[str] = []
        self._figures = 0

    def add(self, html_text: str) -> "Page":
        self.parts.append(html_text)
        return self

    def heading(self, text: str, level: int = 2) -> "Page":
        return self.add(f"<h{level}>{esc(text)}</h{level}>")

    def note(self, text: str) -> "Page":
        return self.add(f"<p class=note>{esc(text)}</p>")

    def figure(self, fig) -> "Page":
        """The figure as a div and a script; an array repeated across its traces (the same
        objective drawn in several panels) is stored once and shared when the page opens."""
        self._figures += 1
        # plotly.js's own defaults, not a template: a template is ~8 KB of JSON in every figure
        fig.update_layout(template="none", margin=dict(t=60, l=60, r=20, b=50), font=dict(family="system-ui, sans-serif"))
        spec = json.loads(fig.to_json())
        pool: dict[str, int] = {}
        arrays: list[dict] = []
        spec["data"] = _share_arrays(spec["data"], pool, arrays)
        div = f"fig{self._figures}"
        height = spec["layout"].get("height", 450)
        config = {"displaylogo": False, "responsive": True}
        return self.add(f'<div id="{div}" class="plotly-graph-div" style="height:{height}px;width:100%"></div>'
                        f"<script>(function(){{const pool={json.dumps(arrays)};const fig={json.dumps(spec)};"
                        f"{_RESOLVE}Plotly.newPlot({json.dumps(div)},resolve(fig.data),fig.layout,{json.dumps(config)});}})();"
                        "</script>")

    def render(self) -> str:
        from plotly.offline import get_plotlyjs

        return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{esc(self.title)}</title>"
                f"<style>{CSS}</style><script>{get_plotlyjs()}</script></head><body>"
                f"<h1>{esc(self.title)}</h1>" + "\n".join(self.parts) + "</body></html>")

    def write(self, path: Path, flag: str = "--html") -> Path:
        return write_text(path, self.render(), flag)
