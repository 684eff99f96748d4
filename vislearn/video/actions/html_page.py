"""The bits of a self-contained HTML page: escaped text, tables, images as data URIs, one stylesheet.

Why a module of its own: every page of `video.actions.report` is built from these, so the two rules of the
report hold in one place: every string that comes from data goes through `esc` (a class name
`<script>` shows as text), and nothing is fetched (images are `data:` URIs; the Content-Security-Policy
lets the browser refuse anything else, scripts included, so the page reads the same with JavaScript off).
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path


class Raw(str):
    """A fragment of HTML made by this module (already escaped): `cell` and `tag` pass it through."""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def tag(name: str, body: object = "", **attrs: object) -> Raw:
    """`<name attrs>body</name>`; `body` is escaped unless it is `Raw`; attribute `cls` is `class`."""
    text = "".join(f' {"class" if k == "cls" else k.replace("_", "-")}="{esc(v)}"' for k, v in attrs.items()
                   if v is not None)
    inner = body if isinstance(body, Raw) else esc(body)
    return Raw(f"<{name}{text}>{inner}</{name}>")


def join(parts) -> Raw:
    return Raw("".join(p if isinstance(p, Raw) else esc(p) for p in parts))


def table(header: list, rows: list[list], cls: str | None = None, id: str | None = None) -> Raw:
    head = tag("tr", join(tag("th", h) for h in header))
    body = join(tag("tr", join(tag("td", c) for c in row)) for row in rows)
    return tag("table", join([tag("thead", head), tag("tbody", body)]), cls=cls, id=id)


def png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def figure_uri(fig, dpi: int = 100) -> str:
    """A matplotlib figure as a PNG data URI (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return png_uri(buf.getvalue())


def image_uri(image, photo: bool = False) -> str:
    """A PIL image as a PNG data URI; `photo`: JPEG (video frames: a fifth of the PNG's size)."""
    buf = io.BytesIO()
    if photo:
        image.convert("RGB").save(buf, format="JPEG", quality=85)
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    image.save(buf, format="PNG")
    return png_uri(buf.getvalue())


def file_uri(path: str | Path) -> str | None:
    """A PNG file as a data URI; None when it is not there."""
    path = Path(path)
    return png_uri(path.read_bytes()) if path.is_file() else None


def img(uri: str, alt: str, width: int | None = None) -> Raw:
    return Raw(f'<img src="{esc(uri)}" alt="{esc(alt)}"' + (f' style="max-width:{width}px"' if width else "") + ">")


def section(title: str, *parts, id: str | None = None) -> Raw:
    return tag("section", join([tag("h2", title), *parts]), id=id)


def details(summary: str, body) -> Raw:
    """Folded content that opens without JavaScript (the `<details>` element)."""
    return tag("details", join([tag("summary", summary), body]))


STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1d2330;
 background:#f6f7f9;margin:0;padding:24px 32px;max-width:1280px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:0 0 10px;border-bottom:1px solid #d9dde4;padding-bottom:4px}
section{background:#fff;border:1px solid #e1e4ea;border-radius:6px;padding:14px 18px;margin:14px 0}
.sub{color:#5b6475;margin:0 0 8px} .cards{display:flex;flex-wrap:wrap;gap:10px;margin:10px 0}
.card{background:#fff;border:1px solid #e1e4ea;border-radius:6px;padding:8px 14px;min-width:120px}
.card b{display:block;font-size:20px} .card span{color:#5b6475;font-size:12px}
table{border-collapse:collapse;margin:6px 0 10px;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #e6e8ee;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f0f2f6;font-weight:600} td.n,th.n{text-align:right}
table.results td{white-space:nowrap} table.results td:first-child{white-space:normal;font-weight:600}
small,.muted{color:#6b7385} .best{font-weight:700;color:#0b5cad}
pre{background:#f3f4f7;border:1px solid #e1e4ea;border-radius:4px;padding:8px 10px;overflow-x:auto;
 font-size:12px;white-space:pre-wrap;overflow-wrap:anywhere}
code{font-size:12px} img{max-width:100%;height:auto;display:block;margin:6px 0}
.bar{background:#dfe7f3;height:10px;width:160px;border-radius:2px}
.bar i{display:block;height:10px;background:#2f6fc0;border-radius:2px}
.sheets{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:14px}
figure{margin:0;min-width:0} figcaption{font-size:13px} .ok{color:#127a2d;font-weight:600} .bad{color:#b3261e;font-weight:600}
details{margin:4px 0} summary{cursor:pointer;color:#0b5cad}
nav a{margin-right:14px}
"""

# Nothing but the page itself and data: URIs; no script, no fetch, no font or style from elsewhere.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def page(title: str, subtitle, body: list) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            + tag("h1", title) + "\n" + tag("p", subtitle, cls="sub") + "\n"
            + "\n".join(body) + "\n</body></html>\n")
