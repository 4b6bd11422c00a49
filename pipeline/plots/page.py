"""The HTML page around the charts: a header listing them, a card per chart, the scripts.

Placeholders `{{name}}` are filled by `output.write_html` (values already escaped).
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}}</title>
<style>
  :root { color-scheme: light; --ink: #1f2933; --muted: #616e7c; --line: #e4e7eb; }
  * { box-sizing: border-box; }
  body { margin: 0; background: #f5f7fa; color: var(--ink);
         font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
  header { background: #fff; border-bottom: 1px solid var(--line); padding: 20px 32px 12px; }
  h1 { margin: 0 0 4px; font-size: 22px; }
  .meta { margin: 0 0 8px; color: var(--muted); }
  nav ol { margin: 0; padding: 0; list-style: none; display: flex; flex-wrap: wrap; gap: 6px 16px; }
  nav a { color: #2563eb; text-decoration: none; }
  nav a:hover { text-decoration: underline; }
  main { display: flex; flex-wrap: wrap; gap: 24px; padding: 24px 32px; align-items: flex-start; }
  section.plot { background: #fff; border: 1px solid var(--line); border-radius: 8px;
                 padding: 16px 20px; max-width: 100%; overflow-x: auto;
                 box-shadow: 0 1px 2px rgba(15, 23, 42, .04); }
  h2 { margin: 0; font-size: 16px; }
  .src { margin: 2px 0 10px; color: var(--muted); font-size: 12.5px; }
  code { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
         background: #f1f3f5; padding: 1px 4px; border-radius: 4px; }
  .missing { margin: 0 0 8px; padding-left: 18px; color: #b45309; font-size: 12.5px; }
  .vis { min-height: 40px; }
  .vis.failed { color: #b91c1c; }
  figure { display: inline-block; margin: 0 16px 8px 0; }
  figure img { max-width: 560px; border: 1px solid var(--line); }
  figcaption { color: var(--muted); font-size: 12.5px; }
</style>
</head>
<body>
<header>{{header}}</header>
<main>
{{sections}}
</main>
<script type="application/json" id="specs">{{specs}}</script>
<script>{{bundle}}</script>
<script>
  // Each chart draws on its own: one that fails says so in its place, the others still draw.
  // `data-done` tells a watcher (a test, a screenshot tool) that every chart has finished.
  (async () => {
    const specs = JSON.parse(document.getElementById("specs").textContent);
    const actions = { export: true, source: true, compiled: false, editor: false };
    const options = { renderer: "svg", actions };
    let drawn = 0;
    for (const [id, spec] of specs) {
      const target = document.getElementById(id);
      try {
        await vegaEmbed(target, spec, options);
        drawn += 1;
      } catch (error) {
        target.classList.add("failed");
        target.textContent = "This chart could not be drawn: " + error;
      }
    }
    document.body.dataset.drawn = String(drawn);
    document.body.dataset.done = "true";
  })();
</script>
</body>
</html>
"""
