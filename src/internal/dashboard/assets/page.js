// The live page of `pipeline serve`. It renders /api/status, streamed as
// server-sent events from /api/stream. Every value from the bucket (keys,
// reasons, reports, bytes) is put in the page as text: textContent and
// attribute values, never markup.
'use strict';

(() => {
  const SVGNS = 'http://www.w3.org/2000/svg';

  // el builds an HTML element: attrs are properties ("class" → className,
  // "data-*" → attributes), children are nodes or strings (text).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else if (k.startsWith('data-') || k === 'tabindex' || k === 'role' || k === 'title') e.setAttribute(k, String(v));
      else e[k] = v;
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }

  // sv builds an SVG element; attrs are set as attributes.
  function sv(tag, attrs, ...children) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }

  const num = (n) => (n == null ? '–' : Number(n).toLocaleString('en-US'));
  const plural = (n, one, many) => `${num(n)} ${n === 1 ? one : (many || one + 's')}`;

  function clock(t) {
    if (!t) return '–';
    const d = new Date(t);
    return isNaN(d) ? '–' : d.toLocaleTimeString('en-GB');
  }

  function stamp(t) {
    if (!t) return '–';
    const d = new Date(t);
    return isNaN(d) ? '–' : d.toISOString().replace('T', ' ');
  }

  function age(s) {
    if (s == null) return '–';
    s = Math.max(0, s);
    if (s < 90) return `${Math.round(s)} s`;
    if (s < 90 * 60) return `${Math.round(s / 60)} min`;
    if (s < 36 * 3600) return `${(s / 3600).toFixed(1)} h`;
    return `${(s / 86400).toFixed(1)} d`;
  }

  const fnName = (id) => String(id || '').replace(/Function$/, '');

  // ---- the chain ----------------------------------------------------------

  const W = 150, H = 70, GAP = 90, X0 = 10;
  const col = (i) => X0 + i * (W + GAP);
  const ROW1 = 30, ROW2 = 270;

  function node(g, id, x, y, w, h, title, lines, kind) {
    const n = sv('g', { 'data-node': id, class: 'node ' + kind });
    n.append(sv('rect', { x, y, width: w, height: h, rx: 8 }));
    n.append(sv('text', { x: x + w / 2, y: y + 22, class: 'title' }, title));
    lines.forEach((l, i) => n.append(sv('text', { x: x + w / 2, y: y + 40 + i * 16, class: 'count' }, l)));
    g.append(n);
  }

  function edge(g, id, d, lx, ly, lines, warn) {
    const e = sv('g', { 'data-edge': id, class: 'edge' + (warn ? ' warn' : '') });
    e.append(sv('path', { d, 'marker-end': 'url(#arrow)' }));
    lines.forEach((l, i) => e.append(sv('text', { x: lx, y: ly + i * 14, class: 'label' }, l)));
    g.append(e);
  }

  function renderChain(st) {
    const q = {};
    for (const s of st.queues || []) q[s.target] = s;
    const tq = q.TransformFunction || {}, lq = q.LoadQueue || {};
    const obj = st.objects || {}, wr = st.written || {}, runs = st.runs || {};
    const rows = Object.values(st.tables || {}).reduce((a, b) => a + b, 0);
    const svg = sv('svg', { viewBox: '0 0 1130 424', width: '100%', class: 'chain-svg' });
    svg.append(sv('defs', {}, sv('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
      sv('path', { d: 'M0,0 L10,5 L0,10 z' }))));
    const g = sv('g', {});
    svg.append(g);
    const mid1 = ROW1 + H / 2, mid2 = ROW2 + H / 2;
    const right = (i) => col(i) + W, left = (i) => col(i);
    const h1 = (i, id, lines, warn) => edge(g, id, `M${right(i)},${mid1} L${left(i + 1) - 2},${mid1}`, right(i) + GAP / 2, mid1 - 8 - 14 * (lines.length - 1), lines, warn);
    const h2 = (i, id, lines, warn) => edge(g, id, `M${right(i)},${mid2} L${left(i + 1) - 2},${mid2}`, right(i) + GAP / 2, mid2 - 8 - 14 * (lines.length - 1), lines, warn);

    h1(0, 'eventbridge-extract', [plural(runs.crawl || 0, 'crawl')]);
    h1(1, 'extract-raw', [`${num(wr['raw/'] || 0)} written`]);
    h1(2, 'raw-transform', [`${num(tq.visible || 0)} waiting`, `${num(tq.inFlight || 0)} in flight`, `${num(tq.deadLetters || 0)} failed`], tq.deadLetters > 0);
    h1(3, 'transform-processed', [`${num(wr['processed/'] || 0)} written`]);
    // processed/ (end of row 1) down to the queue (start of row 2)
    const px = col(4) + W / 2, qx = col(0) + W / 2, yMid = 225;
    edge(g, 'processed-queue', `M${px},${ROW1 + H} L${px},${yMid} L${qx},${yMid} L${qx},${ROW2 - 2}`, (px + qx) / 2 + 180, yMid - 6, [`${num(lq.sent || 0)} sent`]);
    h2(0, 'queue-load', [`${num(lq.visible || 0)} visible`, `${num(lq.inFlight || 0)} in flight`]);
    h2(1, 'load-mysql', [`${num(st.rowsLoaded || 0)} rows`]);
    h2(2, 'mysql-export', [plural(runs.export || 0, 'export')]);
    h2(3, 'export-exports', [`${num(wr[st.exportPrefix] || 0)} written`]);
    // side branches: rejected/ and quarantine/ under Transform, the DLQ under the queue
    const tx = col(3) + W / 2, sy = 140;
    edge(g, 'transform-rejected', `M${tx - 20},${ROW1 + H} L${col(3) - 5 + 50},${sy - 2}`, col(3) - 45, sy - 12, [`${num(wr['rejected/'] || 0)} written`]);
    edge(g, 'transform-quarantine', `M${tx + 20},${ROW1 + H} L${col(3) + 105 + 50},${sy - 2}`, col(3) + 205, sy - 12, [`${num(wr['quarantine/'] || 0)} written`]);
    edge(g, 'queue-dlq', `M${qx},${ROW2 + H} L${qx},${ROW2 + H + 38}`, qx + 70, ROW2 + H + 24, [`${num(lq.deadLetters || 0)} dead-lettered`], lq.deadLetters > 0);

    const tr = q.TransformFunction || {};
    node(g, 'eventbridge', col(0), ROW1, W, H, 'EventBridge', ['schedules'], 'trigger');
    node(g, 'extract', col(1), ROW1, W, H, 'Extract', [plural(runs.crawl || 0, 'run')], 'fn');
    node(g, 'raw', col(2), ROW1, W, H, 'raw/', [plural(obj['raw/'] || 0, 'object')], 'area');
    node(g, 'transform', col(3), ROW1, W, H, 'Transform', [plural(tr.deliveries || 0, 'invocation'), plural(tr.redeliveries || 0, 'retry', 'retries')], 'fn');
    node(g, 'processed', col(4), ROW1, W, H, 'processed/', [plural(obj['processed/'] || 0, 'file')], 'area');
    node(g, 'rejected', col(3) - 5, sy, 100, 50, 'rejected/', [plural(obj['rejected/'] || 0, 'file')], 'area bad');
    node(g, 'quarantine', col(3) + 105, sy, 100, 50, 'quarantine/', [plural(obj['quarantine/'] || 0, 'object')], 'area bad');
    node(g, 'queue', col(0), ROW2, W, H, 'LoadQueue', [`${num(lq.waiting || 0)} waiting`], 'queue');
    node(g, 'dlq', col(0), ROW2 + H + 40, W, 36, 'dead letters', [], 'queue bad');
    node(g, 'load', col(1), ROW2, W, H, 'Load', [plural(lq.deliveries || 0, 'message'), `${num(lq.redeliveries || 0)} redelivered`], 'fn');
    node(g, 'mysql', col(2), ROW2, W, H, 'MySQL', [plural(rows, 'row')], 'db');
    node(g, 'export', col(3), ROW2, W, H, 'Export', [plural(runs.export || 0, 'run')], 'fn');
    node(g, 'exports', col(4), ROW2, W, H, st.exportPrefix || 'exports/', [plural(obj[st.exportPrefix] || 0, 'file')], 'area');
    const dlqText = svg.querySelector('[data-node="dlq"] text.title');
    dlqText.textContent = `dead letters: ${num(lq.deadLetters || 0)}`;

    document.getElementById('chain').replaceChildren(svg);
  }

  // ---- tables -------------------------------------------------------------

  function renderTables(st) {
    const body = document.querySelector('#tables tbody');
    const rows = (st.tableInfo || []).map((t) => {
      const w = t.watermark;
      let mark = 'none yet', markAge = '–', markRows = '–';
      if (w && w.error) mark = 'unreadable: ' + w.error;
      else if (w) {
        mark = stamp(w.timestamp);
        markAge = age(w.ageSeconds);
        markRows = num(w.rows);
      }
      return el('tr', { 'data-table': t.name },
        el('td', {}, t.name),
        el('td', { class: 'n', 'data-field': 'rows' }, t.error ? '0 (' + t.error + ')' : num(t.rows)),
        el('td', { class: 'n', 'data-field': 'changed' }, num(t.changedLastRun)),
        el('td', { 'data-field': 'modified' }, stamp(t.lastModified)),
        el('td', { 'data-field': 'watermark', title: w ? `run ${w.runId}, written ${stamp(w.updatedAt)}` : '' }, mark),
        el('td', { class: 'n', 'data-field': 'age' }, markAge),
        el('td', { class: 'n', 'data-field': 'exported' }, markRows));
    });
    body.replaceChildren(...rows);
    document.getElementById('last-run').textContent = st.lastRunStart
      ? `The last run started at ${clock(st.lastRunStart)} (a crawl, or the first object dropped into raw/ while the chain was idle).`
      : 'No run yet: "changed in the last run" counts rows created or modified since the last run started.';
  }

  // ---- quarantined and rejected -------------------------------------------

  let shown = '';

  async function showDetail(key) {
    shown = key;
    const box = document.getElementById('detail');
    document.getElementById('detail-key').textContent = key;
    document.getElementById('detail-report').textContent = 'loading…';
    document.getElementById('detail-bytes').textContent = '';
    box.hidden = false;
    try {
      const r = await fetch('/api/object?key=' + encodeURIComponent(key));
      const d = await r.json();
      if (shown !== key) return;
      if (!r.ok) throw new Error(d.error || r.statusText);
      document.getElementById('detail-report').textContent = d.kind === 'rejected' ? '(a rejected file is its own report: one JSON line per record, with the reason)' : d.report;
      document.getElementById('detail-head-title').textContent =
        `first ${num(d.headBytes)} of ${num(d.size)} bytes` + (d.binary ? ' (not text: shown with replacement characters)' : '');
      document.getElementById('detail-bytes').textContent = d.head;
    } catch (e) {
      document.getElementById('detail-report').textContent = 'cannot read it: ' + e.message;
    }
  }

  function renderProblems(st) {
    const body = document.querySelector('#problems tbody');
    const ps = st.problems || [];
    if (ps.length === 0) {
      body.replaceChildren(el('tr', {}, el('td', { colSpan: 5, class: 'empty' }, 'none')));
      return;
    }
    body.replaceChildren(...ps.map((p) => {
      const tr = el('tr', { 'data-key': p.key, 'data-kind': p.kind, tabindex: 0, role: 'button', class: 'clickable ' + (p.kind === 'rejected' ? 'rejected' : 'quarantined') },
        el('td', {}, p.kind === 'rejected' ? `rejected (${num(p.records)})` : 'quarantined'),
        el('td', { class: 'key' }, p.source || p.key),
        el('td', {}, p.stage || ''),
        el('td', { class: 'reason' }, p.reason),
        el('td', {}, clock(p.time)));
      tr.addEventListener('click', () => showDetail(p.key));
      tr.addEventListener('keydown', (e) => { if (e.key === 'Enter') showDetail(p.key); });
      return tr;
    }));
  }

  // ---- events, actions, errors --------------------------------------------

  const outcomeClass = { transformed: 'ok', loaded: 'ok', skipped: 'meh', quarantined: 'bad', rejected: 'bad', failed: 'bad' };

  function renderEvents(st) {
    const body = document.querySelector('#events tbody');
    const evs = (st.events || []).slice(0, 60);
    if (evs.length === 0) {
      body.replaceChildren(el('tr', {}, el('td', { colSpan: 6, class: 'empty' }, 'nothing yet: drop a file under raw/ or crawl')));
      return;
    }
    body.replaceChildren(...evs.map((e) => el('tr', { 'data-outcome': e.outcome },
      el('td', {}, clock(e.time)),
      el('td', { class: 'key' }, e.key),
      el('td', {}, fnName(e.function)),
      el('td', { class: outcomeClass[e.outcome] || '' }, e.outcome + (e.rows ? ` (${num(e.rows)} rows)` : '')),
      el('td', { class: 'n' }, e.seconds != null ? e.seconds.toFixed(3) + ' s' : '–'),
      el('td', { class: 'reason' }, e.error || ''))));
  }

  function renderActions(st) {
    const list = document.getElementById('actions');
    list.replaceChildren(...(st.actions || []).slice(0, 8).map((a) => el('li', { 'data-action': a.name, 'data-state': a.state },
      `${clock(a.time)} ${a.name} (${a.why}): ${a.state}${a.summary ? ' — ' + a.summary : ''}`)));
  }

  function renderErrors(st) {
    const list = document.getElementById('errors');
    const errs = st.errors || [];
    list.replaceChildren(...(errs.length ? errs.map((e) => el('li', { class: 'bad' }, e)) : [el('li', { class: 'empty' }, 'none')]));
  }

  function render(st) {
    renderChain(st);
    renderTables(st);
    renderProblems(st);
    renderEvents(st);
    renderActions(st);
    renderErrors(st);
    const live = document.getElementById('live');
    live.dataset.state = 'live';
    live.textContent = `live · ${clock(st.time)}`;
  }

  // ---- actions ------------------------------------------------------------

  async function act(name, body) {
    const msg = document.getElementById('action-msg');
    msg.textContent = `${name}: asking…`;
    try {
      const r = await fetch('/api/actions/' + name, { method: 'POST', body: body || new URLSearchParams() });
      const d = await r.json();
      msg.textContent = r.ok ? `${name}: queued` : `${name}: ${d.error || r.statusText}`;
    } catch (e) {
      msg.textContent = `${name}: ${e.message}`;
    }
  }

  function wire() {
    document.getElementById('crawl').addEventListener('click', () => act('crawl'));
    document.getElementById('export').addEventListener('click', () => act('export'));
    document.getElementById('reprocess').addEventListener('click', () => {
      const prefix = document.getElementById('prefix').value.trim() || 'raw/';
      if (!window.confirm(`Reprocess every .json object under ${prefix}?\n\nEach one is copied onto itself, so Transform runs on it again and Load applies its files again.`)) return;
      act('reprocess', new URLSearchParams({ prefix }));
    });
    document.getElementById('detail-close').addEventListener('click', () => {
      shown = '';
      document.getElementById('detail').hidden = true;
    });
  }

  // ---- updates ------------------------------------------------------------

  function connect() {
    const live = document.getElementById('live');
    if (!window.EventSource) {
      const poll = async () => {
        try {
          const r = await fetch('/api/status');
          render(await r.json());
        } catch (e) {
          live.dataset.state = 'down';
          live.textContent = 'cannot reach serve: ' + e.message;
        }
        setTimeout(poll, 1500);
      };
      poll();
      return;
    }
    const es = new EventSource('/api/stream');
    es.addEventListener('status', (e) => render(JSON.parse(e.data)));
    es.onerror = () => {
      live.dataset.state = 'down';
      live.textContent = 'reconnecting… (is serve still running?)';
    };
  }

  wire();
  connect();
})();
