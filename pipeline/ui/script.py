"""The UI's script: a small single-page app in plain JavaScript (no framework, no network).

Routes live in the URL's fragment (`#/runs`, `#/compare/ID,ID`, `#/run/ID`, `#/dag`,
`#/models/NAME`), each drawn from its `/api/…` document. The runs table keeps every run in
columns and draws only the rows in view (virtual scrolling), so sorting and filtering 10,000
runs never touches more than a screenful of the DOM. Vega is loaded only by pages with charts.
When a page is drawn, `body[data-ready]` names it (tests and the bench wait on that).
The whole script is one function scope, so nothing it names is global.
"""

SCRIPT = r"""
// One function scope: Vega's bundle, loaded later as a classic script, declares short global
// names (`h`, `s`, ...) that would clash with top-level ones here.
(() => {
'use strict';
const app = document.getElementById('app');
const ROW = 32;

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}
const svgNS = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...kids) {
  const el = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const kid of kids.flat(Infinity)) if (kid) el.append(kid);
  return el;
}

class ApiError extends Error {
  constructor(message, hint) { super(message); this.hint = hint; }
}
async function api(path) {
  let response;
  try { response = await fetch(path); } catch (e) {
    throw new ApiError('the server is not answering', 'is `pipeline ui` still running?');
  }
  const data = await response.json().catch(() => ({error: response.statusText}));
  if (!response.ok) throw new ApiError(data.error || response.statusText, data.hint);
  return data;
}
function failure(err) {
  return h('div', {class: 'card error'}, h('b', {}, err.message),
           err.hint ? h('div', {class: 'hint'}, err.hint) : null);
}
function ready(name) {
  performance.mark('ready-' + name);
  document.body.dataset.ready = name;
}

// --- formatting ---------------------------------------------------------------------------
function fmtTime(t) {
  if (t === null || t === undefined) return '';
  const d = new Date(t * 1000), p = n => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
         `${p(d.getHours())}:${p(d.getMinutes())}`;
}
function fmtDur(sec) {
  if (sec === null || sec === undefined) return '';
  if (sec < 10) return sec.toFixed(1) + ' s';
  if (sec < 60) return Math.round(sec) + ' s';
  if (sec < 3600) return Math.floor(sec / 60) + ' min ' + Math.round(sec % 60) + ' s';
  return Math.floor(sec / 3600) + ' h ' + Math.round((sec % 3600) / 60) + ' min';
}
function fmtVal(v) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') {
    if (Number.isInteger(v)) return String(v);
    return String(Number(v.toPrecision(5)));
  }
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}
function pill(text, cls) { return h('span', {class: 'pill ' + (cls || text)}, text); }
function short(id) { return id && id.length > 24 ? id.slice(0, 12) + '…' : id || ''; }
function runLink(id, label) { return h('a', {href: '#/run/' + id}, label || short(id)); }

// --- routing ------------------------------------------------------------------------------
const routes = {runs: runsPage, compare: comparePage, run: runPage, dag: dagPage,
                models: modelsPage};
let current = null;
function route() {
  const [name, ...rest] = (location.hash.replace(/^#\/?/, '') || 'runs').split('/');
  const arg = decodeURIComponent(rest.join('/'));
  for (const a of document.querySelectorAll('header nav a'))
    a.classList.toggle('on', a.dataset.nav === (name === 'run' ? 'runs' : name));
  delete document.body.dataset.ready;
  if (current && current.leave) current.leave();
  current = null;
  app.replaceChildren();
  const page = routes[name] || notFound;
  Promise.resolve(page(arg)).then(c => { current = c || null; })
    .catch(err => { app.replaceChildren(failure(err)); ready('error'); });
}
window.addEventListener('hashchange', route);
function notFound() { throw new ApiError('no page ' + location.hash, 'see the runs'); }

// --- the runs table -----------------------------------------------------------------------
const runsState = {data: null, selected: new Set(), sort: {col: 'started', desc: true},
                   query: '', status: '', user: ''};

async function runsPage() {
  const loading = h('div', {class: 'empty'}, 'Loading runs…');
  app.append(loading);
  runsState.data = await api('/api/runs');
  loading.remove();
  return new RunsTable(runsState);
}

class RunsTable {
  constructor(state) {
    this.state = state;
    const d = state.data;
    this.n = d.count;
    this.columns = [
      {key: 'name', title: 'Run', width: 180, get: i => d.runs.name[i] || d.runs.id[i],
       cell: i => d.runs.name[i] ? runLink(d.runs.id[i], d.runs.name[i]) :
         h('a', {href: '#/run/' + d.runs.id[i], class: 'mono', style: 'font-size:12px'},
           d.runs.id[i])},
      {key: 'status', title: 'Status', width: 108, get: i => d.runs.status[i],
       cell: i => pill(d.runs.status[i])},
      {key: 'user', title: 'User', width: 84, get: i => d.runs.user[i]},
      {key: 'started', title: 'Started', width: 142, get: i => d.runs.started[i],
       show: fmtTime},
      {key: 'seconds', title: 'Duration', width: 100, get: i => d.runs.seconds[i], show: fmtDur,
       num: true},
      {key: 'commit', title: 'Commit', width: 80, get: i => d.runs.commit[i], mono: true},
    ];
    this.fixed = this.columns.length;
    for (const group of ['params', 'metrics'])
      for (const [k, values] of Object.entries(d[group]))
        this.columns.push({key: group + ':' + k, name: k, group, title: k, width: 100,
                           get: i => values[i], show: fmtVal, num: true});
    this.build();
    this.apply();
  }
  build() {
    const st = this.state, d = st.data;
    const users = [...new Set(d.runs.user.filter(u => u))].sort();
    const statuses = [...new Set(d.runs.status)].sort();
    this.search = h('input', {type: 'search', value: st.query, placeholder:
      'Filter: text, or lr>0.01 accuracy>=0.9 model=forest',
      oninput: () => { st.query = this.search.value; this.apply(); }});
    const select = (label, values, key) => {
      const el = h('select', {onchange: () => { st[key] = el.value; this.apply(); }},
        h('option', {value: ''}, label), values.map(v => h('option', {value: v}, v)));
      el.value = st[key];
      return el;
    };
    this.count = h('span', {class: 'count'});
    this.compare = h('button', {class: 'primary', id: 'compare-selected',
      onclick: () => { location.hash = '#/compare/' + [...st.selected].join(','); }});
    this.clear = h('button', {onclick: () => { st.selected.clear(); this.draw(); }},
                   'Clear selection');
    const toolbar = h('div', {class: 'toolbar'}, this.search,
      select('Any status', statuses, 'status'), select('Any user', users, 'user'),
      this.count, this.clear, this.compare);
    this.body = h('tbody');
    this.viewport = h('div', {class: 'viewport', onscroll: () => this.schedule()},
      h('table', {style: `width:${this.width()}px`}, this.colgroup(), this.head(), this.body));
    this.body.addEventListener('change', e => this.toggle(e.target));
    app.append(h('h1', {}, 'Runs'),
      h('p', {class: 'sub'}, `${d.count.toLocaleString()} runs recorded. ` +
        'Click a column to sort, select runs to compare them.'),
      toolbar, this.viewport);
    this.search.focus();
  }
  width() { return 34 + this.columns.reduce((a, c) => a + c.width, 0); }
  colgroup() {
    return h('colgroup', {}, h('col', {style: 'width:34px'}),
             this.columns.map(c => h('col', {style: `width:${c.width}px`})));
  }
  head() {
    const d = this.state.data, groups = h('tr', {});
    groups.append(h('th', {colspan: this.fixed + 1, class: 'group'}, ''));
    for (const g of ['params', 'metrics']) {
      const n = Object.keys(d[g]).length;
      if (n) groups.append(h('th', {colspan: n, class: 'group'}, g === 'params' ?
                                    'Parameters' : 'Metrics'));
    }
    this.headers = this.columns.map(c => h('th', {class: c.num ? 'num' : '', title: c.title,
      onclick: () => this.sortBy(c)}, c.title));
    return h('thead', {}, groups, h('tr', {class: 'names'}, h('th', {}, ''), this.headers));
  }
  sortBy(col) {
    const sort = this.state.sort;
    sort.desc = sort.col === col.key ? !sort.desc : col.key !== 'name';
    sort.col = col.key;
    this.apply();
  }
  matcher() {
    const st = this.state, d = st.data, tests = [];
    const words = st.query.trim().split(/\s+/).filter(w => w);
    for (const word of words) {
      const m = word.match(/^([^<>=!~]+?)(<=|>=|!=|==|=|<|>|~)(.*)$/);
      const col = m && this.find(m[1]);
      if (!col) {
        const w = word.toLowerCase();
        tests.push(i => (d.runs.name[i] || '').toLowerCase().includes(w) ||
                        d.runs.id[i].startsWith(w) || (d.runs.commit[i] || '').startsWith(w));
        continue;
      }
      tests.push(compareTest(col, m[2], m[3]));
    }
    if (st.status) tests.push(i => d.runs.status[i] === st.status);
    if (st.user) tests.push(i => d.runs.user[i] === st.user);
    return i => tests.every(t => t(i));
  }
  find(name) {
    const cols = this.columns.slice(this.fixed);
    return cols.find(c => c.name === name) ||
           cols.find(c => c.name.endsWith('.' + name) || c.name.endsWith(':' + name)) ||
           this.columns.slice(0, this.fixed).find(c => c.key === name);
  }
  apply() {
    const keep = this.matcher(), order = [];
    for (let i = 0; i < this.n; i++) if (keep(i)) order.push(i);
    const col = this.columns.find(c => c.key === this.state.sort.col) || this.columns[3];
    const key = new Array(this.n);
    for (const i of order) key[i] = col.get(i);
    const sign = this.state.sort.desc ? -1 : 1;
    order.sort((a, b) => {
      const x = key[a], y = key[b];
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      if (typeof x === 'number' && typeof y === 'number') return sign * (x - y);
      return sign * String(x).localeCompare(String(y));
    });
    this.order = order;
    this.headers.forEach((th, j) => {
      const on = this.columns[j].key === col.key;
      th.classList.toggle('sorted', on);
      th.textContent = this.columns[j].title + (on ? (this.state.sort.desc ? ' ↓' : ' ↑') : '');
    });
    this.viewport.scrollTop = 0;
    this.draw();
  }
  schedule() {
    if (this.pending) return;
    this.pending = requestAnimationFrame(() => { this.pending = 0; this.draw(); });
  }
  draw() {
    const st = this.state, d = st.data, total = this.order.length;
    const view = Math.max(this.viewport.clientHeight, window.innerHeight);  // grows to fit
    const first = Math.max(0, Math.floor(this.viewport.scrollTop / ROW) - 10);
    const last = Math.min(total, first + Math.ceil(view / ROW) + 20);
    const rows = [h('tr', {style: `height:${first * ROW}px`})];
    for (let k = first; k < last; k++) {
      const i = this.order[k], id = d.runs.id[i], on = st.selected.has(id);
      const tr = h('tr', {class: on ? 'sel' : null, 'data-id': id},
        h('td', {}, h('input', {type: 'checkbox', checked: on, 'data-id': id,
                                 'aria-label': 'select ' + id})));
      this.columns.forEach((c, j) => {
        const v = c.get(i);
        const td = h('td', {class: [c.num ? 'num' : '', c.mono ? 'mono' : '',
                                    j === this.fixed ? 'first' : ''].join(' ')});
        td.append(c.cell ? c.cell(i) : (c.show ? c.show(v) : fmtVal(v)));
        tr.append(td);
      });
      rows.push(tr);
    }
    rows.push(h('tr', {style: `height:${(total - last) * ROW}px`}));
    this.body.replaceChildren(...rows);
    if (!total) this.body.replaceChildren(h('tr', {}, h('td', {colspan: this.columns.length + 1,
      class: 'empty'}, d.count ? 'No run matches the filter.' : 'No runs recorded yet: ' +
      'run `pipeline repro` or `pipeline run`.')));
    this.count.textContent = total === d.count ? `${total.toLocaleString()} runs` :
      `${total.toLocaleString()} of ${d.count.toLocaleString()} runs`;
    const n = st.selected.size;
    this.compare.textContent = n ? `Compare ${n} run${n === 1 ? '' : 's'}` : 'Compare';
    this.compare.disabled = n === 0;
    this.clear.disabled = n === 0;
    ready('runs');
  }
  toggle(box) {
    if (!box.dataset.id) return;
    const sel = this.state.selected;
    if (box.checked) sel.add(box.dataset.id); else sel.delete(box.dataset.id);
    this.draw();
  }
}

function compareTest(col, op, text) {
  const num = Number(text), numeric = text !== '' && !Number.isNaN(num);
  return i => {
    const v = col.get(i);
    if (v === null || v === undefined) return op === '!=';
    if (op === '~') return fmtVal(v).toLowerCase().includes(text.toLowerCase());
    const a = numeric && typeof v === 'number' ? v : fmtVal(v);
    const b = numeric && typeof v === 'number' ? num : text;
    switch (op) {
      case '<': return a < b;
      case '<=': return a <= b;
      case '>': return a > b;
      case '>=': return a >= b;
      case '!=': return a !== b;
      default: return a === b;
    }
  };
}

// --- charts -------------------------------------------------------------------------------
let vegaLoading = null;
function loadVega() {
  if (!vegaLoading) vegaLoading = new Promise((resolve, reject) => {
    const tag = h('script', {src: '/vega.js'});
    tag.onload = resolve;
    tag.onerror = () => reject(new ApiError('cannot load Vega from the server',
                                            'install vl-convert-python: pip install pipeline[ui]'));
    document.head.append(tag);
  });
  return vegaLoading;
}
async function drawCurves(container, curves) {
  if (!curves.length) {
    container.append(h('p', {class: 'muted'}, 'No metric histories were logged by these runs ' +
      '(pipeline.track.log_metric with a step).'));
    return;
  }
  await loadVega();
  performance.mark('vega-loaded');
  const grid = h('div', {class: 'grid'});
  container.append(grid);
  const points = curves.reduce((a, c) => a + c.spec.data.values.length, 0);
  const renderer = points > 4000 ? 'canvas' : 'svg';  // thousands of SVG nodes are slow
  const jobs = curves.map(curve => {
    const vis = h('div', {class: 'vis', 'data-key': curve.key});
    grid.append(h('div', {class: 'card'}, h('h2', {}, curve.key), vis));
    const width = Math.max(280, vis.clientWidth - 70);  // room for the y axis
    const spec = Object.assign({}, curve.spec, {width, height: 260});
    delete spec.title;  // the card's heading says it
    if (curve.lines > 12 && spec.encoding && spec.encoding.color) {  // a legend of 100 runs
      spec.encoding = Object.assign({}, spec.encoding,   // hides the chart: tooltips name them
        {color: Object.assign({}, spec.encoding.color, {legend: null})});
      spec.mark = Object.assign({}, spec.mark, {point: false, strokeWidth: 1.2, opacity: 0.8});
    }
    return window.vegaEmbed(vis, spec, {actions: false, renderer});
  });
  await Promise.all(jobs);
}

// --- compare ------------------------------------------------------------------------------
async function comparePage(arg) {
  const ids = arg ? arg.split(',').filter(x => x) : [...runsState.selected];
  if (!ids.length) {
    app.append(h('h1', {}, 'Compare'), h('div', {class: 'card empty'},
      'Select runs in the ', h('a', {href: '#/runs'}, 'runs table'), ' to compare them.'));
    ready('compare');
    return;
  }
  loadVega().catch(() => {});  // parsing Vega overlaps the query; drawCurves reports a failure
  const data = await api('/api/compare?runs=' + encodeURIComponent(ids.join(',')));
  performance.mark('compare-data');
  app.append(h('h1', {}, `Comparing ${data.runs.length} runs`),
    h('p', {class: 'sub'}, data.params.length ?
      `${data.params.length} parameter${data.params.length === 1 ? ' differs' : 's differ'}; ` +
      'every metric is shown.' : 'No parameter differs between these runs.'));
  const cols = [...data.params.map(k => ['param', k]), ...data.metrics.map(k => ['metric', k])];
  const head = h('tr', {}, h('th', {}, 'Run'), h('th', {}, 'Status'), h('th', {}, 'Started'),
    cols.map(([g, k]) => h('th', {class: 'num', title: k}, g === 'param' ? k : k)));
  const groups = h('tr', {}, h('th', {colspan: 3}, ''),
    data.params.length ? h('th', {colspan: data.params.length, class: 'num'}, 'Parameters') : null,
    data.metrics.length ? h('th', {colspan: data.metrics.length, class: 'num'}, 'Metrics') : null);
  const best = bests(data);
  const rows = data.runs.map(r => h('tr', {},
    h('td', {}, runLink(r.id, r.name || short(r.id))), h('td', {}, pill(r.status)),
    h('td', {}, fmtTime(r.started_at)),
    cols.map(([g, k]) => {
      const v = data.values[r.id][k];
      return h('td', {class: 'num', style: best[k] === v && g === 'metric' &&
                      data.runs.length > 1 ? 'font-weight:650' : null}, fmtVal(v));
    })));
  app.append(h('div', {class: 'card', style: 'overflow:auto'},
                h('table', {}, h('thead', {}, groups, head), h('tbody', {}, rows))));
  const charts = h('div', {id: 'curves'}, h('h2', {}, 'Metric curves'));
  app.append(charts);
  await drawCurves(charts, data.curves);
  ready('compare');
}
function bests(data) {
  const found = {};
  for (const k of data.metrics) {
    const values = data.runs.map(r => data.values[r.id][k]).filter(v => typeof v === 'number');
    if (values.length) found[k] = /loss|err|rmse|mae|mse/i.test(k) ? Math.min(...values) :
                                  Math.max(...values);
  }
  return found;
}

// --- one run ------------------------------------------------------------------------------
async function runPage(ref) {
  loadVega().catch(() => {});
  const d = await api('/api/runs/' + encodeURIComponent(ref));
  const r = d.run;
  app.append(h('div', {class: 'card'},
    h('h1', {}, r.name || r.id, ' ', pill(r.status)),
    h('div', {class: 'mono muted'}, r.command),
    h('div', {class: 'meta'},
      h('span', {}, 'id ', h('b', {class: 'mono'}, r.id)),
      h('span', {}, 'kind ', h('b', {}, r.kind)),
      r.user ? h('span', {}, 'by ', h('b', {}, r.user + (r.host ? '@' + r.host : ''))) : null,
      h('span', {}, 'started ', h('b', {}, fmtTime(r.started_at))),
      r.seconds !== null ? h('span', {}, 'took ', h('b', {}, fmtDur(r.seconds))) : null,
      r.git_commit ? h('span', {}, 'commit ', h('b', {class: 'mono'}, r.git_commit.slice(0, 10) +
        (r.git_dirty ? ' (dirty)' : '')), r.git_branch ? ' on ' + r.git_branch : '') : null,
      r.parent_id ? h('span', {}, 'sweep ', runLink(r.parent_id)) : null),
    r.note ? h('p', {class: r.status === 'failed' ? 'warn' : 'muted'}, r.note) : null,
    r.missing_objects ? h('p', {class: 'warn'}, 'Some objects this run needs are gone from ' +
      'the cache (`pipeline pull --runs` or `pipeline repro` brings them back).') : null));
  if (d.children.length) {  // a sweep: its points hold the params, metrics and outputs
    app.append(pointsCard(d.children));
    ready('run');
    return;
  }
  app.append(h('div', {class: 'cols'}, kvCard('Parameters', d.params),
                                        kvCard('Metrics', d.metrics)));
  if (d.stages.length) app.append(stagesCard(r, d.stages));
  // the lineage beside the packages and logged values when there are any: a chain of files
  // and stages is drawn top to bottom in half the width
  const side = [packagesCard(d.stages), loggedCard(d.logged)].filter(x => x);
  const wide = app.clientWidth - 40;
  if (side.length) app.append(h('div', {class: 'cols'}, lineageCard(d.lineage, wide / 2 - 40),
                                 h('div', {}, side)));
  else app.append(lineageCard(d.lineage, wide));
  const charts = h('div', {class: 'card', id: 'curves'}, h('h2', {}, 'Metric curves'));
  app.append(charts);
  await drawCurves(charts, d.curves);
  ready('run');
}
function kvCard(title, values) {
  const keys = Object.keys(values).sort();
  return h('div', {class: 'card'}, h('h2', {}, title), keys.length ?
    h('table', {class: 'kv'}, h('tbody', {}, keys.map(k =>
      h('tr', {}, h('td', {title: k}, k), h('td', {class: 'num'}, fmtVal(values[k])))))) :
    h('p', {class: 'muted'}, 'None recorded.'));
}
function pointsCard(children) {
  return h('div', {class: 'card'}, h('h2', {}, `Sweep points (${children.length})`),
    h('p', {}, h('button', {class: 'primary', onclick: () => {
      location.hash = '#/compare/' + children.map(c => c.id).join(','); }},
      'Compare the points')),
    h('table', {}, h('tbody', {}, children.map(c => h('tr', {},
      h('td', {}, runLink(c.id, c.name || short(c.id))), h('td', {}, pill(c.status)),
      h('td', {}, fmtDur(c.seconds)))))));
}
function stagesCard(run, stages) {
  const logs = h('div', {});
  const rows = stages.map(st => h('tr', {},
    h('td', {}, h('b', {}, st.stage)), h('td', {}, pill(st.outcome, st.outcome.replace(/ /g, '-'))),
    h('td', {class: 'num'}, st.started_at && st.ended_at ? fmtDur(st.ended_at - st.started_at) :
      ''),
    h('td', {style: 'white-space:normal'}, (st.reasons || []).join('; ') || h('span',
      {class: 'muted'}, st.outcome === 'up to date' ? 'nothing changed' : '')),
    h('td', {}, st.env_name || ''),
    h('td', {}, st.log_hash ? h('button', {onclick: () => showLog(run.id, st.stage, logs)},
                                'Log') : '')));
  return h('div', {class: 'card'}, h('h2', {}, 'Stages'), timeline(stages),
    h('table', {}, h('thead', {}, h('tr', {}, ['Stage', 'Outcome', 'Took', 'Why (decision)',
      'Environment', ''].map(t => h('th', {}, t)))), h('tbody', {}, rows)), logs);
}
async function showLog(run, stage, into) {
  into.replaceChildren(h('p', {class: 'muted'}, 'Loading the log of ' + stage + '…'));
  try {
    const data = await api(`/api/runs/${encodeURIComponent(run)}/logs/` +
                           stage.split('/').map(encodeURIComponent).join('/'));
    into.replaceChildren(...data.logs.map(l => h('div', {},
      h('h2', {style: 'margin-top:14px'}, 'Log of ' + l.stage),
      l.text === null ? h('p', {class: 'warn'}, 'The log is gone from the cache.') :
        h('pre', {class: 'log'}, (l.cut ? '… (the start is cut)\n' : '') + l.text))));
  } catch (err) { into.replaceChildren(failure(err)); }
}
function timeline(stages) {
  const timed = stages.filter(s => s.started_at && s.ended_at);
  if (!timed.length) return null;
  const t0 = Math.min(...timed.map(s => s.started_at));
  const t1 = Math.max(...timed.map(s => s.ended_at));
  const span = Math.max(t1 - t0, 1e-3), W = 900, L = 170, bar = 18, gap = 8;
  const colors = {ran: '#16a34a', failed: '#dc2626', restored: '#7c3aed'};
  const rows = timed.map((st, k) => {
    const x = L + (st.started_at - t0) / span * (W - L - 60);
    const w = Math.max(3, (st.ended_at - st.started_at) / span * (W - L - 60));
    const y = k * (bar + gap);
    return s('g', {}, s('text', {x: L - 10, y: y + 13, 'text-anchor': 'end', fill: '#1f2933'},
                       document.createTextNode(st.stage)),
      s('rect', {x, y, width: w, height: bar, rx: 3, fill: colors[st.outcome] || '#94a3b8'}),
      s('text', {x: x + w + 6, y: y + 13, fill: '#616e7c'},
        document.createTextNode(fmtDur(st.ended_at - st.started_at))));
  });
  const height = timed.length * (bar + gap);
  return h('div', {class: 'graph', style: 'margin-bottom:12px'},
    s('svg', {width: W, height, viewBox: `0 0 ${W} ${height}`, class: 'timeline'}, rows));
}
function packagesCard(stages) {
  const withPkgs = stages.filter(st => st.packages && st.packages.length);
  if (!withPkgs.length) return null;
  return h('div', {class: 'card'}, h('h2', {}, 'Environment packages'),
    withPkgs.map(st => h('details', {},
      h('summary', {}, `${st.stage}: ${st.env_name || 'environment'} ` +
                       `(${st.packages.length} packages)`),
      h('div', {class: 'pkgs mono'},
        st.packages.map(p => h('div', {}, p[0] + ' ' + (p[1] || '')))))));
}
function loggedCard(logged) {
  const tags = Object.entries(logged.tags || {}).flatMap(([stage, kv]) =>
    Object.entries(kv).map(([k, v]) => [stage, k, v]));
  const arts = logged.artifacts || [], errs = logged.errors || [];
  if (!tags.length && !arts.length && !errs.length) return null;
  const table = (head, rows) => h('table', {style: 'margin-bottom:10px'},
    h('thead', {}, h('tr', {}, head.map(t => h('th', {}, t)))),
    h('tbody', {}, rows.map(r => h('tr', {}, r.map(c => h('td', {}, c))))));
  return h('div', {class: 'card', id: 'logged'}, h('h2', {}, 'Logged from code'),
    errs.length ? errs.map(e => h('p', {class: 'warn'}, `${e.stage}: ${e.message}`)) : null,
    tags.length ? table(['Stage', 'Tag', 'Value'], tags) : null,
    arts.length ? table(['Stage', 'Artifact', 'Size'], arts.map(a => [a.stage, a.path,
      a.hash === null ? h('span', {class: 'warn'}, 'gone') : fmtBytes(a.size)])) : null);
}
function fmtBytes(n) {
  if (n === null || n === undefined) return '';
  const units = ['B', 'KB', 'MB', 'GB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + ' ' + units[i];
}
function lineageCard(graph, room) {
  const card = h('div', {class: 'card'}, h('h2', {}, 'Lineage'));
  if (!graph.nodes.length) {
    card.append(h('p', {class: 'muted'}, 'No output of this run was traced to a recorded stage.'));
    return card;
  }
  card.append(h('p', {class: 'sub'}, 'Each output, the stage run that wrote it, and its ' +
                                    'inputs back to raw data (dashed).'),
              drawGraph(graph, room));
  return card;
}

// --- graphs: layered layout, left to right ---------------------------------------------------
// Layers by longest path from the sources, ordered by the mean position of each node's
// parents. An edge between neighbouring layers is a curve from side to side; one that skips
// layers runs below the nodes, so it never hides behind the nodes in between.
function layers(graph, ups) {
  const layer = new Map();
  const depth = (id, seen) => {
    if (layer.has(id)) return layer.get(id);
    if (seen.has(id)) return 0;
    seen.add(id);
    const l = Math.max(-1, ...ups.get(id).map(u => depth(u, seen))) + 1;
    layer.set(id, l);
    return l;
  };
  graph.nodes.forEach(n => depth(n.id, new Set()));
  const found = [];
  for (const n of graph.nodes) (found[layer.get(n.id)] = found[layer.get(n.id)] || []).push(n);
  return found.filter(x => x);
}
function drawGraph(graph, room) {
  const ids = new Set(graph.nodes.map(n => n.id));
  const edges = graph.edges.filter(([a, b]) => ids.has(a) && ids.has(b) && a !== b);
  const ups = new Map(graph.nodes.map(n => [n.id, []]));
  for (const [a, b] of edges) ups.get(b).push(a);
  const cut = t => (t.length > 40 ? '…' + t.slice(-39) : t);
  const NH = graph.nodes.some(n => n.sub) ? 46 : 34;
  const width = n => Math.min(320, 26 + Math.max(cut(n.label).length * 7.4,
                                                   n.sub ? cut(n.sub).length * 6.6 : 0));
  const all = layers(graph, ups);
  const ordered = new Map();
  all.forEach((nodes, l) => {
    if (l > 0) {
      const bary = n => { const u = ups.get(n.id).map(v => ordered.get(v));
                          return u.length ? u.reduce((a, b) => a + b, 0) / u.length : 0; };
      nodes.sort((a, b) => bary(a) - bary(b));
    }
    nodes.forEach((n, i) => ordered.set(n.id, i));
  });
  let placed = across(all, width, NH);
  if (room && placed.W > room) placed = down(all, width, NH);  // too wide: top to bottom
  const {pos, W, vertical} = placed;
  const skips = edges.some(([a, b]) => pos.get(b).l - pos.get(a).l > 1);
  const H = placed.H + (skips && !vertical ? 40 : 0);  // room for the curves below
  const marker = s('marker', {id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse'},
    s('path', {d: 'M0,0 L10,5 L0,10 z', fill: '#9aa5b1'}));
  const lines = edges.map(([a, b]) => s('path', {d: edgePath(pos.get(a), pos.get(b), NH, vertical),
    fill: 'none', stroke: '#9aa5b1', 'stroke-width': 1.4, 'marker-end': 'url(#arrow)'}));
  const nodes = graph.nodes.map(n => node(n, pos.get(n.id), NH, cut));
  return h('div', {class: 'graph'}, s('svg', {width: W, height: H, viewBox: `0 0 ${W} ${H}`},
    s('defs', {}, marker), lines, nodes));
}
function across(all, width, NH) {  // layers as columns, left to right
  const VG = 18, HG = 48, PAD = 10, pos = new Map();
  const tallest = Math.max(...all.map(ns => ns.length));
  let x = PAD;
  all.forEach((nodes, l) => {
    const w = Math.max(...nodes.map(width));
    nodes.forEach((n, i) => pos.set(n.id, {l, w: width(n), x: x + (w - width(n)) / 2,
      y: PAD / 2 + (tallest - nodes.length) * (NH + VG) / 2 + i * (NH + VG) + VG / 2}));
    x += w + HG;
  });
  return {pos, W: x - HG + PAD, H: tallest * (NH + VG) + PAD, vertical: false};
}
function down(all, width, NH) {  // layers as rows, top to bottom
  const VG = 36, HG = 24, PAD = 10, pos = new Map();
  const rowW = all.map(ns => ns.reduce((a, n) => a + width(n) + HG, -HG));
  const widest = Math.max(...rowW);
  all.forEach((nodes, l) => {
    let x = PAD + (widest - rowW[l]) / 2;
    for (const n of nodes) {
      pos.set(n.id, {l, w: width(n), x, y: PAD + l * (NH + VG)});
      x += width(n) + HG;
    }
  });
  return {pos, W: widest + 2 * PAD + 60, H: all.length * (NH + VG) - VG + 2 * PAD,
          vertical: true};
}
function edgePath(p, q, NH, vertical) {
  const skips = q.l - p.l > 1;
  if (vertical && skips) {  // around the right of the nodes in between
    const x1 = p.x + p.w, y1 = p.y + NH / 2, x2 = q.x + q.w + 2, y2 = q.y + NH / 2;
    const out = Math.max(x1, x2) + 40;
    return `M${x1},${y1} C${out},${y1} ${out},${y2} ${x2},${y2}`;
  }
  if (vertical) {
    const x1 = p.x + p.w / 2, y1 = p.y + NH, x2 = q.x + q.w / 2, y2 = q.y - 2;
    const m = (y1 + y2) / 2;
    return `M${x1},${y1} C${x1},${m} ${x2},${m} ${x2},${y2}`;
  }
  if (skips) {  // below the nodes in between
    const x1 = p.x + p.w / 2, y1 = p.y + NH, x2 = q.x + q.w / 2, y2 = q.y + NH + 2;
    const low = Math.max(y1, y2) + 30;
    return `M${x1},${y1} C${x1},${low} ${x2},${low} ${x2},${y2}`;
  }
  const x1 = p.x + p.w, y1 = p.y + NH / 2, x2 = q.x - 2, y2 = q.y + NH / 2, m = (x1 + x2) / 2;
  return `M${x1},${y1} C${m},${y1} ${m},${y2} ${x2},${y2}`;
}
function node(n, p, NH, cut) {
  const stage = n.kind !== 'file';
  const title = s('title', {}, document.createTextNode(n.title || n.id));
  const shape = s('rect', {x: p.x, y: p.y, width: p.w, height: NH, rx: stage ? 8 : 3,
    fill: stage ? '#eff4ff' : '#fff', stroke: stage ? '#84a9f5' : '#9aa5b1',
    'stroke-dasharray': n.raw ? '4 3' : 'none'});
  const middle = p.y + (n.sub ? 19 : NH / 2 + 4);
  const text = s('text', {x: p.x + p.w / 2, y: middle, 'text-anchor': 'middle', fill: '#1f2933',
    'font-weight': stage ? 600 : 400}, document.createTextNode(cut(n.label)));
  const sub = n.sub ? s('text', {x: p.x + p.w / 2, y: middle + 16, 'text-anchor': 'middle',
    fill: '#616e7c', 'font-size': 11, class: 'mono'}, document.createTextNode(cut(n.sub))) : null;
  const g = s('g', {class: 'node ' + (n.kind || 'stage')}, title, shape, text, sub);
  return n.run ? s('a', {href: '#/run/' + n.run}, g) : g;
}

// --- the project's DAG ----------------------------------------------------------------------
async function dagPage() {
  const graph = await api('/api/dag');
  app.append(h('h1', {}, 'Pipeline'), h('p', {class: 'sub'},
    `${graph.nodes.length} stages; each after the stages it reads from (as \`pipeline dag\`).`));
  app.append(h('div', {class: 'card', id: 'dag'}, graph.nodes.length ?
    drawGraph(graph, app.clientWidth - 40) :
    h('p', {class: 'empty'}, 'The project has no stages.')));
  ready('dag');
}

// --- the model registry ---------------------------------------------------------------------
async function modelsPage(name) {
  if (name) return modelPage(name);
  const data = await api('/api/models');
  app.append(h('h1', {}, 'Models'), h('p', {class: 'sub'}, 'The model registry: ' +
    'named models, their versions and aliases (`pipeline registry`).'));
  if (!data.models.length) {
    app.append(h('div', {class: 'card empty'}, 'No model is registered yet: ',
                 h('code', {}, 'pipeline registry add NAME MODEL'), '.'));
    ready('models');
    return;
  }
  app.append(h('div', {class: 'card'}, h('table', {id: 'models'},
    h('thead', {}, h('tr', {}, ['Model', 'Versions', 'Latest', 'Aliases', 'Updated']
      .map(t => h('th', {}, t)))),
    h('tbody', {}, data.models.map(m => h('tr', {},
      h('td', {}, h('a', {href: '#/models/' + encodeURIComponent(m.name)}, h('b', {}, m.name))),
      h('td', {}, m.versions), h('td', {}, 'v' + m.latest),
      h('td', {}, Object.entries(m.aliases).map(([a, v]) => [pill(`${a} → v${v}`, 'alias'), ' '])),
      h('td', {}, fmtTime(m.updated_at))))))));
  ready('models');
}
async function modelPage(name) {
  const data = await api('/api/models/' + encodeURIComponent(name));
  app.append(h('p', {class: 'sub'}, h('a', {href: '#/models'}, 'Models'), ' / ' + name),
             h('h1', {}, name));
  app.append(h('div', {class: 'card'}, h('h2', {}, 'Versions'), h('table', {id: 'versions'},
    h('thead', {}, h('tr', {}, ['Version', 'Aliases', 'Package', 'Run', 'Stage', 'Registered',
      'By', 'Description'].map(t => h('th', {}, t)))),
    h('tbody', {}, data.versions.map(v => h('tr', {},
      h('td', {}, h('b', {}, 'v' + v.version)),
      h('td', {}, v.aliases.map(a => [pill(a, 'alias'), ' '])),
      h('td', {class: 'mono', title: v.hash}, v.hash.split(':').pop().slice(0, 12)),
      h('td', {}, v.run_id ? runLink(v.run_id) : ''), h('td', {}, v.stage || ''),
      h('td', {}, fmtTime(v.created_at)), h('td', {}, v.user || ''),
      h('td', {style: 'white-space:normal'}, v.description || '')))))));
  app.append(h('div', {class: 'card'}, h('h2', {}, 'History'), h('table', {id: 'history'},
    h('thead', {}, h('tr', {}, ['When', 'Who', 'Change', 'Message'].map(t => h('th', {}, t)))),
    h('tbody', {}, data.history.slice().reverse().map(e => h('tr', {},
      h('td', {}, fmtTime(e.at)), h('td', {}, e.actor || ''), h('td', {}, describe(e)),
      h('td', {style: 'white-space:normal'}, e.message || '')))))));
  ready('model');
}
function describe(e) {
  const v = n => (n === null || n === undefined ? '-' : 'v' + n);
  switch (e.action) {
    case 'register': return `registered ${v(e.to_version)}`;
    case 'alias': return `@${e.alias}: ${v(e.from_version)} → ${v(e.to_version)}`;
    case 'unalias': return `removed @${e.alias} (was ${v(e.from_version)})`;
    case 'tag': return `tag ${e.key}=${e.value}` + (e.to_version ? ` on ${v(e.to_version)}` : '');
    case 'untag': return `removed tag ${e.key}`;
    default: return e.action;
  }
}

route();
})();
"""
