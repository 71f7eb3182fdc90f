/**
 * The dashboard page's only script, inlined under the page's CSP nonce (no build step, no CDN).
 * It listens to /dashboard/stream and re-renders every table from the snapshot it receives, with
 * textContent only (no HTML from data), draws jobs/s on a canvas, and posts requeues with the
 * session's CSRF token. Plain ES2020, as browsers run it.
 */
export const PAGE_SCRIPT = String.raw`
(() => {
  'use strict';
  const boot = JSON.parse(document.getElementById('dashboard-boot').textContent);
  const byId = (id) => document.getElementById(id);

  function cell(col, row) {
    const td = document.createElement('td');
    const value = row[col.key] == null ? '' : String(row[col.key]);
    if (col.kind === 'status') {
      const badge = document.createElement('span');
      badge.className = 'badge s-' + value.replace(/^job\./, '').replace(/[^a-z]/g, '');
      badge.textContent = value;
      td.append(badge);
    } else if (col.kind === 'requeue') {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'requeue';
      button.dataset.id = value;
      button.textContent = 'Requeue';
      td.append(button);
    } else {
      if (col.kind === 'mono') td.className = 'mono';
      td.textContent = value;
      td.title = value;
    }
    return td;
  }

  function renderPanel(name, data) {
    const panel = boot.panels[name];
    const section = document.querySelector('[data-panel="' + name + '"]');
    if (!panel || !section) return;
    const rows = data.rows.map((row) => {
      const tr = document.createElement('tr');
      tr.dataset.key = row.id || row.job_id || '';
      for (const col of panel.columns) tr.append(cell(col, row));
      return tr;
    });
    if (rows.length === 0) {
      const tr = document.createElement('tr');
      const td = document.createElement('td');
      td.className = 'empty';
      td.colSpan = panel.columns.length;
      td.textContent = panel.empty;
      tr.append(td);
      rows.push(tr);
    }
    section.querySelector('tbody').replaceChildren(...rows);
    section.querySelector('.note').textContent = data.note || '';
  }

  function drawChart(values) {
    const canvas = byId('throughput');
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth, height = canvas.clientHeight;
    if (canvas.width !== width * ratio) { canvas.width = width * ratio; canvas.height = height * ratio; }
    const g = canvas.getContext('2d');
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    const max = Math.max(1, ...values);
    const points = 120, pad = 4;
    const x = (i) => pad + ((width - 2 * pad) * (points - values.length + i)) / (points - 1);
    const y = (v) => height - pad - ((height - 2 * pad) * v) / max;
    g.strokeStyle = '#d8dee9';
    g.lineWidth = 1;
    for (const f of [0.25, 0.5, 0.75]) { g.beginPath(); g.moveTo(0, y(max * f)); g.lineTo(width, y(max * f)); g.stroke(); }
    if (values.length > 0) {
      g.beginPath();
      values.forEach((v, i) => (i === 0 ? g.moveTo(x(i), y(v)) : g.lineTo(x(i), y(v))));
      g.strokeStyle = '#2563eb';
      g.lineWidth = 2;
      g.stroke();
      g.lineTo(x(values.length - 1), height - pad);
      g.lineTo(x(0), height - pad);
      g.closePath();
      g.fillStyle = 'rgba(37, 99, 235, 0.12)';
      g.fill();
    }
    byId('chart-max').textContent = 'max ' + max + ' jobs/s over the last ' + values.length + ' s';
  }

  function apply(snapshot) {
    for (const [key, value] of Object.entries(snapshot.totals)) {
      const el = byId('total-' + key);
      if (el) el.textContent = String(value);
    }
    byId('total-rate').textContent = String(snapshot.jobs_per_second);
    for (const [name, data] of Object.entries(snapshot.panels)) renderPanel(name, data);
    drawChart(snapshot.series);
    byId('updated').textContent = snapshot.at.replace('T', ' ').slice(0, 19) + ' UTC';
  }

  function setLive(state, text) {
    const el = byId('live');
    el.className = 'live ' + state;
    el.textContent = text;
  }

  function flash(text, ok) {
    const el = byId('flash');
    el.className = ok ? 'flash ok' : 'flash bad';
    el.textContent = text;
  }

  const stream = new EventSource('/dashboard/stream');
  stream.addEventListener('snapshot', (e) => { apply(JSON.parse(e.data)); setLive('on', 'live'); });
  stream.addEventListener('open', () => setLive('on', 'live'));
  stream.addEventListener('error', () => {
    // CLOSED: the server refused the stream (the session ended); otherwise the browser retries.
    if (stream.readyState === EventSource.CLOSED) { setLive('off', 'session ended: reload to log in'); }
    else setLive('off', 'reconnecting…');
  });

  document.addEventListener('click', async (e) => {
    const button = e.target.closest('button.requeue');
    if (!button) return;
    button.disabled = true;
    try {
      const res = await fetch('/dashboard/dead-letters/' + encodeURIComponent(button.dataset.id) + '/requeue', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'x-csrf-token': boot.csrf },
      });
      const body = await res.json().catch(() => ({}));
      if (res.ok) flash('Requeued: job ' + body.job_id + ' is queued again.', true);
      else { flash('Requeue failed: ' + (body.detail || res.status), false); button.disabled = false; }
    } catch (err) {
      flash('Requeue failed: ' + err, false);
      button.disabled = false;
    }
  });

  drawChart([]);
})();
`;
