/** @jsxImportSource hono/jsx */
import type { Child } from 'hono/jsx';
import { PANELS, type Column, type Panel, type PanelName } from './panels.js';
import { PAGE_SCRIPT } from './page-script.js';
import type { Snapshot } from './snapshot.js';

const STYLE = `
:root { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2933; background: #f4f6f8; }
body { margin: 0; }
header { display: flex; align-items: center; gap: 16px; padding: 12px 24px; background: #1e293b; color: #f8fafc; }
header h1 { font-size: 17px; margin: 0; font-weight: 600; }
header .scope { background: #f59e0b; color: #1e293b; border-radius: 4px; padding: 2px 8px; font-size: 12px; font-weight: 600; }
header .spacer { flex: 1; }
header form { margin: 0; }
header button { background: transparent; color: #f8fafc; border: 1px solid #64748b; border-radius: 4px; padding: 4px 10px; cursor: pointer; }
main { padding: 16px 24px 40px; display: grid; gap: 16px; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); }
.wide { grid-column: 1 / -1; }
.card { background: #fff; border: 1px solid #dde3ea; border-radius: 8px; padding: 12px 16px; overflow-x: auto; }
.card h2 { font-size: 14px; margin: 0 0 2px; }
.note { color: #64748b; font-size: 12px; min-height: 1em; margin: 0 0 8px; }
.totals { display: flex; flex-wrap: wrap; gap: 24px; }
.totals div { min-width: 90px; }
.totals b { display: block; font-size: 22px; font-variant-numeric: tabular-nums; }
.totals span { color: #64748b; font-size: 12px; }
canvas { width: 100%; height: 140px; display: block; }
table { border-collapse: collapse; width: 100%; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eef1f4; white-space: nowrap; max-width: 320px; overflow: hidden; text-overflow: ellipsis; }
th { color: #64748b; font-weight: 500; font-size: 12px; }
td.mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; max-width: 110px; }
td.empty { color: #94a3b8; font-style: italic; }
.badge { border-radius: 10px; padding: 1px 8px; font-size: 12px; background: #e2e8f0; }
.s-queued { background: #e0e7ff; color: #3730a3; }
.s-running { background: #fef3c7; color: #92400e; }
.s-succeeded { background: #dcfce7; color: #166534; }
.s-failed { background: #fee2e2; color: #991b1b; }
.s-retrying { background: #ffedd5; color: #9a3412; }
.s-cancelled { background: #f1f5f9; color: #475569; }
button.requeue { border: 1px solid #2563eb; color: #2563eb; background: #fff; border-radius: 4px; padding: 2px 10px; cursor: pointer; }
button.requeue:disabled { opacity: 0.5; cursor: default; }
.live { font-size: 12px; border-radius: 10px; padding: 2px 8px; }
.live.on { background: #166534; }
.live.off { background: #991b1b; }
.flash { margin: 0; font-size: 13px; }
.flash.ok { color: #166534; }
.flash.bad { color: #991b1b; }
.login { max-width: 420px; margin: 12vh auto; background: #fff; border: 1px solid #dde3ea; border-radius: 8px; padding: 24px; }
.login input { width: 100%; box-sizing: border-box; padding: 8px; margin: 8px 0 12px; font: inherit; }
.login button { padding: 8px 16px; font: inherit; cursor: pointer; }
.error { color: #991b1b; }
`;

/** The HTML skeleton every dashboard page shares; `nonce` is the CSP nonce of this response. */
function Layout(props: { title: string; nonce: string; children: Child }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{props.title}</title>
        <link rel="icon" href="data:," />
        <style nonce={props.nonce} dangerouslySetInnerHTML={{ __html: STYLE }} />
      </head>
      <body>{props.children}</body>
    </html>
  );
}

/** The login form: an API key with the admin scope. */
export function LoginPage(props: { nonce: string; error?: string }) {
  return (
    <Layout title="Leasehold dashboard: log in" nonce={props.nonce}>
      <form class="login" method="post" action="/dashboard/login">
        <h1>Leasehold operator dashboard</h1>
        <p>It shows every tenant's jobs. Log in with an API key that has the <code>admin</code> scope.</p>
        {props.error ? <p class="error" role="alert">{props.error}</p> : null}
        <label for="key">API key</label>
        <input id="key" name="key" type="password" autocomplete="off" required />
        <button type="submit">Log in</button>
      </form>
    </Layout>
  );
}

function Cell(props: { column: Column; row: Record<string, string> }) {
  const value = props.row[props.column.key] ?? '';
  switch (props.column.kind) {
    case 'status':
      return (
        <td>
          <span class={`badge s-${value.replace(/^job\./, '').replace(/[^a-z]/g, '')}`}>{value}</span>
        </td>
      );
    case 'requeue':
      return (
        <td>
          <button type="button" class="requeue" data-id={value}>Requeue</button>
        </td>
      );
    default:
      return (
        <td class={props.column.kind === 'mono' ? 'mono' : undefined} title={value}>
          {value}
        </td>
      );
  }
}

function PanelCard(props: { name: PanelName; snapshot: Snapshot; wide?: boolean }) {
  const panel: Panel = PANELS[props.name];
  const data = props.snapshot.panels[props.name];
  return (
    <section class={props.wide ? 'card wide' : 'card'} data-panel={props.name}>
      <h2>{panel.title}</h2>
      <p class="note">{data.note ?? ''}</p>
      <table>
        <thead>
          <tr>{panel.columns.map((c) => <th>{c.label}</th>)}</tr>
        </thead>
        <tbody>
          {data.rows.length === 0 ? (
            <tr>
              <td class="empty" colspan={panel.columns.length}>{panel.empty}</td>
            </tr>
          ) : (
            data.rows.map((row) => (
              <tr data-key={row.id ?? row.job_id ?? ''}>
                {panel.columns.map((column) => <Cell column={column} row={row} />)}
              </tr>
            ))
          )}
        </tbody>
      </table>
    </section>
  );
}

/** JSON for a `<script type="application/json">`: `<` escaped so no value can close the element. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c');
}

/** The dashboard, rendered with a first snapshot; the page script keeps it live. */
export function DashboardPage(props: { nonce: string; csrf: string; snapshot: Snapshot }) {
  const { snapshot } = props;
  const total = (key: keyof Snapshot['totals'], label: string) => (
    <div>
      <b id={`total-${key}`}>{snapshot.totals[key]}</b>
      <span>{label}</span>
    </div>
  );
  return (
    <Layout title="Leasehold dashboard" nonce={props.nonce}>
      <header>
        <h1>Leasehold</h1>
        <span class="scope" title="Operators see every tenant's jobs here">all tenants</span>
        <span id="live" class="live off">connecting…</span>
        <span class="spacer" />
        <span id="updated">{snapshot.at.replace('T', ' ').slice(0, 19)} UTC</span>
        <form method="post" action="/dashboard/logout">
          <input type="hidden" name="csrf" value={props.csrf} />
          <button type="submit">Log out</button>
        </form>
      </header>
      <main>
        <section class="card wide">
          <div class="totals">
            <div>
              <b id="total-rate">{snapshot.jobs_per_second}</b>
              <span>jobs/s finished</span>
            </div>
            {total('ready', 'ready')}
            {total('scheduled', 'scheduled')}
            {total('running', 'running')}
            {total('workers', 'live workers')}
            {total('dead_letters', 'open dead letters')}
          </div>
          <canvas id="throughput" aria-label="jobs finished per second" />
          <p class="note" id="chart-max" />
          <p id="flash" class="flash" role="status" />
        </section>
        <PanelCard name="queues" snapshot={snapshot} wide />
        <PanelCard name="recent" snapshot={snapshot} />
        <PanelCard name="leases" snapshot={snapshot} />
        <PanelCard name="deadLetters" snapshot={snapshot} wide />
        <PanelCard name="failures" snapshot={snapshot} wide />
        <PanelCard name="governor" snapshot={snapshot} />
        <PanelCard name="webhooks" snapshot={snapshot} />
      </main>
      <script
        type="application/json"
        id="dashboard-boot"
        dangerouslySetInnerHTML={{ __html: scriptJson({ csrf: props.csrf, panels: PANELS }) }}
      />
      <script nonce={props.nonce} dangerouslySetInnerHTML={{ __html: PAGE_SCRIPT }} />
    </Layout>
  );
}
