/*
 * perfstack dashboard, continuous profiles: the listing of `GET api/profiles` (every instance's
 * with Redis), the selected profile's flame graph, its download, and the diff of two profiles.
 * Uses the helpers app.js shares as `window.perfstackPage`; text only (textContent), no eval.
 */
(() => {
  const page = window.perfstackPage;
  if (!page) return;
  const { el, clear, cell, fmtInt, fmtMs, fmtPct, fmtBytes, shortUrl, getJson, createFlame } = page;
  const $ = (id) => document.getElementById(id);
  const card = $('profiles-card');
  const flame = createFlame($('profiles-flame'), $('profiles-flame-info'), (frames) => {
    document.body.dataset.profilesFlameFrames = String(frames);
  });
  const selected = { shown: null, before: null, after: null };

  const where = (f) => `${shortUrl(f.url)}${f.url ? `:${f.line}` : ''}`;
  const every = (ms) => (ms % 60_000 === 0 ? `${ms / 60_000} min` : fmtMs(ms));

  async function show(id) {
    selected.shown = id;
    try {
      const p = await getJson(`api/profiles/${encodeURIComponent(id)}`);
      flame.show(p.summary.flame);
      $('profiles-flame-info').textContent =
        `${p.instanceId} · ${fmtInt(p.sampleCount)} samples over ${fmtMs(p.durationMs)}, ended ${new Date(p.at).toLocaleTimeString()}`;
      for (const row of $('profiles').tBodies[0].rows) row.classList.toggle('selected', row.dataset.id === id);
    } catch (error) {
      $('profiles-flame-info').textContent = `Could not load ${id}: ${error.message}`;
    }
  }

  function radio(name, id) {
    const input = el('input', { type: 'radio', name: `profiles-${name}`, value: id, 'aria-label': `${name}: ${id}` });
    input.checked = selected[name] === id;
    input.addEventListener('change', () => {
      selected[name] = id;
    });
    return el('td', null, [input]);
  }

  function render(r) {
    if (!r.enabled) {
      card.hidden = true;
      return;
    }
    card.hidden = false;
    const skipped = r.skipped ? ` · ${fmtInt(r.skipped)} skipped (profiler busy)` : '';
    $('profiles-status').textContent =
      `(${fmtMs(r.durationMs)} every ${every(r.everyMs)}, duty cycle ${fmtPct(r.dutyCycle)} · ${fmtInt(r.recorded)} recorded here, ${fmtBytes(r.bytes)} of ${fmtBytes(r.maxBytes)}${skipped})`;
    const ids = r.profiles.map((p) => p.id);
    if (!ids.includes(selected.after)) selected.after = ids[0] ?? null;
    if (!ids.includes(selected.before)) selected.before = ids[1] ?? null;
    const body = $('profiles').tBodies[0];
    clear(body);
    if (r.profiles.length === 0) {
      body.appendChild(
        el('tr', null, [el('td', { colspan: 8, className: 'empty', text: `First profile in ${every(r.everyMs)}.` })]),
      );
    }
    for (const p of r.profiles) {
      const view = el('button', { type: 'button', className: 'small secondary', text: 'Flame graph' });
      view.addEventListener('click', () => show(p.id));
      const download = p.hasProfile
        ? el('a', {
            href: `api/profiles/${encodeURIComponent(p.id)}?format=cpuprofile`,
            download: '',
            text: 'Download',
          })
        : el('span', { className: 'muted', text: 'summary only' });
      body.appendChild(
        el('tr', { 'data-id': p.id, className: p.id === selected.shown ? 'selected' : '' }, [
          cell(new Date(p.at).toLocaleTimeString()),
          el('td', { className: 'route', text: p.instanceId }),
          cell(fmtMs(p.durationMs), 'num'),
          cell(fmtInt(p.sampleCount), 'num'),
          el('td', {
            className: 'route',
            text: p.top.map((f) => `${f.functionName} ${fmtPct(f.selfShare)}`).join(', ') || '–',
            title: p.top.map((f) => `${f.functionName} ${where(f)}`).join('\n'),
          }),
          radio('before', p.id),
          radio('after', p.id),
          el('td', null, [view, download]),
        ]),
      );
    }
    $('profiles-diff-run').disabled = r.profiles.length < 2;
    if (selected.shown === null && ids.length > 0) show(ids[0]);
  }

  async function diff() {
    if (!selected.before || !selected.after) return;
    const table = $('profiles-diff');
    try {
      const d = await getJson(
        `api/profiles/diff?before=${encodeURIComponent(selected.before)}&after=${encodeURIComponent(selected.after)}&limit=30`,
      );
      const body = table.tBodies[0];
      clear(body);
      for (const row of d.rows) {
        const sign = row.delta > 0 ? '+' : '';
        body.appendChild(
          el('tr', { 'data-function': row.functionName }, [
            el('td', { className: 'route', text: row.functionName }),
            el('td', { className: 'route', text: where(row), title: row.url }),
            cell(`${fmtPct(row.beforeShare)} (${fmtMs(row.beforeMs)})`, 'num'),
            cell(`${fmtPct(row.afterShare)} (${fmtMs(row.afterMs)})`, 'num'),
            cell(`${sign}${(row.delta * 100).toFixed(2)} pts`, row.delta >= 0.01 ? 'num bad' : 'num'),
          ]),
        );
      }
      $('profiles-diff-info').textContent =
        `${d.before.id} (${d.instances.before}, ${new Date(d.before.at).toLocaleTimeString()}) → ${d.after.id} (${d.instances.after}, ${new Date(d.after.at).toLocaleTimeString()}): self-time share per function, largest change first${d.omitted ? `; ${fmtInt(d.omitted)} more not shown` : ''}`;
      table.hidden = false;
    } catch (error) {
      $('profiles-diff-info').textContent = `Diff failed: ${error.message}`;
    }
  }
  $('profiles-diff-run').addEventListener('click', diff);

  async function load() {
    try {
      render(await getJson('api/profiles'));
    } catch {
      card.hidden = true;
    }
  }
  load();
  setInterval(load, 10_000);
})();
