/*
 * perfstack dashboard — runtime settings section: every tunable setting with its value, the
 * report's recommendations that map to a setting (each with an Apply button), the audit trail
 * (each change with an Undo button) and autoTune's decisions. Reads GET api/settings; writes
 * with PATCH api/settings and POST api/settings/undo, sending the page's CSRF token and JSON,
 * like every other action (app.js's `send`, shared as `window.perfstackPage`). Hidden when the dashboard has no settings (`enabled: false`).
 *
 * Strict CSP: no inline script or handler; server values go in as text, never as HTML.
 */
(() => {
  const page = window.perfstackPage;
  const $ = (id) => document.getElementById(id);
  const card = $('settings-card');
  if (!card || !page) return;
  const { el, clear, send } = page;
  const td = (text, className) => el('td', { text, ...(className ? { className } : {}) });
  const fmtMs = (ms) => {
    if (ms === null || ms === undefined) return 'none';
    if (typeof ms !== 'number') return String(ms);
    if (ms > 0 && ms % 3600000 === 0) return `${ms / 3600000}h`;
    if (ms > 0 && ms % 60000 === 0) return `${ms / 60000}m`;
    if (ms > 0 && ms % 1000 === 0) return `${ms / 1000}s`;
    return `${ms}ms`;
  };
  let kinds = new Map();
  const fmtValue = (path, value) =>
    kinds.get(path) === 'duration' ? fmtMs(value) : value === null ? 'none' : String(value);
  const changeText = (c) => `${c.path}: ${fmtValue(c.path, c.before)} → ${fmtValue(c.path, c.after)}`;

  function status(text, isError) {
    const node = $('settings-status');
    node.textContent = text;
    node.className = isError ? 'muted bad' : 'muted';
  }

  async function change(button, method, path, body, describe) {
    if (button) button.disabled = true;
    try {
      const result = await send(method, path, body);
      status(describe(result), false);
      await load();
    } catch (error) {
      status(`Failed: ${error.message}`, true);
    } finally {
      if (button) button.disabled = false;
    }
  }

  function renderSettings(list) {
    const body = $('settings-table').tBodies[0];
    clear(body);
    for (const s of list) {
      const input = el('input', {
        'aria-label': `New value of ${s.path}`,
        'data-path': s.path,
        placeholder: s.text,
        maxlength: '40',
      });
      const button = el('button', { type: 'button', className: 'secondary', 'data-set': s.path, text: 'Set' });
      body.appendChild(
        el('tr', { 'data-setting': s.path }, [
          el('td', { className: 'route', text: s.path, title: s.description }),
          td(s.text, 'value'),
          td(fmtValue(s.path, s.configured), 'muted'),
          el('td', null, [el('div', { className: 'row' }, [input, button])]),
        ]),
      );
    }
  }

  function renderProposals(recommendations) {
    const list = $('settings-proposals');
    clear(list);
    const withChange = (recommendations ?? []).filter((r) => r.change);
    if (withChange.length === 0) {
      list.appendChild(el('li', { className: 'muted', text: 'No recommendation maps to a setting now.' }));
      return;
    }
    for (const r of withChange) {
      list.appendChild(
        el('li', { 'data-proposal': r.change.path }, [
          el('code', { text: r.change.text }),
          el('span', { className: 'muted', text: ` — ${r.finding} ` }),
          el('button', {
            type: 'button',
            'data-apply': r.change.path,
            'data-to': JSON.stringify(r.change.to),
            text: 'Apply',
          }),
        ]),
      );
    }
  }

  function renderAudit(audit) {
    const body = $('settings-audit').tBodies[0];
    clear(body);
    if (audit.length === 0) {
      body.appendChild(el('tr', null, [el('td', { colspan: '5', className: 'empty', text: 'No changes yet.' })]));
      return;
    }
    const undone = new Set(audit.filter((e) => e.undoOf).map((e) => e.undoOf));
    for (const e of audit) {
      const undo = undone.has(e.id)
        ? td('undone', 'muted')
        : el('td', null, [el('button', { type: 'button', className: 'secondary', 'data-undo': e.id, text: 'Undo' })]);
      body.appendChild(
        el('tr', { 'data-entry': e.id }, [
          td(new Date(e.at).toLocaleTimeString()),
          td(e.actor),
          td(e.instance),
          td(`${e.changes.map(changeText).join('; ')}${e.reason ? ` (${e.reason})` : ''}`, 'changes'),
          undo,
        ]),
      );
    }
  }

  function renderAutoTune(autoTune) {
    const list = $('autotune-decisions');
    clear(list);
    $('autotune-state').textContent = autoTune.enabled ? 'on' : 'off';
    if (autoTune.decisions.length === 0) {
      list.appendChild(el('li', { className: 'muted', text: 'No decisions yet.' }));
      return;
    }
    for (const d of autoTune.decisions.slice().reverse()) {
      list.appendChild(
        el('li', { 'data-decision': d.action }, [
          el('span', { className: 'muted', text: `${new Date(d.at).toLocaleTimeString()} ` }),
          el('strong', { text: d.action }),
          el('span', { text: ` ${d.path ?? ''} — ${d.reason}` }),
        ]),
      );
    }
  }

  async function load() {
    const response = await fetch('api/settings', { credentials: 'same-origin', cache: 'no-store' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const data = await response.json();
    if (!data.enabled) {
      card.hidden = true;
      clearInterval(timer);
      return;
    }
    card.hidden = false;
    kinds = new Map(data.settings.map((s) => [s.path, s.kind]));
    renderSettings(data.settings);
    renderAudit(data.audit);
    renderAutoTune(data.autoTune);
    const report = await fetch('api/report', { credentials: 'same-origin', cache: 'no-store' });
    if (report.ok) renderProposals((await report.json()).recommendations);
  }

  /** A PATCH of one setting, its result said as "<verb>: path: before → after". */
  const patch = (button, path, value, verb) =>
    change(
      button,
      'PATCH',
      'api/settings',
      { [path]: value },
      (r) => `${verb}: ${r.entry.changes.map(changeText).join('; ')}`,
    );

  card.addEventListener('click', (event) => {
    const apply = event.target.closest('button[data-apply]');
    const set = event.target.closest('button[data-set]');
    const undo = event.target.closest('button[data-undo]');
    if (apply) {
      patch(apply, apply.getAttribute('data-apply'), JSON.parse(apply.getAttribute('data-to')), 'Applied');
    } else if (set) {
      const path = set.getAttribute('data-set');
      const raw = card.querySelector(`input[data-path="${CSS.escape(path)}"]`).value.trim();
      if (!raw) return;
      patch(set, path, raw === 'none' ? null : /^-?\d+(\.\d+)?$/.test(raw) ? Number(raw) : raw, 'Set');
    } else if (undo) {
      const id = undo.getAttribute('data-undo');
      change(undo, 'POST', 'api/settings/undo', { id }, (r) => `Undone: ${r.entry.changes.map(changeText).join('; ')}`);
    }
  });

  const tick = () => load().catch((error) => status(`Failed to load: ${error.message}`, true));
  // Changes made on another instance (or by autoTune) show up without a reload.
  const timer = setInterval(tick, 3000);
  tick();
})();
