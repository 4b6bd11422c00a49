"""The UI's one HTML page: the header, the style, and an empty `main` the script fills.

System fonts and a neutral palette, dark text on white; no file from the network. The
project's name is the only value filled in (escaped).
"""

from __future__ import annotations

import html

STYLE = """
:root { color-scheme: light; --ink: #1f2933; --muted: #616e7c; --line: #e4e7eb;
        --soft: #f5f7fa; --accent: #2563eb; --accent-soft: #eff4ff; --row: 32px; }
* { box-sizing: border-box; }
html, body { height: 100%; }
body { margin: 0; background: var(--soft); color: var(--ink);
       font: 13.5px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
header.top { position: sticky; top: 0; z-index: 5; display: flex; align-items: center;
             gap: 28px; height: 52px; padding: 0 24px; background: #fff;
             border-bottom: 1px solid var(--line); }
header.top .brand { font-weight: 650; font-size: 15px; color: var(--ink); }
header.top .brand small { font-weight: 400; color: var(--muted); margin-left: 6px; }
header.top nav { display: flex; gap: 4px; }
header.top nav a { color: var(--muted); padding: 6px 12px; border-radius: 6px; }
header.top nav a:hover { background: var(--soft); text-decoration: none; color: var(--ink); }
header.top nav a.on { color: var(--ink); background: var(--soft); font-weight: 600; }
main { padding: 20px 24px 40px; }
h1 { font-size: 20px; margin: 0 0 4px; font-weight: 650; }
h2 { font-size: 15px; margin: 0 0 10px; font-weight: 650; }
.sub { color: var(--muted); margin: 0 0 16px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px;
        padding: 16px 18px; margin-bottom: 18px; box-shadow: 0 1px 2px rgba(15,23,42,.04); }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 18px; }
.cols { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 18px;
        align-items: start; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line);
         white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
th { font-weight: 600; color: var(--muted); font-size: 12.5px; background: #fafbfc; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre, .mono { font: 12.5px/1.5 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
code { background: var(--soft); padding: 1px 5px; border-radius: 4px; }
pre { background: #0f172a; color: #e2e8f0; padding: 12px 14px; border-radius: 6px;
      overflow: auto; max-height: 420px; margin: 8px 0 0; white-space: pre-wrap; }
.pill { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px;
        background: var(--soft); color: var(--muted); border: 1px solid var(--line); }
.pill.succeeded, .pill.ran { background: #ecfdf3; color: #067647; border-color: #abefc6; }
.pill.failed { background: #fef3f2; color: #b42318; border-color: #fecdca; }
.pill.running { background: #eff8ff; color: #175cd3; border-color: #b2ddff; }
.pill.interrupted { background: #fffaeb; color: #b54708; border-color: #fedf89; }
.pill.restored { background: #f4f3ff; color: #5925dc; border-color: #d9d6fe; }
.pill.alias { background: var(--accent-soft); color: var(--accent); border-color: #c7d7fe; }
.muted { color: var(--muted); }
.warn { color: #b54708; }
button, select, input { font: inherit; color: var(--ink); }
button { background: #fff; border: 1px solid #cbd2d9; border-radius: 6px; padding: 5px 12px;
         cursor: pointer; }
button:hover:not(:disabled) { background: var(--soft); }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
button.primary:hover:not(:disabled) { background: #1d4ed8; }
button:disabled { opacity: .45; cursor: default; }
input[type=search], select { border: 1px solid #cbd2d9; border-radius: 6px; padding: 5px 9px;
                             background: #fff; }
input[type=search] { width: 420px; }
.toolbar { display: flex; align-items: center; gap: 10px; margin-bottom: 12px; flex-wrap: wrap; }
.toolbar .count { color: var(--muted); margin-left: auto; }
.viewport { background: #fff; border: 1px solid var(--line); border-radius: 8px;
            overflow: auto; max-height: calc(100vh - 190px); min-height: 120px; }
.viewport table { table-layout: fixed; width: auto; }
.viewport thead th { position: sticky; top: 0; z-index: 2; cursor: pointer; user-select: none;
                     height: var(--row); }
.viewport thead th.group { cursor: default; text-align: center; color: var(--ink);
                           border-left: 1px solid var(--line); }
.viewport thead tr.names th { top: var(--row); }
.viewport thead th.sorted { color: var(--ink); }
.viewport tbody tr { height: var(--row); }
.viewport tbody tr:hover td { background: #f8fafc; }
.viewport tbody tr.sel td { background: var(--accent-soft); }
.viewport td.first { border-left: 1px solid var(--line); }
.viewport td { font-variant-numeric: tabular-nums; }
.kv td:first-child { color: var(--muted); width: 38%; }
.meta { display: flex; flex-wrap: wrap; gap: 6px 22px; color: var(--muted); margin-top: 6px; }
.meta b { color: var(--ink); font-weight: 500; }
.graph { overflow: auto; }
.graph svg text { font: 12.5px system-ui, -apple-system, "Segoe UI", Helvetica, sans-serif; }
.error { border-color: #fecdca; background: #fef3f2; color: #b42318; }
.error .hint { color: var(--muted); margin-top: 4px; }
.empty { color: var(--muted); padding: 28px; text-align: center; }
details summary { cursor: pointer; color: var(--accent); }
.pkgs { columns: 3 260px; margin-top: 8px; }
.pkgs div { break-inside: avoid; }
.vis { min-height: 60px; }
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{title} · pipeline</title>
<style>{style}</style>
</head>
<body>
<header class="top">
  <a class="brand" href="#/runs">{title}<small>pipeline</small></a>
  <nav>
    <a href="#/runs" data-nav="runs">Runs</a>
    <a href="#/compare" data-nav="compare">Compare</a>
    <a href="#/dag" data-nav="dag">DAG</a>
    <a href="#/models" data-nav="models">Models</a>
  </nav>
</header>
<main id="app"></main>
<script src="/app.js"></script>
</body>
</html>
"""


def page(title: str) -> str:
    """The page, headed with the project's name."""
    return PAGE.format(title=html.escape(title), style=STYLE)
