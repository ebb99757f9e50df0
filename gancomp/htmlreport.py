"""``gancomp compare --html``: one page to look at a comparison rather than read it.

The page holds the RD plots, the tables and, for every image, a viewer in the manner of
Squoosh: any two codecs (or the original) side by side at matched bpp, a draggable split,
zoom (buttons, wheel) and pan. It needs no server and no network: scripts and styles are
inline, images are data URIs (or, for large reports, PNG files in a folder beside the page).

The pictures shown are the decoded pixels of the very files the table measured: compare
keeps the bytes each codec wrote, and this module decodes the chosen ones again (decoding is
deterministic) and stores them losslessly as PNG.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .compare import Result, Row, Runner

EMBED_LIMIT = 48 << 20  # above this many bytes of images, write them beside the page


def _png(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def bpp_levels(rows: Sequence[Row], lossless: set[str], n: int = 3) -> list[float]:
    """Up to ``n`` target rates (log-spaced) inside the bpp range every lossy codec reached on
    this image; the whole range when they share none."""
    per: dict[str, list[float]] = {}
    for r in rows:
        if r.codec not in lossless and r.bpp > 0:
            per.setdefault(r.codec, []).append(r.bpp)
    if not per:
        return [rows[0].bpp] if rows else []
    lo = max(min(v) for v in per.values())
    hi = min(max(v) for v in per.values())
    if lo > hi:  # no shared range
        lo = min(min(v) for v in per.values())
        hi = max(max(v) for v in per.values())
    if len({r.target_bpp for r in rows}) == 1 and rows[0].target_bpp is not None:
        return [rows[0].target_bpp]
    if hi <= lo * 1.05:
        return [math.sqrt(lo * hi)]
    # stay a little inside the range so each codec has a point near every level
    a, b = math.log(lo), math.log(hi)
    pad = (b - a) * 0.1
    return [float(math.exp(x)) for x in np.linspace(a + pad, b - pad, n)]


def nearest(rows: Sequence[Row], target: float) -> Row:
    """The row whose bpp is closest to ``target`` on a log scale."""
    return min(rows, key=lambda r: abs(math.log(max(r.bpp, 1e-9) / target)))


def _curves_png(result: Result, title: str) -> bytes:
    from . import compare
    from .rdplot import plot

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "rd.png"
        plot(compare.curves(result.summaries), p, title=title)
        return p.read_bytes()


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def build(result: Result, runners: Sequence[Runner], images: Sequence[Path],
          encoded: dict[tuple[str, str, int], bytes], path: str | Path, *,
          command: str = "", bd: dict[str, Any] | None = None,
          native_name: dict[str, str] | None = None, levels: int = 3,
          assets: str = "auto", log: Callable[[str], None] | None = None) -> Path:
    """Write the report page to ``path``; return it. ``encoded`` maps (codec, image, point)
    to the bytes compare measured. ``assets``: 'embed' (data URIs), 'beside' (PNG files in
    ``<page>_files/``) or 'auto' (embed unless the images exceed EMBED_LIMIT)."""
    from . import compare
    from .imageio import write_output

    path = Path(path)
    by_name = {r.name: r for r in runners}
    lossless = {r.name for r in runners if r.lossless}
    blobs: dict[str, bytes] = {}
    pages: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for i, img_path in enumerate(images):
        name = img_path.name
        rows = [r for r in result.rows if r.image == name]
        if not rows:
            continue
        if log:
            log(f"html: image {i + 1}/{len(images)} {name}: decoding the matched points")
        orig_id = f"i{i}-original"
        blobs[orig_id] = _png(compare.load_rgb(img_path))
        targets = bpp_levels(rows, lossless, levels)
        lv = []
        for t in targets:
            entry: dict[str, Any] = {"target": round(t, 4), "codecs": {}}
            for codec in dict.fromkeys(r.codec for r in rows):
                cand = [r for r in rows if r.codec == codec]
                r = nearest(cand, t)
                key = f"i{i}-{codec}-{r.point}"
                if key not in blobs:
                    data = encoded.get((codec, name, r.point))
                    if data is None:
                        continue
                    blobs[key] = _png(by_name[codec].decode(data))
                entry["codecs"][codec] = {
                    "asset": key, "bpp": round(r.bpp, 4), "psnr": _num(r.psnr, 2),
                    "ms_ssim": _num(r.ms_ssim, 4), "bytes": r.nbytes,
                    "label": compare.scheme_label(_as_summary(r), native_name)}
            lv.append(entry)
        pages.append({"name": name, "width": rows[0].width, "height": rows[0].height,
                      "original": orig_id, "levels": lv})
    total = sum(len(b) for b in blobs.values())
    mode = assets if assets != "auto" else ("embed" if total <= EMBED_LIMIT else "beside")
    srcs: dict[str, str] = {}
    if mode == "beside":
        folder = path.with_name(path.stem + "_files")
        folder.mkdir(exist_ok=True)
        for k, b in blobs.items():
            write_output(str(folder / f"{k}.png"), b, force=True)
            srcs[k] = f"{folder.name}/{k}.png"
    else:
        srcs = {k: "data:image/png;base64," + base64.b64encode(b).decode() for k, b in blobs.items()}
    codecs = [r.name for r in runners]
    doc = _page(result, codecs, pages, srcs, command, bd or {}, native_name,
                _curves_png(result, f"{len(result.images)} image(s): {', '.join(codecs)}"))
    write_output(str(path), doc.encode("utf-8"), force=True)
    if log:
        log(f"html: wrote {path} ({len(doc) / 1e6:.1f} MB, images {mode}, "
            f"{time.perf_counter() - t0:.1f} s)")
    return path


def _num(v: float, nd: int) -> float | None:
    return round(float(v), nd) if v is not None and math.isfinite(v) else None


def _as_summary(r: Row):
    from .compare import Summary

    return Summary(r.codec, r.point, r.quality, r.native, 1, r.bpp, r.mse, r.psnr, r.ssim,
                   r.ms_ssim, r.cr, r.enc_s, r.dec_s, None)


def _page(result: Result, codecs: list[str], pages: list[dict], srcs: dict[str, str],
          command: str, bd: dict[str, Any], native_name: dict[str, str] | None,
          plot_png: bytes) -> str:
    from . import compare

    parts = [f"<h1>gancomp compare: {html.escape(', '.join(codecs))}</h1>",
             f"<p class=meta>{len(result.images)} image(s); "
             f"{html.escape(time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))}"
             + (f"; <code>{html.escape(command)}</code>" if command else "") + "</p>",
             "<h2>Rate-distortion</h2>",
             f"<img class=plot alt='RD curves' src='data:image/png;base64,"
             f"{base64.b64encode(plot_png).decode()}'>",
             "<h2>Table (mean over images per point)</h2>",
             _table(compare.COLUMNS, compare.table_rows(result.summaries, native_name))]
    for metric, title in (("psnr", "BD-rate, PSNR"), ("ms_ssim", "BD-rate, MS-SSIM (dB)")):
        m = bd.get(metric) or {}
        names = list(next(iter(m.values()), {}))
        if names and any(v is not None for row in m.values() for v in row.values()):
            parts += [f"<h3>{title} (negative = fewer bits than the anchor)</h3>",
                      _table(["codec"] + [f"vs {a}" for a in names], compare.bd_rows(m, names))]
    parts.append("<h2>Side by side</h2><p class=meta>Drag the white handle to move the split; "
                 "wheel or buttons to zoom, drag the picture to pan. Each side shows the codec's "
                 "point nearest the chosen rate (its own bpp is printed).</p>")
    for k, p in enumerate(pages):
        parts.append(f"<section class=cmp id=cmp{k} data-index={k}></section>")
    data = {"assets": srcs, "pages": pages, "codecs": codecs}
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<meta name=viewport content='width=device-width,initial-scale=1'>"
            f"<title>gancomp compare</title><style>{_CSS}</style></head><body>"
            + "\n".join(parts)
            + f"<script id=gcdata type=application/json>{payload}</script>"
            f"<script>{_JS}</script></body></html>")


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1200px;padding:0 16px;color:#222}
h1{font-size:22px}h2{font-size:18px;margin-top:28px}h3{font-size:15px}
.meta{color:#666}code{font-size:12px;word-break:break-all}
table{border-collapse:collapse;font-size:12px;margin:8px 0}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}
td:first-child,th:first-child{text-align:left}
img.plot{max-width:100%}
section.cmp{margin:18px 0 30px}
.bar{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin:6px 0}
.bar select,.bar button{font:inherit;padding:2px 6px}
.viewer{position:relative;overflow:hidden;background:#333;height:560px;cursor:grab;
 user-select:none;touch-action:none;border-radius:4px}
.viewer.panning{cursor:grabbing}
.pane{position:absolute;inset:0;overflow:hidden}
.pane img{position:absolute;left:0;top:0;transform-origin:0 0;max-width:none;
 image-rendering:auto;pointer-events:none}
.viewer.pixelated .pane img{image-rendering:pixelated}
.handle{position:absolute;top:0;bottom:0;width:28px;margin-left:-14px;cursor:ew-resize;z-index:3}
.handle::before{content:"";position:absolute;left:13px;top:0;bottom:0;width:2px;background:#fff;
 box-shadow:0 0 3px #000}
.handle::after{content:"\\2194";position:absolute;left:2px;top:50%;width:24px;height:24px;
 margin-top:-12px;border-radius:12px;background:#fff;color:#000;text-align:center;line-height:24px}
.tag{position:absolute;top:6px;z-index:2;background:rgba(0,0,0,.65);color:#fff;padding:2px 8px;
 border-radius:3px;font-size:12px;pointer-events:none}
.tag.l{left:6px}.tag.r{right:6px}
"""

_JS = r"""
(function(){
const D=JSON.parse(document.getElementById('gcdata').textContent);
function el(t,a,p){const e=document.createElement(t);if(a)for(const k in a){if(k==='text')e.textContent=a[k];else e.setAttribute(k,a[k]);}if(p)p.appendChild(e);return e;}
function info(c){if(!c)return '';let s=c.label+' \u00b7 '+c.bpp.toFixed(3)+' bpp';if(c.psnr!==null)s+=' \u00b7 '+c.psnr.toFixed(2)+' dB';if(c.ms_ssim!==null)s+=' \u00b7 MS-SSIM '+c.ms_ssim.toFixed(4);return s;}
function Viewer(sec,P){
  const st={level:0,left:null,right:null,split:0.5,zoom:0,fit:1,x:0,y:0};
  el('h3',{text:P.name+' ('+P.width+'\u00d7'+P.height+')'},sec);
  const bar=el('div',{class:'bar'},sec);
  el('span',{text:'rate'},bar);
  const lv=el('select',{class:'level'},bar);
  P.levels.forEach((L,i)=>el('option',{value:i,text:'\u2248 '+L.target.toFixed(3)+' bpp'},lv));
  el('span',{text:'left'},bar);const ls=el('select',{class:'left'},bar);
  el('span',{text:'right'},bar);const rs=el('select',{class:'right'},bar);
  const zooms=[['fit',0],['1\u00d7',1],['2\u00d7',2],['4\u00d7',4],['8\u00d7',8]];
  zooms.forEach(z=>{const b=el('button',{type:'button',class:'zoom','data-zoom':z[1],text:z[0]},bar);b.onclick=()=>setZoom(z[1]);});
  const zl=el('span',{class:'zoomlabel'},bar);
  const v=el('div',{class:'viewer'},sec);
  const pl=el('div',{class:'pane left'},v), pr=el('div',{class:'pane right'},v);
  const il=el('img',{alt:'left'},pl), ir=el('img',{alt:'right'},pr);
  const tl=el('div',{class:'tag l'},v), tr=el('div',{class:'tag r'},v);
  const h=el('div',{class:'handle',role:'slider',tabindex:'0','aria-label':'split','aria-valuemin':'0','aria-valuemax':'100'},v);
  const names=()=>['original'].concat(Object.keys(P.levels[st.level].codecs));
  function fillSel(){
    const n=names();
    for(const [s,k,dflt] of [[ls,'left',n[1]||n[0]],[rs,'right',n[2]||n[0]]]){
      s.innerHTML='';n.forEach(x=>el('option',{value:x,text:x},s));
      if(!n.includes(st[k]))st[k]=dflt; s.value=st[k];}
  }
  function pick(name){const L=P.levels[st.level];return name==='original'?{src:D.assets[P.original],c:null}:{src:D.assets[L.codecs[name].asset],c:L.codecs[name]};}
  function render(){
    const a=pick(st.left),b=pick(st.right);
    if(il.getAttribute('src')!==a.src)il.src=a.src; if(ir.getAttribute('src')!==b.src)ir.src=b.src;
    tl.textContent=st.left==='original'?'original':info(a.c);
    tr.textContent=st.right==='original'?'original':info(b.c);
    layout();
  }
  function scale(){return st.zoom===0?st.fit:st.zoom;}
  function clamp(){
    const W=v.clientWidth,H=v.clientHeight,s=scale(),w=P.width*s,hh=P.height*s;
    st.x=w<=W?(W-w)/2:Math.min(0,Math.max(W-w,st.x));
    st.y=hh<=H?(H-hh)/2:Math.min(0,Math.max(H-hh,st.y));
  }
  function layout(){
    const W=v.clientWidth,H=v.clientHeight;
    st.fit=Math.min(W/P.width,H/P.height,1);
    clamp();
    const t='translate('+st.x+'px,'+st.y+'px) scale('+scale()+')';
    il.style.transform=t;ir.style.transform=t;
    const sx=Math.round(st.split*W);
    pr.style.clipPath='inset(0 0 0 '+sx+'px)';
    h.style.left=sx+'px';
    h.setAttribute('aria-valuenow',String(Math.round(st.split*100)));
    v.classList.toggle('pixelated',scale()>=2);
    zl.textContent=Math.round(scale()*100)+'%';
  }
  function setZoom(z,cx,cy){
    const W=v.clientWidth,H=v.clientHeight;
    if(cx===undefined){cx=W/2;cy=H/2;}
    const s0=scale();st.zoom=z;const s1=scale();
    st.x=cx-(cx-st.x)*s1/s0; st.y=cy-(cy-st.y)*s1/s0; layout();
  }
  lv.onchange=()=>{st.level=+lv.value;fillSel();render();};
  ls.onchange=()=>{st.left=ls.value;render();};
  rs.onchange=()=>{st.right=rs.value;render();};
  let drag=null;
  h.addEventListener('pointerdown',e=>{drag='split';h.setPointerCapture(e.pointerId);e.preventDefault();e.stopPropagation();});
  v.addEventListener('pointerdown',e=>{if(drag)return;drag={x:e.clientX,y:e.clientY,ox:st.x,oy:st.y};v.classList.add('panning');v.setPointerCapture(e.pointerId);});
  function move(e){
    if(drag==='split'){const r=v.getBoundingClientRect();st.split=Math.min(1,Math.max(0,(e.clientX-r.left)/r.width));layout();}
    else if(drag){st.x=drag.ox+e.clientX-drag.x;st.y=drag.oy+e.clientY-drag.y;layout();}
  }
  function up(){drag=null;v.classList.remove('panning');}
  h.addEventListener('pointermove',move);v.addEventListener('pointermove',move);
  h.addEventListener('pointerup',up);v.addEventListener('pointerup',up);
  h.addEventListener('pointercancel',up);v.addEventListener('pointercancel',up);
  h.addEventListener('keydown',e=>{const d=e.key==='ArrowLeft'?-0.02:e.key==='ArrowRight'?0.02:0;if(d){st.split=Math.min(1,Math.max(0,st.split+d));layout();e.preventDefault();}});
  v.addEventListener('wheel',e=>{e.preventDefault();const r=v.getBoundingClientRect();
    let z=scale()*(e.deltaY<0?1.25:0.8);z=Math.min(16,Math.max(st.fit,z));
    setZoom(Math.abs(z-st.fit)<1e-6?0:z,e.clientX-r.left,e.clientY-r.top);},{passive:false});
  window.addEventListener('resize',layout);
  fillSel();render();
  sec.gcViewer=st;
}
document.querySelectorAll('section.cmp').forEach(s=>Viewer(s,D.pages[+s.dataset.index]));
document.body.dataset.ready='1';
})();
"""
