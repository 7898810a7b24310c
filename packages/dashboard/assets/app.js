/*
 * perfstack dashboard: reads /api/snapshot once, then /api/stream (Server-Sent Events),
 * and draws everything itself on <canvas> — no library, no CDN, works offline.
 *
 * Written for a strict Content-Security-Policy: no inline script or handler, no eval.
 * Every value from the server goes into the page as text (textContent), never parsed as HTML:
 * route names and breaker names come from users' URLs.
 */
(() => {
  const HISTORY = 180;
  const token = document.querySelector('meta[name="csrf-token"]')?.getAttribute('content') ?? '';
  const $ = (id) => document.getElementById(id);

  // ---------- formatting ----------
  const fmtInt = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–');
  const fmtNum = (n, d = 1) => {
    if (!Number.isFinite(n)) return '–';
    const a = Math.abs(n);
    if (a >= 1e9) return `${(n / 1e9).toFixed(d)}G`;
    if (a >= 1e6) return `${(n / 1e6).toFixed(d)}M`;
    if (a >= 1e4) return `${(n / 1e3).toFixed(d)}k`;
    return a >= 100 || Number.isInteger(n) ? String(Math.round(n)) : n.toFixed(d);
  };
  const fmtMs = (n) => {
    if (!Number.isFinite(n)) return '–';
    if (n >= 1000) return `${(n / 1000).toFixed(2)} s`;
    return `${n >= 100 ? Math.round(n) : n.toFixed(1)} ms`;
  };
  const fmtPct = (r) => (Number.isFinite(r) ? `${(r * 100).toFixed(r >= 0.1 || r === 0 ? 1 : 2)}%` : '–');
  const fmtBytes = (b) => {
    if (!Number.isFinite(b)) return '–';
    const units = ['B', 'KB', 'MB', 'GB', 'TB'];
    let i = 0;
    let v = b;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
  };
  const fmtAgo = (ms) => {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
    return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  };

  // ---------- DOM helpers (text only) ----------
  function el(tag, props, children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null) continue;
        if (k === 'text') node.textContent = String(v);
        else if (k === 'className') node.className = v;
        else node.setAttribute(k, String(v));
      }
    }
    if (children) for (const c of children) if (c) node.appendChild(c);
    return node;
  }
  const clear = (node) => {
    while (node.firstChild) node.removeChild(node.firstChild);
  };
  function statList(node, pairs) {
    clear(node);
    for (const [k, v] of pairs) {
      node.appendChild(el('dt', { text: k }));
      node.appendChild(el('dd', { text: v }));
    }
  }

  // ---------- key figures ----------
  const KPIS = [
    { id: 'rps', label: 'Requests / s' },
    { id: 'p95', label: 'Latency p95' },
    { id: 'errors', label: 'Error rate' },
    { id: 'hit', label: 'Cache hit ratio' },
    { id: 'blocked', label: 'Rate-limit blocks' },
    { id: 'breakers', label: 'Open breakers' },
    { id: 'loop', label: 'Event-loop p99' },
    { id: 'memory', label: 'Memory (RSS)' },
    { id: 'cpu', label: 'CPU' },
    { id: 'rejected', label: 'Size rejections' },
    { id: 'retries', label: 'Outbound retry rate' },
  ];
  const kpiNodes = {};
  for (const k of KPIS) {
    const value = el('div', { className: 'value', text: '–' });
    const sub = el('div', { className: 'sub', text: '\u00a0' });
    const box = el('div', { className: 'kpi', 'data-kpi': k.id }, [
      el('div', { className: 'label', text: k.label }),
      value,
      sub,
    ]);
    kpiNodes[k.id] = { box, value, sub };
    $('kpis').appendChild(box);
  }
  function setKpi(id, value, sub, level) {
    const k = kpiNodes[id];
    k.value.textContent = value;
    k.sub.textContent = sub || '\u00a0';
    k.box.className = `kpi${level ? ` ${level}` : ''}`;
  }

  // ---------- charts ----------
  const COLORS = ['#38bdf8', '#a78bfa', '#f472b6', '#22c55e', '#f59e0b'];
  const CHARTS = [
    { id: 'rps', title: 'Requests / s', series: ['req/s'], fmt: (v) => fmtNum(v) },
    { id: 'latency', title: 'Latency', series: ['p50', 'p95', 'p99'], fmt: fmtMs },
    { id: 'errors', title: 'Error rate (5xx)', series: ['errors'], fmt: fmtPct, colors: ['#ef4444'] },
    { id: 'hit', title: 'Cache hit ratio', series: ['hit ratio'], fmt: fmtPct, max: 1, colors: ['#22c55e'] },
    {
      id: 'blocked',
      title: 'Rate-limit blocks / s',
      series: ['blocked/s'],
      fmt: (v) => fmtNum(v),
      colors: ['#f59e0b'],
    },
    {
      id: 'breakers',
      title: 'Breakers',
      series: ['open', 'half-open'],
      fmt: (v) => fmtNum(v, 0),
      colors: ['#ef4444', '#f59e0b'],
      step: true,
      integer: true,
    },
    { id: 'loop', title: 'Event-loop delay', series: ['p50', 'p99'], fmt: fmtMs },
    { id: 'memory', title: 'Memory', series: ['rss', 'heap used'], fmt: fmtBytes },
  ];
  const history = { t: [] };
  const charts = {};
  for (const c of CHARTS) {
    const colors = c.colors || COLORS;
    const legend = el(
      'div',
      { className: 'legend' },
      c.series.map((s, i) => {
        const swatch = el('i');
        swatch.style.background = colors[i];
        return el('span', null, [swatch, document.createTextNode(s)]);
      }),
    );
    const now = el('span', { className: 'muted' });
    const canvas = el('canvas', { 'aria-label': `${c.title} chart`, role: 'img', 'data-chart': c.id });
    const card = el('section', { className: 'card chart' }, [
      el('div', { className: 'head' }, [el('h3', { text: c.title }), now]),
      legend,
      canvas,
    ]);
    $('charts').appendChild(card);
    charts[c.id] = { ...c, colors, canvas, now };
    history[c.id] = c.series.map(() => []);
  }

  /** The smallest "round" top of the axis (4 ticks of 1, 2, 2.5 or 5 × 10^k) above `value`. */
  function niceMax(value, integer) {
    if (!(value > 0)) return integer ? 4 : 1;
    const rawStep = (value * 1.1) / 4;
    const power = 10 ** Math.floor(Math.log10(rawStep));
    let step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((m) => m >= rawStep) ?? 10 * power;
    if (integer) step = Math.max(1, Math.ceil(step));
    return step * 4;
  }

  function drawChart(chart) {
    const canvas = chart.canvas;
    const dpr = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (width === 0 || height === 0) return;
    if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
      canvas.width = Math.round(width * dpr);
      canvas.height = Math.round(height * dpr);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const view = currentView();
    const data = view.data[chart.id];
    let max = chart.max || 0;
    if (!chart.max) {
      for (const s of data) for (const v of s) if (v > max) max = v;
      max = niceMax(max, chart.integer);
    }
    const left = 58;
    const right = 8;
    const top = 6;
    const bottom = 18;
    const plotW = width - left - right;
    const plotH = height - top - bottom;
    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    ctx.textAlign = 'right';
    for (let i = 0; i <= 4; i++) {
      const y = top + plotH - (plotH * i) / 4;
      ctx.strokeStyle = i === 0 ? '#2b3756' : '#1b2540';
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(left, Math.round(y) + 0.5);
      ctx.lineTo(width - right, Math.round(y) + 0.5);
      ctx.stroke();
      ctx.fillStyle = '#7c879c';
      ctx.fillText(chart.fmt((max * i) / 4), left - 6, y);
    }
    ctx.textAlign = 'left';
    ctx.textBaseline = 'alphabetic';
    ctx.fillStyle = '#5d6882';
    ctx.fillText(`${fmtAgo(view.span)} ago`, left, height - 4);
    ctx.textAlign = 'right';
    ctx.fillText('now', width - right, height - 4);
    const times = view.t;
    const n = times.length;
    if (n === 0) return;
    // By time, not by index: seeded points (10 s apart) and streamed ones (1 s) sit where they belong.
    const end = times[n - 1];
    const x = (i) => left + plotW * Math.max(0, 1 - (end - times[i]) / view.span);
    const y = (v) => top + plotH - (Math.min(v, max) / max) * plotH;
    data.forEach((series, si) => {
      ctx.strokeStyle = chart.colors[si];
      ctx.lineWidth = 1.6;
      ctx.lineJoin = 'round';
      ctx.beginPath();
      series.forEach((v, i) => {
        const px = x(i);
        const py = y(Number.isFinite(v) ? v : 0);
        if (i === 0) ctx.moveTo(px, py);
        else if (chart.step) {
          ctx.lineTo(px, y(Number.isFinite(series[i - 1]) ? series[i - 1] : 0));
          ctx.lineTo(px, py);
        } else ctx.lineTo(px, py);
      });
      ctx.stroke();
      if (si === 0 && series.length > 1) {
        ctx.lineTo(x(series.length - 1), top + plotH);
        ctx.lineTo(x(0), top + plotH);
        ctx.closePath();
        ctx.globalAlpha = 0.09;
        ctx.fillStyle = chart.colors[0];
        ctx.fill();
        ctx.globalAlpha = 1;
      }
    });
    const lastValues = data.map((s) => s[s.length - 1]);
    chart.now.textContent = lastValues.map((v) => chart.fmt(v)).join(' / ');
  }

  // ---------- ranges: live (the stream), 15 min and 24 h (the server's history) ----------
  const RANGES = { live: null, '15m': 'fine', '24h': 'coarse' };
  let range = 'live';
  let served = null; // the last GET api/history
  /** The charts' values of one server history point, in CHARTS order. */
  const pointValues = (p) => ({
    rps: [p.rps],
    latency: [p.p50, p.p95, p.p99],
    errors: [p.errorRate],
    hit: [p.hitRatio ?? 0],
    blocked: [p.blockedPerSecond],
    breakers: [p.open, p.halfOpen],
    loop: [p.loopP50, p.loopP99],
    memory: [p.rssBytes, p.heapUsedBytes],
  });
  function currentView() {
    const tier = RANGES[range];
    if (tier === null || served === null) {
      return { t: history.t, data: history, span: (HISTORY - 1) * streamStep };
    }
    const { stepMs, points } = served[tier];
    if (points.length === 0) return { t: [], data: history, span: stepMs };
    const data = {};
    for (const c of CHARTS) data[c.id] = c.series.map(() => []);
    for (const p of points) {
      const values = pointValues(p);
      for (const c of CHARTS) {
        const row = values[c.id];
        for (let i = 0; i < row.length; i++) data[c.id][i].push(row[i]);
      }
    }
    return { t: points.map((p) => p.at), data, span: Math.max(1, served[tier].capacity - 1) * stepMs };
  }
  /** Fills the live charts with the server's fine points older than the first streamed one. */
  function seed(report) {
    if (!report?.fine) return;
    const first = history.t.length > 0 ? history.t[0] : Number.POSITIVE_INFINITY;
    const older = report.fine.points.filter((p) => p.at < first).slice(-HISTORY);
    if (older.length === 0) return;
    history.t.unshift(...older.map((p) => p.at));
    for (const c of CHARTS) {
      const columns = c.series.map((_, i) => older.map((p) => pointValues(p)[c.id][i]));
      const series = history[c.id];
      for (let i = 0; i < series.length; i++) series[i].unshift(...columns[i]);
    }
    document.body.dataset.seeded = String(older.length);
  }
  async function loadHistory() {
    try {
      const response = await fetch('api/history', { credentials: 'same-origin', cache: 'no-store' });
      if (!response.ok) return;
      served = await response.json();
      drawAll();
    } catch {
      // The live charts work without it.
    }
  }
  function setRange(next) {
    range = next;
    for (const button of document.querySelectorAll('#ranges button')) {
      button.setAttribute('aria-pressed', String(button.dataset.range === next));
    }
    if (next !== 'live') void loadHistory();
    drawAll();
  }
  const rangeBar = el(
    'div',
    { className: 'ranges', id: 'ranges', role: 'group', 'aria-label': 'Chart range' },
    Object.keys(RANGES).map((name) => {
      const button = el('button', { type: 'button', text: name === 'live' ? 'live' : name });
      button.dataset.range = name;
      button.setAttribute('aria-pressed', String(name === range));
      button.addEventListener('click', () => setRange(name));
      return button;
    }),
  );
  $('charts').before(rangeBar);
  setInterval(() => {
    if (range !== 'live') void loadHistory();
  }, 10_000);

  let drawQueued = false;
  function drawAll() {
    if (drawQueued) return;
    drawQueued = true;
    requestAnimationFrame(() => {
      drawQueued = false;
      for (const c of Object.values(charts)) drawChart(c);
    });
  }
  window.addEventListener('resize', drawAll);

  // ---------- snapshot → page ----------
  let streamStep = 1000;
  let previous = null;

  function push(id, values) {
    history[id].forEach((series, i) => {
      series.push(values[i]);
      if (series.length > HISTORY) series.shift();
    });
  }

  function record(s) {
    let blockedPerSecond = 0;
    if (previous && s.rateLimit && previous.rateLimit && s.at > previous.at) {
      blockedPerSecond = Math.max(0, s.rateLimit.blocked - previous.rateLimit.blocked) / ((s.at - previous.at) / 1000);
      streamStep = Math.max(250, Math.min(10000, s.at - previous.at));
    }
    history.t.push(s.at);
    if (history.t.length > HISTORY) history.t.shift();
    push('rps', [s.requests.rps]);
    push('latency', [s.latency.p50, s.latency.p95, s.latency.p99]);
    push('errors', [s.requests.errorRate]);
    push('hit', [s.cache ? s.cache.hitRatio : 0]);
    push('blocked', [blockedPerSecond]);
    push('breakers', [s.breakers ? s.breakers.open : 0, s.breakers ? s.breakers.halfOpen : 0]);
    push('loop', [s.process.eventLoopDelayMs.p50, s.process.eventLoopDelayMs.p99]);
    push('memory', [s.process.rssBytes, s.process.heapUsedBytes]);
    return blockedPerSecond;
  }

  function renderKpis(s, blockedPerSecond) {
    const r = s.requests;
    setKpi('rps', fmtNum(r.rps), `${fmtInt(r.total)} total · ${fmtInt(r.inFlight)} in flight`);
    setKpi(
      'p95',
      fmtMs(s.latency.p95),
      `p50 ${fmtMs(s.latency.p50)} · p99 ${fmtMs(s.latency.p99)}`,
      s.latency.p95 > 200 ? 'warn' : '',
    );
    setKpi(
      'errors',
      fmtPct(r.errorRate),
      `${fmtInt(r.errors)} 5xx last minute`,
      r.errorRate > 0.05 ? 'bad' : r.errorRate > 0.01 ? 'warn' : '',
    );
    if (s.cache) {
      const level = s.cache.hits + s.cache.misses > 0 && s.cache.hitRatio < 0.7 ? 'warn' : '';
      setKpi('hit', fmtPct(s.cache.hitRatio), `${fmtInt(s.cache.hits)} hits · ${fmtInt(s.cache.misses)} misses`, level);
    } else setKpi('hit', 'off', 'no cache', 'off');
    if (s.rateLimit)
      setKpi(
        'blocked',
        fmtInt(s.rateLimit.blocked),
        `${fmtNum(blockedPerSecond)}/s now`,
        blockedPerSecond > 0 ? 'warn' : '',
      );
    else setKpi('blocked', 'off', 'no rate limit', 'off');
    if (s.breakers) {
      setKpi(
        'breakers',
        `${s.breakers.open} / ${s.breakers.list.length}`,
        s.breakers.overloaded ? 'shedding load' : `${s.breakers.halfOpen} half-open`,
        s.breakers.open > 0 || s.breakers.overloaded ? 'bad' : '',
      );
    } else setKpi('breakers', 'off', 'no breakers', 'off');
    const loop = s.process.eventLoopDelayMs;
    setKpi('loop', fmtMs(loop.p99), `p50 ${fmtMs(loop.p50)} · max ${fmtMs(loop.max)}`, loop.p99 > 100 ? 'warn' : '');
    const heapShare = s.process.heapLimitBytes > 0 ? s.process.heapUsedBytes / s.process.heapLimitBytes : 0;
    setKpi(
      'memory',
      fmtBytes(s.process.rssBytes),
      `heap ${fmtBytes(s.process.heapUsedBytes)}`,
      heapShare > 0.85 ? 'bad' : '',
    );
    setKpi(
      'cpu',
      `${fmtNum(s.process.cpuPercent)}%`,
      `up ${fmtAgo(s.process.uptimeSeconds * 1000)}`,
      s.process.cpuPercent > 80 ? 'warn' : '',
    );
    if (s.sizeLimit)
      setKpi('rejected', fmtInt(s.sizeLimit.total), '413 / 414 / 431', s.sizeLimit.total > 0 ? 'warn' : '');
    else setKpi('rejected', 'off', 'no size limit', 'off');
    if (s.outbound && s.outbound.clients.length > 0)
      setKpi(
        'retries',
        fmtPct(s.outbound.retryRate),
        `${fmtInt(s.outbound.clients.length)} client(s) · alert over 10%`,
        s.outbound.retryRate > 0.1 ? 'bad' : '',
      );
    else setKpi('retries', 'off', 'no outbound client', 'off');
  }

  function renderAlerts(s) {
    const list = $('alerts');
    clear(list);
    if (s.alerts.length === 0) {
      list.appendChild(el('li', { className: 'none', text: 'No alerts. Everything is within its thresholds.' }));
      return;
    }
    for (const a of s.alerts) {
      const where = [a.layer, a.route].filter(Boolean).join(' · ');
      list.appendChild(
        el('li', { className: a.severity === 'critical' ? 'critical' : 'warning', 'data-alert': a.id }, [
          el('div', { className: 'msg' }, [
            el('span', { className: 'tag', text: a.severity }),
            document.createTextNode(a.message),
            where ? el('span', { className: 'muted', text: ` (${where}, for ${fmtAgo(s.at - a.since)})` }) : null,
          ]),
          el('div', { className: 'rec', text: a.recommendation }),
        ]),
      );
    }
  }

  function cell(text, className) {
    return el('td', { text, className });
  }

  function renderRoutes(s) {
    const body = $('routes').tBodies[0];
    clear(body);
    if (s.routes.length === 0) {
      body.appendChild(
        el('tr', null, [
          el('td', {
            colspan: 9,
            className: 'empty',
            text: s.sources.timing ? 'No requests yet.' : 'Timing is not configured.',
          }),
        ]),
      );
      return;
    }
    for (const r of s.routes) {
      body.appendChild(
        el('tr', null, [
          cell(r.method),
          el('td', { className: 'route', text: r.route, title: r.route }),
          cell(fmtInt(r.count), 'num'),
          cell(fmtNum(r.rps), 'num'),
          cell(fmtMs(r.p50), 'num'),
          cell(fmtMs(r.p95), `num${r.p95 > 200 ? ' warn' : ''}`),
          cell(fmtMs(r.p99), 'num'),
          cell(fmtPct(r.errorRate), `num${r.errorRate > 0.05 ? ' bad' : ''}`),
          // no cacheable lookup on this route: no ratio to show (not 0%)
          cell(r.cacheHits + r.cacheMisses > 0 ? fmtPct(r.cacheHitRatio) : '–', 'num'),
        ]),
      );
    }
  }

  function instanceRow(i, isTotal) {
    return el('tr', null, [
      el('td', { text: isTotal ? `Total (${i.instances})` : `${i.id}${i.self ? ' (this)' : ''}` }),
      cell(fmtInt(i.requests.total), 'num'),
      cell(fmtNum(i.requests.rps), 'num'),
      cell(fmtPct(i.requests.errorRate), 'num'),
      cell(fmtMs(isTotal ? i.latency.p95Max : i.latency.p95), 'num'),
      cell(fmtMs(isTotal ? i.latency.p99Max : i.latency.p99), 'num'),
      cell(i.cache ? fmtPct(i.cache.hitRatio) : '–', 'num'),
      cell(i.rateLimit ? fmtInt(i.rateLimit.blocked) : '–', 'num'),
      cell(fmtInt(i.breakers.open), `num${i.breakers.open > 0 ? ' bad' : ''}`),
      cell(fmtBytes(i.process.rssBytes), 'num'),
      cell(isTotal ? '' : `${fmtNum(i.process.cpuPercent)}%`, 'num'),
      cell(isTotal ? '' : fmtMs(i.process.eventLoopDelayP99Ms), 'num'),
    ]);
  }

  function renderFleet(s) {
    const card = $('fleet-card');
    if (!s.fleet) {
      card.hidden = true;
      return;
    }
    card.hidden = false;
    $('fleet-count').textContent =
      `${s.fleet.instances.length} instance${s.fleet.instances.length === 1 ? '' : 's'}${s.fleet.connected ? '' : ' · Redis down, peers unknown'}`;
    const table = $('fleet');
    const body = table.tBodies[0];
    clear(body);
    for (const i of s.fleet.instances) body.appendChild(instanceRow(i, false));
    const foot = table.tFoot;
    clear(foot);
    foot.appendChild(instanceRow(s.fleet.totals, true));
  }

  function renderCache(s) {
    const form = $('invalidate-form');
    if (!s.cache) {
      statList($('cache-stats'), [['Status', 'not configured']]);
      form.hidden = true;
      return;
    }
    form.hidden = false;
    const c = s.cache;
    statList($('cache-stats'), [
      ['Entries', fmtInt(c.entries)],
      ['Size', fmtBytes(c.bytes)],
      ['Hits', fmtInt(c.hits)],
      ['Misses', fmtInt(c.misses)],
      ['Stale served', fmtInt(c.stale)],
      ['Bypassed', fmtInt(c.bypass)],
      ['Evictions', fmtInt(c.evictions)],
      ['Warm-started', fmtInt(c.warmStarted)],
    ]);
  }

  function renderData(s) {
    const body = $('data-namespaces').tBodies[0];
    clear(body);
    if (!s.data) {
      statList($('data-stats'), [['Status', 'not configured']]);
      return;
    }
    const d = s.data;
    statList($('data-stats'), [
      ['Hit ratio', fmtPct(d.hitRatio)],
      ['Entries', fmtInt(d.entries)],
      ['Size', fmtBytes(d.bytes)],
      ['Evictions', fmtInt(d.evictions)],
      ['Refreshed ahead', fmtInt(d.refreshesAhead)],
      ['Warm-started', fmtInt(d.warmStarted)],
    ]);
    for (const [name, n] of Object.entries(d.namespaces)) {
      body.appendChild(
        el('tr', null, [
          cell(name),
          cell(fmtInt(n.entries), 'num'),
          cell(fmtInt(n.hits), 'num'),
          cell(fmtInt(n.misses), 'num'),
          cell(fmtPct(n.hitRatio), 'num'),
          cell(fmtInt(n.refreshesAhead), 'num'),
          cell(fmtInt(n.warmStarted), 'num'),
        ]),
      );
    }
  }

  function renderRateLimit(s) {
    const form = $('rl-form');
    const limits = $('rl-limits');
    clear(limits);
    if (!s.rateLimit) {
      statList($('rl-stats'), [['Status', 'not configured']]);
      form.hidden = true;
      return;
    }
    form.hidden = false;
    const r = s.rateLimit;
    statList($('rl-stats'), [
      ['Allowed', fmtInt(r.allowed)],
      ['Blocked', fmtInt(r.blocked)],
      ['Store errors', fmtInt(r.storeErrors)],
    ]);
    for (const l of r.limits) {
      limits.appendChild(
        el('li', null, [
          el('span', { text: l.name }),
          el('span', { className: 'muted', text: `${fmtInt(l.blocked)} blocked / ${fmtInt(l.allowed)} allowed` }),
        ]),
      );
    }
  }

  const STATE_CLASS = { closed: 'pill-ok', 'half-open': 'pill-wait', open: 'pill-bad' };
  function renderBreakers(s) {
    const list = $('breakers');
    clear(list);
    const all = $('breakers-reset-all');
    if (!s.breakers) {
      list.appendChild(el('li', { className: 'note', text: 'Circuit breakers are not configured.' }));
      all.hidden = true;
      return;
    }
    all.hidden = s.breakers.list.length === 0;
    if (s.breakers.list.length === 0)
      list.appendChild(el('li', { className: 'note', text: 'No breaker has run yet.' }));
    for (const b of s.breakers.list) {
      const button = el('button', {
        type: 'button',
        className: 'secondary small',
        text: 'Reset',
        'data-breaker': b.name,
      });
      button.disabled = b.state === 'closed';
      list.appendChild(
        el('li', { 'data-breaker-row': b.name }, [
          el('span', {
            className: 'name',
            text: b.name,
            title: `${b.failures} failures · ${b.rejected} rejected · ${b.timeouts} timeouts`,
          }),
          el('span', {
            className: `pill ${STATE_CLASS[b.state] || 'pill-wait'}`,
            text: b.state,
            'data-state': b.state,
          }),
          b.concurrency
            ? el('span', {
                className: 'muted',
                'data-concurrency-limit': String(b.concurrency.limit),
                title:
                  `adaptive concurrency limit (${b.concurrency.name}): ${fmtInt(b.concurrency.shed)} shed` +
                  (b.concurrency.minRttMs === null ? '' : ` · no-load latency ${b.concurrency.minRttMs} ms`),
                text: `limit ${fmtInt(b.concurrency.limit)} · ${fmtInt(b.concurrency.inflight)} in flight`,
              })
            : null,
          button,
        ]),
      );
    }
  }

  function renderOutbound(s) {
    const list = $('outbound');
    clear(list);
    const o = s.outbound;
    if (!o || (o.clients.length === 0 && o.pools.length === 0)) {
      list.appendChild(el('li', { className: 'note', text: 'No outbound client or offload pool.' }));
      return;
    }
    for (const c of o.clients) {
      list.appendChild(
        el('li', { 'data-client': c.name }, [
          el('strong', { className: 'name', text: c.name }),
          el('span', {
            className: `muted${c.retryRate > 0.1 ? ' bad' : ''}`,
            'data-retry-rate': String(c.retryRate),
            text: `retries ${fmtPct(c.retryRate)} · ${fmtInt(c.active)} active · ${fmtInt(c.queued)} queued`,
          }),
        ]),
      );
      for (const origin of c.origins) {
        const status = origin.healthy ? origin.state : origin.state === 'closed' ? 'out' : origin.state;
        list.appendChild(
          el('li', { className: 'sub', 'data-origin': origin.origin }, [
            el('span', { className: 'name', text: origin.origin, title: `${origin.pending} pending` }),
            el('span', {
              className: `pill ${origin.healthy ? 'pill-ok' : 'pill-bad'}`,
              'data-healthy': String(origin.healthy),
              text: status,
            }),
          ]),
        );
      }
    }
    for (const p of o.pools) {
      list.appendChild(
        el('li', { 'data-pool': p.pool }, [
          el('strong', { className: 'name', text: `pool ${p.pool}` }),
          el('span', {
            className: `muted${p.queued >= p.maxQueue && p.maxQueue > 0 ? ' bad' : ''}`,
            'data-queue-depth': String(p.queued),
            title: `${fmtInt(p.completed)} done · ${fmtInt(p.shed)} shed · run p50 ${fmtMs(p.runP50Ms)} p99 ${fmtMs(p.runP99Ms)}`,
            text:
              `queue ${fmtInt(p.queued)}/${fmtInt(p.maxQueue)} · wait p50 ${fmtMs(p.waitP50Ms)} p99 ${fmtMs(p.waitP99Ms)}` +
              ` · utilisation ${fmtPct(p.utilization)} · ${fmtInt(p.running)}/${fmtInt(p.threads)} threads busy`,
          }),
        ]),
      );
    }
  }

  function renderHealth(s) {
    const list = $('health');
    clear(list);
    if (!s.health) {
      list.appendChild(el('li', { className: 'note', text: 'No health checks are configured.' }));
    } else {
      list.appendChild(
        el('li', null, [
          el('strong', { text: 'Overall' }),
          el('span', { className: `pill ${healthClass(s.health.status)}`, text: s.health.status }),
        ]),
      );
      for (const [name, check] of Object.entries(s.health.checks)) {
        list.appendChild(
          el('li', { title: check.detail || '' }, [
            el('span', { text: name }),
            el('span', { className: `pill ${healthClass(check.status)}`, text: check.status }),
          ]),
        );
      }
    }
    if (s.sizeLimit)
      statList(
        $('size-stats'),
        Object.entries(s.sizeLimit.rejected).map(([k, v]) => [`Rejected (${k})`, fmtInt(v)]),
      );
    else clear($('size-stats'));
  }
  const healthClass = (status) => (status === 'ok' ? 'pill-ok' : status === 'down' ? 'pill-bad' : 'pill-wait');

  let lastReceived = 0;
  function render(s) {
    const blockedPerSecond = record(s);
    previous = s;
    lastReceived = Date.now();
    $('instance').textContent = s.instanceId;
    $('updated').textContent = `updated ${new Date(s.at).toLocaleTimeString()}`;
    renderKpis(s, blockedPerSecond);
    renderAlerts(s);
    renderRoutes(s);
    renderFleet(s);
    renderCache(s);
    renderData(s);
    renderRateLimit(s);
    renderBreakers(s);
    renderOutbound(s);
    renderHealth(s);
    drawAll();
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  }

  // ---------- connection ----------
  function setConnection(state) {
    const conn = $('conn');
    conn.textContent = state;
    conn.className = `pill ${state === 'live' ? 'pill-ok' : state === 'offline' ? 'pill-bad' : 'pill-wait'}`;
  }

  async function loadOnce() {
    try {
      const response = await fetch('api/snapshot', { credentials: 'same-origin', cache: 'no-store' });
      if (response.ok) render(await response.json());
    } catch {
      setConnection('offline');
    }
  }

  function connect() {
    if (typeof EventSource !== 'function') {
      setInterval(loadOnce, 2000);
      return;
    }
    const source = new EventSource('api/stream');
    source.addEventListener('open', () => setConnection('live'));
    source.addEventListener('snapshot', (event) => {
      try {
        render(JSON.parse(event.data));
        setConnection('live');
      } catch {
        setConnection('offline');
      }
    });
    source.addEventListener('error', () =>
      setConnection(source.readyState === EventSource.CLOSED ? 'offline' : 'reconnecting'),
    );
  }

  // ---------- actions ----------
  let toastTimer = 0;
  function toast(message, isError) {
    const node = $('toast');
    node.textContent = message;
    node.className = `toast${isError ? ' error' : ''}`;
    node.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => {
      node.hidden = true;
    }, 4000);
  }

  /** A JSON write with the page's CSRF token; a problem+json answer throws its detail (and the `path` it names). */
  async function send(method, path, body) {
    const response = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': token },
      body: JSON.stringify(body),
    });
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      const where = data?.path ? ` (${data.path})` : '';
      throw new Error(`${(data && (data.detail || data.title)) || `HTTP ${response.status}`}${where}`);
    }
    return data;
  }
  const post = (path, body) => send('POST', path, body);

  async function act(button, path, body, describe) {
    if (button) button.disabled = true;
    try {
      const result = await post(path, body);
      toast(describe(result), false);
      await loadOnce();
    } catch (error) {
      toast(`Failed: ${error.message}`, true);
    } finally {
      if (button) button.disabled = false;
    }
  }

  $('invalidate-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = $('invalidate-tags');
    const tags = input.value
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean);
    if (tags.length === 0) return;
    act(
      event.submitter,
      'api/cache/invalidate',
      { tags },
      (r) => `Invalidated ${fmtInt(r.invalidated)} entr${r.invalidated === 1 ? 'y' : 'ies'} tagged ${tags.join(', ')}.`,
    );
  });

  $('rl-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const key = $('rl-key').value.trim();
    if (!key) return;
    act(event.submitter, 'api/rate-limit/reset', { key }, () => `Reset the rate-limit counters of ${key}.`);
  });

  $('breakers').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-breaker]');
    if (!button) return;
    const name = button.getAttribute('data-breaker');
    act(button, 'api/breakers/reset', { name }, () => `Breaker ${name} reset to closed.`);
  });

  $('breakers-reset-all').addEventListener('click', (event) => {
    act(event.currentTarget, 'api/breakers/reset', {}, () => 'All breakers reset to closed.');
  });

  // Says so when no data has arrived for a while (the stream is down or the server stalls).
  setInterval(() => {
    const silent = Date.now() - lastReceived;
    if (lastReceived > 0 && silent > 5000) $('updated').textContent = `no update for ${fmtAgo(silent)}`;
  }, 5000);

  // ---------- performance report ----------
  async function getJson(path) {
    const response = await fetch(path, { credentials: 'same-origin', cache: 'no-store' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return response.json();
  }

  function renderReport(r) {
    const grade = $('report-grade');
    grade.textContent = r.grade;
    grade.className = `grade g-${r.grade}`;
    $('report-score').textContent = String(r.score);
    $('report-at').textContent = `(${new Date(r.generatedAt).toLocaleTimeString()})`;
    const rules = $('report-rules');
    clear(rules);
    for (const rule of r.rules) {
      const skipped = rule.points === null;
      rules.appendChild(
        el('li', {
          className: skipped ? 'skipped' : rule.points < rule.weight ? 'lost' : '',
          title: rule.explanation,
          'data-rule': rule.name,
          text: `${rule.name} ${skipped ? 'n/a' : `${fmtNum(rule.points)}/${rule.weight}`}`,
        }),
      );
    }
    const body = $('recommendations').tBodies[0];
    clear(body);
    if (r.recommendations.length === 0) {
      body.appendChild(el('tr', null, [el('td', { colspan: 6, className: 'empty', text: 'No recommendations.' })]));
      return;
    }
    r.recommendations.forEach((rec, i) => {
      body.appendChild(
        el('tr', { 'data-rec': rec.rule }, [
          cell(String(i + 1), 'num'),
          cell(rec.layer),
          el('td', { className: 'route', text: rec.route || '–' }),
          cell(rec.finding),
          cell(rec.action),
          cell(rec.expectedGain),
        ]),
      );
    });
  }

  async function loadReport() {
    try {
      renderReport(await getJson('api/report'));
    } catch {
      // The snapshot's connection state already says when the server is away.
    }
  }

  // ---------- leak watch ----------
  const LEAK_FORMAT = {
    heapUsedBytes: ['Heap after GC', fmtBytes],
    activeResources: ['Handles + requests', fmtInt],
    eventLoopUtilization: ['Event-loop utilisation', fmtPct],
  };
  function renderLeaks(l) {
    const body = $('leaks').tBodies[0];
    clear(body);
    if (!l.enabled) {
      $('leaks-status').textContent = '(off)';
      return;
    }
    $('leaks-status').textContent = `(${l.samples.length}/${l.window} samples every ${fmtMs(l.intervalMs)})`;
    for (const t of l.trends) {
      const [label, fmt] = LEAK_FORMAT[t.metric] || [t.metric, fmtNum];
      body.appendChild(
        el('tr', { 'data-metric': t.metric }, [
          cell(label),
          cell(fmt(t.first), 'num'),
          cell(fmt(t.latest), 'num'),
          cell(fmt(t.slopePerMinute), 'num'),
          cell(t.metric === 'eventLoopUtilization' ? fmtPct(t.growth) : fmtPct(t.relativeGrowth), 'num'),
          cell(t.r2.toFixed(2), 'num'),
          cell(t.rising ? 'rising' : 'steady', t.rising ? 'bad' : ''),
        ]),
      );
    }
  }

  async function loadLeaks() {
    try {
      renderLeaks(await getJson('api/leaks'));
    } catch {
      // as above
    }
  }

  // ---------- profiling ----------
  const FLAME_ROW = 18;
  const FLAME_MAX_ROWS = 48;

  function flameDepth(node) {
    let depth = 0;
    const stack = [[node, 1]];
    while (stack.length > 0) {
      const [n, d] = stack.pop();
      if (d > depth) depth = d;
      if (d < FLAME_MAX_ROWS) for (const c of n.c) stack.push([c, d + 1]);
    }
    return depth;
  }

  function flameColor(node) {
    if (node.n.startsWith('(')) return '#64748b';
    if (!node.u || node.u.startsWith('node:')) return '#60a5fa';
    if (node.u.includes('node_modules')) return '#a78bfa';
    let h = 0;
    for (let i = 0; i < node.n.length; i++) h = (h * 31 + node.n.charCodeAt(i)) >>> 0;
    return `hsl(${20 + (h % 30)}, 85%, ${55 + (h % 12)}%)`;
  }

  const shortUrl = (u) =>
    u
      ? u
          .replace(/^file:\/\//, '')
          .split('/')
          .slice(-2)
          .join('/')
      : '';

  /**
   * A flame graph on `canvas` (hover: details in `info`; click: zoom in, top row: out).
   * `show(root)` draws a summary's `flame` tree; `onDrawn(frames)` is told how many frames it drew.
   */
  function createFlame(canvas, info, onDrawn) {
    let flameRoot = null;
    let flameZoom = null;
    let flameBoxes = [];
    function drawFlame() {
      if (!flameRoot) {
        canvas.hidden = true;
        return;
      }
      canvas.hidden = false;
      const root = flameZoom || flameRoot;
      const rows = flameDepth(root);
      const dpr = window.devicePixelRatio || 1;
      const width = canvas.clientWidth;
      const height = rows * FLAME_ROW;
      canvas.style.height = `${height}px`;
      if (width === 0) return;
      canvas.width = Math.round(width * dpr);
      canvas.height = Math.round(height * dpr);
      const ctx = canvas.getContext('2d');
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, width, height);
      ctx.font = '11px system-ui, sans-serif';
      ctx.textBaseline = 'middle';
      flameBoxes = [];
      const stack = [[root, 0, width, 0]];
      while (stack.length > 0) {
        const [node, x, w, level] = stack.pop();
        if (w < 0.5 || level >= FLAME_MAX_ROWS) continue;
        const y = level * FLAME_ROW;
        ctx.fillStyle = flameColor(node);
        ctx.fillRect(x, y, Math.max(0.5, w - 1), FLAME_ROW - 1);
        flameBoxes.push({ x, y, w, node });
        if (w > 40) {
          ctx.save();
          ctx.beginPath();
          ctx.rect(x, y, w - 4, FLAME_ROW - 1);
          ctx.clip();
          ctx.fillStyle = '#0b1120';
          ctx.fillText(node.n, x + 3, y + FLAME_ROW / 2);
          ctx.restore();
        }
        const scale = node.t > 0 ? w / node.t : 0;
        let cx = x;
        for (const c of node.c) {
          const cw = c.t * scale;
          stack.push([c, cx, cw, level + 1]);
          cx += cw;
        }
      }
      onDrawn(flameBoxes.length);
    }
    window.addEventListener('resize', drawFlame);

    function flameAt(event) {
      const rect = canvas.getBoundingClientRect();
      const x = event.clientX - rect.left;
      const y = event.clientY - rect.top;
      return flameBoxes.find((b) => x >= b.x && x < b.x + b.w && y >= b.y && y < b.y + FLAME_ROW);
    }
    canvas.addEventListener('mousemove', (event) => {
      const box = flameAt(event);
      const total = (flameZoom || flameRoot)?.t || 0;
      info.textContent = box
        ? `${box.node.n} ${shortUrl(box.node.u)}${box.node.l ? `:${box.node.l}` : ''} · total ${fmtMs(box.node.t)} (${fmtPct(total ? box.node.t / total : 0)}) · self ${fmtMs(box.node.s)}`
        : 'Hover a frame for details; click to zoom in, click the top row to zoom out.';
    });
    canvas.addEventListener('click', (event) => {
      const box = flameAt(event);
      flameZoom = !box || box.y === 0 ? null : box.node;
      drawFlame();
    });
    return {
      show(root) {
        flameRoot = root;
        flameZoom = null;
        drawFlame();
      },
    };
  }
  const flame = createFlame($('flame'), $('flame-info'), (frames) => {
    document.body.dataset.flameFrames = String(frames);
  });

  function renderProfiles(p) {
    const status = $('profile-status');
    status.textContent = p.running ? `(${p.running} running…)` : '';
    $('profile-seconds').max = String(p.limits.maxSeconds);
    if (p.cpu) {
      const body = $('top-functions').tBodies[0];
      clear(body);
      for (const f of p.cpu.top) {
        body.appendChild(
          el('tr', null, [
            el('td', { className: 'route', text: f.functionName, title: f.functionName }),
            el('td', { className: 'route', text: `${shortUrl(f.url)}${f.url ? `:${f.line}` : ''}`, title: f.url }),
            cell(fmtMs(f.selfMs), 'num'),
            cell(fmtPct(f.selfShare), 'num'),
            cell(fmtMs(f.totalMs), 'num'),
          ]),
        );
      }
      $('top-functions').hidden = false;
      $('flame-info').textContent =
        `${fmtInt(p.cpu.sampleCount)} samples over ${fmtMs(p.cpu.durationMs)} at ${new Date(p.cpu.at).toLocaleTimeString()}${p.cpu.aborted ? ' (stopped early)' : ''}`;
      flame.show(p.cpu.flame);
    }
    if (p.heapSampling) {
      const body = $('top-allocations').tBodies[0];
      clear(body);
      for (const a of p.heapSampling.top) {
        body.appendChild(
          el('tr', null, [
            el('td', { className: 'route', text: a.functionName, title: a.functionName }),
            el('td', { className: 'route', text: `${shortUrl(a.url)}${a.url ? `:${a.line}` : ''}`, title: a.url }),
            cell(fmtBytes(a.selfBytes), 'num'),
            cell(fmtPct(a.share), 'num'),
          ]),
        );
      }
      $('top-allocations').hidden = false;
    }
  }

  async function loadProfiles() {
    try {
      renderProfiles(await getJson('api/profile'));
    } catch {
      $('profile-card').hidden = true;
    }
  }

  let downloadUrl = '';
  /** Runs one profiling operation; offers what came back as a download when it is a file. */
  async function profile(path, label) {
    const buttons = document.querySelectorAll('#profile-form button');
    for (const b of buttons) b.disabled = true;
    $('profile-status').textContent = `(${label}…)`;
    try {
      const response = await fetch(path, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': token },
        body: '{}',
      });
      if (!response.ok) {
        let detail = `HTTP ${response.status}`;
        try {
          const problem = await response.json();
          detail = problem.detail || problem.title || detail;
        } catch {
          // not JSON
        }
        throw new Error(detail);
      }
      const name = /filename="([^"]+)"/.exec(response.headers.get('Content-Disposition') || '');
      if (name) {
        const blob = await response.blob();
        if (downloadUrl) URL.revokeObjectURL(downloadUrl);
        downloadUrl = URL.createObjectURL(blob);
        const link = $('profile-download');
        link.href = downloadUrl;
        link.download = name[1];
        link.textContent = `Download ${name[1]} (${fmtBytes(blob.size)})`;
        link.hidden = false;
      } else await response.json();
      toast(`${label} done.`, false);
    } catch (error) {
      toast(`${label} failed: ${error.message}`, true);
    } finally {
      for (const b of buttons) b.disabled = false;
      await loadProfiles();
      loadReport();
    }
  }

  const seconds = () => Math.max(1, Math.round(Number($('profile-seconds').value) || 1));
  $('profile-form').addEventListener('submit', (event) => {
    event.preventDefault();
    profile(`api/profile/cpu?seconds=${seconds()}`, 'CPU profile');
  });
  $('profile-heap-sampling').addEventListener('click', () =>
    profile(`api/profile/heap-sampling?seconds=${seconds()}`, 'Heap sampling'),
  );
  $('profile-heap-snapshot').addEventListener('click', () => profile('api/profile/heap-snapshot', 'Heap snapshot'));

  setInterval(() => {
    loadReport();
    loadLeaks();
  }, 3000);

  // The charts start with the server's last minutes, then the stream takes over.
  loadHistory().then(() => {
    seed(served);
    drawAll();
  });
  loadOnce().then(connect);
  loadReport();
  loadLeaks();
  loadProfiles();

  // What the page's other modules (assets/profiles.js, assets/settings.js) share with this one.
  window.perfstackPage = Object.freeze({
    el,
    clear,
    cell,
    fmtInt,
    fmtMs,
    fmtPct,
    fmtBytes,
    shortUrl,
    getJson,
    send,
    createFlame,
  });
})();
