"""A self-contained HTML gallery: one file (plus, optionally, image files next to it), no server, no external assets.

Each entry is one frame shown as a card of image panels (e.g. input, proposals, prediction, ground truth) with its
metrics and notes. A filter bar shows only the cards whose predictions contain a class (``left``, ``right``,
``both``) or that have no prediction (``none``). The filter is plain inline JavaScript and can be set from the URL:
``index.html#filter=left`` (or ``?filter=left``), which the page honours on load and on hash changes.

State for scripted checks (e.g. headless Chromium ``--dump-dom``) is mirrored into attributes:
``<body data-ready="1" data-filter="left" data-visible="3">``, hidden cards carry the ``hidden`` attribute, and
``<html data-js-errors="N">`` / ``data-images-ok`` / ``data-images-broken`` report script errors and images that
failed to decode.

This module depends only on numpy and Pillow (no Detectron2), so galleries can be written anywhere.
"""
import base64
import html
import io
import json
import mimetypes
import os
import shutil
from typing import Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .atomic import atomic_path

__all__ = ["FILTER_CLASSES", "image_to_png_bytes", "image_data_uri", "write_gallery", "render_gallery"]

#: Filter keys, in button order. ``none`` = a frame with no in-hand prediction.
FILTER_CLASSES = ("left", "right", "both", "none")

ImageLike = Union[np.ndarray, str]


def image_to_png_bytes(image: np.ndarray) -> bytes:
    """RGB (or gray) ``uint8`` array -> PNG bytes."""
    from PIL import Image

    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def image_data_uri(image: ImageLike) -> str:
    """An array (encoded as PNG) or an image file -> ``data:<mime>;base64,...``."""
    if isinstance(image, (str, os.PathLike)):
        mime = mimetypes.guess_type(str(image))[0] or "image/png"
        with open(image, "rb") as f:
            data = f.read()
    else:
        mime, data = "image/png", image_to_png_bytes(image)
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#14161a;color:#e6e6e6}
header{padding:14px 20px;background:#1d2026;border-bottom:1px solid #2c313a}
h1{font-size:20px;margin:0 0 6px 0}
.notes{margin:6px 0;padding-left:18px;color:#f0c674;font-size:13px}
.summary{border-collapse:collapse;font-size:13px;margin-top:6px}
.summary td,.summary th,.metrics td,.metrics th{padding:2px 10px 2px 0;text-align:left;font-weight:normal}
.summary th,.metrics th{color:#9aa4b2}
.bar{display:flex;gap:8px;align-items:center;flex-wrap:wrap;padding:10px 20px;position:sticky;top:0;
  background:#14161aee;border-bottom:1px solid #2c313a;z-index:2}
.bar button{background:#262a33;color:#e6e6e6;border:1px solid #3a404c;border-radius:14px;padding:4px 12px;
  cursor:pointer;font-size:13px}
.bar button.active{background:#3b6fd8;border-color:#3b6fd8}
.legend{display:flex;gap:10px;margin-left:auto;font-size:12px;color:#c0c6d0}
.sw{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:4px;vertical-align:-2px}
main{padding:14px 20px;display:flex;flex-direction:column;gap:14px}
.card{background:#1d2026;border:1px solid #2c313a;border-radius:8px;padding:10px 12px}
[hidden]{display:none !important}
.card h2{font-size:15px;margin:0 0 2px 0}
.sub{font-size:12px;color:#8d96a3;margin-bottom:8px;word-break:break-all}
.tags span{display:inline-block;font-size:11px;padding:1px 7px;border-radius:9px;margin-right:4px;background:#333a46}
.panels{display:grid;grid-template-columns:repeat(4,minmax(0,1fr));gap:10px;margin-top:6px;max-width:1400px}
figure{margin:0}
figure img{display:block;width:100%;height:auto;max-height:420px;object-fit:contain;border-radius:4px;
  background:#000;cursor:zoom-in}
figure img.big{position:fixed;inset:0;margin:auto;width:95vw;height:95vh;max-height:none;
  background:rgba(0,0,0,.92);z-index:10;box-shadow:0 0 0 100vmax rgba(0,0,0,.92);border-radius:0;cursor:zoom-out}
figcaption{font-size:12px;color:#9aa4b2;margin-top:3px}
.metrics{border-collapse:collapse;font-size:12px;margin-top:8px}
.empty{color:#8d96a3;padding:20px}
"""

_HEAD_JS = """
(function(){var n=0;function bump(){n+=1;document.documentElement.setAttribute('data-js-errors',String(n));}
window.addEventListener('error',bump);window.addEventListener('unhandledrejection',bump);
var ce=console.error;console.error=function(){bump();return ce.apply(console,arguments);};})();
"""

_BODY_JS = """
var WISH_FILTERS=%(filters)s;
function wishFilter(cls){
  if(WISH_FILTERS.indexOf(cls)<0){cls='all';}
  var cards=document.querySelectorAll('.card'),n=0,i;
  for(i=0;i<cards.length;i++){
    var cs=(cards[i].getAttribute('data-classes')||'').split(' ');
    var show=(cls==='all')||cs.indexOf(cls)>=0;
    cards[i].hidden=!show; if(show){n+=1;}
  }
  var bs=document.querySelectorAll('.bar button[data-filter]');
  for(i=0;i<bs.length;i++){bs[i].classList.toggle('active',bs[i].getAttribute('data-filter')===cls);}
  document.getElementById('visible-count').textContent=String(n);
  document.body.setAttribute('data-filter',cls);
  document.body.setAttribute('data-visible',String(n));
  return n;
}
function wishFilterFromLocation(){
  var m=/(?:^|[#&?])filter=([a-z]+)/.exec(location.hash+'&'+location.search);
  return m?m[1]:'all';
}
document.querySelector('.bar').addEventListener('click',function(e){
  var b=e.target.closest('button[data-filter]'); if(!b){return;}
  var cls=b.getAttribute('data-filter');
  if(history.replaceState){history.replaceState(null,'','#filter='+cls);}
  wishFilter(cls);
});
document.querySelector('main').addEventListener('click',function(e){
  if(e.target.tagName==='IMG'){e.target.classList.toggle('big');}
});
window.addEventListener('hashchange',function(){wishFilter(wishFilterFromLocation());});
window.addEventListener('load',function(){
  var im=document.images,ok=0,bad=0;
  for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0){ok+=1;}else{bad+=1;}}
  document.documentElement.setAttribute('data-images-ok',String(ok));
  document.documentElement.setAttribute('data-images-broken',String(bad));
});
wishFilter(wishFilterFromLocation());
document.body.setAttribute('data-ready','1');
"""


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def _rgb_css(rgb: Sequence[float]) -> str:
    r, g, b = (int(round(255 * float(c))) if float(c) <= 1.0 else int(c) for c in rgb[:3])
    return f"rgb({r},{g},{b})"


def _entry_classes(entry: Mapping) -> List[str]:
    classes = [c for c in dict.fromkeys(entry.get("classes") or []) if c in FILTER_CLASSES and c != "none"]
    return classes or ["none"]


class _ImageSink:
    """Turns panel images into ``src`` values: data URIs (``embed``) or files next to the html."""

    def __init__(self, html_dir: str, embed: bool, files_dir: str = "gallery_files"):
        self.html_dir = os.path.abspath(html_dir)
        self.embed = embed
        self.files_dir = files_dir
        self.count = 0

    def src(self, image: ImageLike, stem: str) -> str:
        if self.embed:
            return image_data_uri(image)
        if isinstance(image, (str, os.PathLike)):
            path = os.path.abspath(str(image))
            rel = os.path.relpath(path, self.html_dir)
            if rel.startswith(os.pardir + os.sep) or rel == os.pardir or os.path.isabs(rel):
                # outside the gallery folder: copy it in, so the folder is self-contained
                rel = self._new_rel(stem, os.path.splitext(path)[1] or ".png")
                with atomic_path(os.path.join(self.html_dir, rel)) as tmp:
                    shutil.copyfile(path, tmp)
            return _url_path(rel)
        rel = self._new_rel(stem, ".png")
        with atomic_path(os.path.join(self.html_dir, rel)) as tmp, open(tmp, "wb") as f:
            f.write(image_to_png_bytes(image))
        return _url_path(rel)

    def _new_rel(self, stem: str, ext: str) -> str:
        os.makedirs(os.path.join(self.html_dir, self.files_dir), exist_ok=True)
        self.count += 1
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem)[:80] or "img"
        return os.path.join(self.files_dir, f"{self.count:05d}_{safe}{ext}")


def _url_path(rel: str) -> str:
    from urllib.parse import quote

    return quote(rel.replace(os.sep, "/"))


def render_gallery(entries: Iterable[Mapping], sink: "_ImageSink", title: str = "WISH gallery",
                   summary: Optional[Mapping] = None, notes: Optional[Sequence[str]] = None,
                   legend: Optional[Sequence[Tuple[str, Sequence[float]]]] = None) -> str:
    """The gallery html as a string (see :func:`write_gallery` for the arguments)."""
    esc = html.escape
    entries = list(entries)
    counts = {c: 0 for c in FILTER_CLASSES}
    cards = []
    for idx, e in enumerate(entries):
        classes = _entry_classes(e)
        for c in classes:
            counts[c] += 1
        panels = []
        for label, image in e.get("panels", []):
            if image is None:
                continue
            src = sink.src(image, f"{e.get('title', idx)}_{label}")
            panels.append(f'<figure><img src="{esc(src)}" alt="{esc(str(label))}" title="{esc(str(label))}">'
                          f"<figcaption>{esc(str(label))}</figcaption></figure>")
        metrics = e.get("metrics") or {}
        mrows = "".join(f"<tr><th>{esc(str(k))}</th><td>{esc(_fmt(v))}</td></tr>" for k, v in metrics.items())
        mtable = f'<table class="metrics">{mrows}</table>' if mrows else ""
        note_html = "".join(f"<li>{esc(str(n))}</li>" for n in e.get("notes") or [])
        tags = "".join(f"<span>{esc(c)}</span>" for c in classes)
        cards.append(
            f'<section class="card" id="card-{idx}" data-classes="{esc(" ".join(classes))}">'
            f'<h2>{esc(str(e.get("title", f"image {idx}")))}</h2>'
            f'<div class="sub">{esc(str(e.get("subtitle", "")))}</div>'
            f'<div class="tags">{tags}</div>'
            f'<div class="panels">{"".join(panels)}</div>{mtable}'
            + (f'<ul class="notes">{note_html}</ul>' if note_html else "")
            + "</section>"
        )
    srows = "".join(f"<tr><th>{esc(str(k))}</th><td>{esc(_fmt(v))}</td></tr>" for k, v in (summary or {}).items())
    notes_html = "".join(f"<li>{esc(str(n))}</li>" for n in notes or [])
    buttons = [f'<button data-filter="all">all ({len(entries)})</button>'] + [
        f'<button data-filter="{c}">{c} ({counts[c]})</button>' for c in FILTER_CLASSES
    ]
    legend_html = "".join(
        f'<span><i class="sw" style="background:{_rgb_css(rgb)}"></i>{esc(name)}</span>' for name, rgb in legend or []
    )
    main_html = "".join(cards) if cards else '<div class="empty">No images.</div>'
    body_js = _BODY_JS % {"filters": json.dumps(["all", *FILTER_CLASSES])}
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n<script>{_HEAD_JS}</script>\n</head>\n<body>\n"
        f"<header><h1>{esc(title)}</h1>"
        + (f'<ul class="notes">{notes_html}</ul>' if notes_html else "")
        + (f'<table class="summary">{srows}</table>' if srows else "")
        + "</header>\n"
        f'<nav class="bar">{"".join(buttons)}<span>showing <b id="visible-count">{len(entries)}</b></span>'
        f'<span class="legend">{legend_html}</span></nav>\n'
        f"<main>{main_html}</main>\n"
        f"<script>{body_js}</script>\n</body>\n</html>\n"
    )


def write_gallery(path: str, entries: Iterable[Mapping], title: str = "WISH gallery",
                  summary: Optional[Mapping] = None, notes: Optional[Sequence[str]] = None,
                  legend: Optional[Sequence[Tuple[str, Sequence[float]]]] = None, embed: bool = True,
                  files_dir: str = "gallery_files") -> str:
    """Write the gallery html to ``path``; returns ``path``.

    Args:
        entries: one mapping per frame:
            ``title`` (str), ``subtitle`` (str, e.g. the source file), ``panels`` (list of ``(label, image)``, the
            image an RGB ``uint8`` array or an image file path; ``None`` images are skipped), ``classes``
            (predicted class names among ``left/right/both``; empty = ``none``), ``metrics`` (``{name: value}``),
            ``notes`` (list of str).
        summary: ``{name: value}`` shown in the header (e.g. dataset-level E-mIoU, counts).
        notes: header notes (e.g. "heads are untrained: smoke test").
        legend: ``[(name, rgb in [0, 1] or [0, 255])]`` colour swatches in the filter bar.
        embed: ``True`` = every image is a base64 data URI (one standalone file); ``False`` = arrays are written as
            PNG files under ``<dir of path>/<files_dir>`` and files are referenced by relative path (copied in
            when they live outside the gallery's folder).
    """
    out_dir = os.path.dirname(os.path.abspath(path))
    os.makedirs(out_dir, exist_ok=True)
    text = render_gallery(entries, _ImageSink(out_dir, embed, files_dir), title, summary, notes, legend)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    return path
