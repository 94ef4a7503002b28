// tollgate dashboard. Reads /dashboard/api/* every few seconds and draws the numbers and
// charts with the DOM and hand-made SVG. Every string that comes from the store (tenant ids
// and names, reasons, paths, alarm names) is put in with textContent or setAttribute, never
// parsed as HTML; the page's Content-Security-Policy allows no inline script anyway.
'use strict';

const POLL_MS = 5000;
const SVG = 'http://www.w3.org/2000/svg';

function $(sel, root = document) {
  return root.querySelector(sel);
}

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = String(text);
  return e;
}

// Integers as they are stored: no rounding, no separators, so what is shown can be
// compared with the store exactly.
function int(n) {
  return n === null || n === undefined ? '—' : String(n);
}

// Integer micro-USD as dollars with six decimals, by integer arithmetic.
function usd(micros) {
  if (micros === null || micros === undefined) return '—';
  const neg = micros < 0;
  const m = Math.abs(micros);
  const whole = Math.floor(m / 1e6);
  const frac = String(m % 1e6).padStart(6, '0');
  return `${neg ? '-' : ''}$${whole}.${frac}`;
}

function ms(us) {
  return us === null || us === undefined ? '—' : `${(us / 1000).toFixed(1)} ms`;
}

function pct(f) {
  return f === null || f === undefined ? '—' : `${(f * 100).toFixed(1)}%`;
}

function level(f) {
  return f >= 1 ? 'over' : f >= 0.8 ? 'warn' : '';
}

function showError(text) {
  const p = $('[data-testid="error"]');
  p.hidden = !text;
  p.textContent = text || '';
}

async function getJSON(url) {
  const r = await fetch(url, { credentials: 'same-origin', cache: 'no-store' });
  if (r.status === 401) {
    throw new Error('Not logged in (or the admin token changed): open /dashboard?token=ADMIN_TOKEN again.');
  }
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new Error((body && body.error && body.error.message) || `HTTP ${r.status}`);
  return body;
}

function td(cls, testid, text, value) {
  const c = el('td', { class: cls, 'data-testid': testid }, text);
  if (value !== undefined && value !== null) c.setAttribute('data-value', String(value));
  return c;
}

// An alarm's measure in its unit: ratios (quota, error rate, queue fill) as percent, latency
// in ms, spend rate in USD per hour (the engine's unit is micro-USD per hour).
function alarmValue(kind, v) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return String(v);
  if (kind === 'quota' || kind === 'error_rate' || kind === 'queue') return `${(v * 100).toFixed(1)}%`;
  if (kind === 'latency') return `${v.toFixed(v < 10 ? 1 : 0)} ms`;
  if (kind === 'spend_rate') return `$${(v / 1e6).toFixed(6)}/h`;
  return String(Math.round(v * 1000) / 1000);
}

function alarmsInto(box, alarms) {
  box.replaceChildren();
  if (!alarms || alarms.length === 0) {
    box.append(el('div', { class: 'none' }, 'No alarm is firing.'));
    return;
  }
  for (const a of alarms) {
    const d = el('div', { class: 'alarm', 'data-testid': 'alarm' });
    const parts = [a.name, a.tenant ? `tenant ${a.tenant}` : '', a.state,
      a.value !== undefined ? `value ${alarmValue(a.kind, a.value)}` : '',
      a.threshold !== undefined ? `fires at ${alarmValue(a.kind, a.threshold)}` : ''];
    d.textContent = parts.filter(Boolean).join(' · ');
    box.append(d);
  }
}

// ---- overview -------------------------------------------------------------------------

function budgetCell(b) {
  const c = el('td', { 'data-testid': 'budget' });
  if (!b) {
    c.append(el('span', { class: 'muted' }, 'none'));
    return c;
  }
  const m = el('span', { class: 'meter' });
  const f = b.used === null ? 0 : b.used;
  const bar = el('span', { class: level(f) });
  bar.setAttribute('data-width', String(Math.min(100, f * 100)));
  m.append(bar);
  c.append(m, el('span', { 'data-testid': 'budget-used' }, `${pct(b.used)} of ${usd(b.monthly_micros)}`));
  c.setAttribute('data-spend', String(b.spend_micros));
  return c;
}

function renderOverview(d) {
  const tbody = $('#tenants');
  const rows = [];
  for (const t of d.tenants) {
    const tr = el('tr', { 'data-testid': 'tenant-row', 'data-tenant': t.id });
    const idCell = el('td', { 'data-testid': 'id' });
    if (t.id) {
      idCell.append(el('a', { href: `/dashboard/tenant/${encodeURIComponent(t.id)}` }, t.id));
    } else {
      idCell.append(el('span', { class: 'muted' }, '(no tenant)'));
    }
    const r = t.range;
    tr.append(
      idCell,
      el('td', { class: 'name', 'data-testid': 'name' }, t.name),
      td('n', 'requests', int(r.requests)),
      td('n' + (r.failed ? ' bad' : ''), 'failed', int(r.failed)),
      td('n', 'rejected', int(r.rejected)),
      td('n', 'p95', ms(r.latency_p95_us), r.latency_p95_us),
      td('n', 'tokens_in', int(r.tokens_in)),
      td('n', 'tokens_out', int(r.tokens_out)),
      td('n', 'cost', usd(r.cost_micros), r.cost_micros),
      budgetCell(t.budget),
    );
    rows.push(tr);
  }
  tbody.replaceChildren(...rows);
  const tot = $('[data-testid="totals"]');
  for (const k of ['requests', 'failed', 'rejected', 'tokens_in', 'tokens_out']) {
    $(`[data-testid="${k}"]`, tot).textContent = int(d.totals[k]);
  }
  $('[data-testid="cost"]', tot).textContent = usd(d.totals.cost_micros);
  alarmsInto($('[data-testid="alarms-all"]'), d.alarms);
  // The budget bars' widths: set through the CSSOM (no inline style attribute in the HTML).
  for (const b of tbody.querySelectorAll('.meter span')) b.style.width = `${b.getAttribute('data-width')}%`;
}

// ---- charts: hand-made SVG --------------------------------------------------------------

// A line over values (one point per value, left to right), with its maximum and first and
// last labels. The polyline has exactly values.length points.
function lineChart(box, values, firstLabel, lastLabel, fmt = int) {
  const W = 600;
  const H = 170;
  const R = 8;
  const T = 10;
  const B = 22;
  const max = Math.max(1, ...values);
  const L = 10 + 6.5 * fmt(max).length; // room for the largest label
  const n = values.length;
  const x = (i) => L + (n <= 1 ? 0 : (i * (W - L - R)) / (n - 1));
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img' });
  s.append(svg('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }));
  s.append(svg('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }));
  const pts = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`);
  s.append(svg('polygon', { class: 'area', points: `${x(0)},${H - B} ${pts.join(' ')} ${x(n - 1)},${H - B}` }));
  s.append(svg('polyline', { class: 'line', points: pts.join(' '), 'data-points': n }));
  s.append(svg('text', { class: 'lbl', x: L - 4, y: T + 8, 'text-anchor': 'end' }, fmt(max)));
  s.append(svg('text', { class: 'lbl', x: L - 4, y: H - B, 'text-anchor': 'end' }, '0'));
  s.append(svg('text', { class: 'lbl', x: L, y: H - 6 }, firstLabel));
  s.append(svg('text', { class: 'lbl', x: W - R, y: H - 6, 'text-anchor': 'end' }, lastLabel));
  box.replaceChildren(s);
}

function hhmm(us) {
  return new Date(us / 1000).toISOString().slice(11, 16);
}

// A half-circle gauge of the month's spend against the budget.
function gauge(box, b) {
  box.replaceChildren();
  if (!b) {
    box.append(el('span', { class: 'muted', 'data-testid': 'budget-used' }, 'No budget set.'));
    return;
  }
  const f = b.used === null ? 0 : b.used;
  const wrap = el('div', { class: 'gauge' });
  const s = svg('svg', { viewBox: '0 0 120 70' });
  const arc = 'M 10 60 A 50 50 0 0 1 110 60';
  const len = Math.PI * 50;
  s.append(svg('path', { class: 'track', d: arc }));
  s.append(svg('path', {
    class: `fill ${level(f)}`, d: arc,
    'stroke-dasharray': `${(Math.min(1, f) * len).toFixed(2)} ${len.toFixed(2)}`,
  }));
  s.append(svg('text', { x: 60, y: 58, 'text-anchor': 'middle', class: 'lbl' }, pct(b.used)));
  const txt = el('div');
  txt.append(
    el('div', { 'data-testid': 'budget-used' }, `${usd(b.spend_micros)} of ${usd(b.monthly_micros)} (${pct(b.used)})`),
    el('div', { class: 'muted' }, `${b.month}, ${b.hard ? 'hard stop at the budget' : 'alerts only'}`),
  );
  txt.firstChild.setAttribute('data-spend', String(b.spend_micros));
  wrap.append(s, txt);
  box.append(wrap);
}

// ---- one tenant -------------------------------------------------------------------------

function renderTenant(d) {
  $('[data-testid="tenant-id"]').textContent = d.tenant.id || '(no tenant)';
  $('[data-testid="tenant-name"]').textContent = d.tenant.name;
  $('[data-testid="tenant-status"]').textContent = d.tenant.status;
  const t = d.today;
  $('[data-testid="today-requests"]').textContent = int(t.requests);
  $('[data-testid="today-failed"]').textContent = int(t.failed);
  $('[data-testid="today-rejected"]').textContent = int(t.rejected);
  $('[data-testid="today-p95"]').textContent = ms(t.latency_p95_us);
  $('[data-testid="today-tokens"]').textContent = `${int(t.tokens_in)} / ${int(t.tokens_out)}`;
  $('[data-testid="today-cost"]').textContent = usd(t.cost_micros);
  const mins = d.minutes.points;
  lineChart($('[data-testid="chart-minutes"]'), mins.map((p) => p.requests),
    hhmm(mins[0].t), hhmm(mins[mins.length - 1].t));
  const days = d.days.points;
  lineChart($('[data-testid="chart-days"]'), days.map((p) => p.requests),
    days[0].day, days[days.length - 1].day);
  lineChart($('[data-testid="chart-cost"]'), days.map((p) => p.cost_micros),
    days[0].day, days[days.length - 1].day, usd);
  gauge($('[data-testid="budget"]'), d.budget);
  alarmsInto($('[data-testid="alarms"]'), d.alarms);

  const per = (p) => ({ 1: '/s', 60: '/min', 3600: '/h' })[p] || '';
  const lrows = d.limits.map((l) => {
    const scope = l.scope === 'tenant' ? '' : ` ${l.scope} ${l.value}`;
    const tr = el('tr', { 'data-testid': 'limit' });
    tr.append(
      el('td', {}, `${l.tenant === '*' ? 'every tenant' : 'this tenant'}${scope}`),
      td('n', 'limit-requests', l.period_s ? `${l.requests}${per(l.period_s)}` : '—'),
      td('n', 'limit-used-requests', int(l.used_requests)),
      td('n', 'limit-tokens', l.tokens_period_s ? `${l.tokens}${per(l.tokens_period_s)}` : '—'),
      td('n', 'limit-used-tokens', int(l.used_tokens)),
    );
    return tr;
  });
  const ltb = $('[data-testid="limits"] tbody');
  ltb.replaceChildren(...lrows);
  if (lrows.length === 0) {
    const tr = el('tr');
    tr.append(el('td', { colspan: '5', class: 'muted' }, 'No limit rows in the store for this tenant.'));
    ltb.append(tr);
  }

  const rtb = $('[data-testid="rejections"] tbody');
  const rrows = d.rejections.map((r) => {
    const tr = el('tr', { 'data-testid': 'rejection' });
    tr.append(
      el('td', {}, new Date(r.ts_us / 1000).toISOString().replace('T', ' ').slice(0, 19)),
      el('td', { class: 'n' }, r.status),
      el('td', { 'data-testid': 'reason' }, r.reason),
      el('td', {}, r.route),
      el('td', { class: 'name' }, `${r.method} ${r.path}`),
    );
    return tr;
  });
  rtb.replaceChildren(...rrows);
  if (rrows.length === 0) {
    const tr = el('tr');
    tr.append(el('td', { colspan: '5', class: 'muted' }, 'No rejection.'));
    rtb.append(tr);
  }
}

// ---- routing and polling ------------------------------------------------------------------

function route() {
  const m = /^\/dashboard\/tenant\/([^/]+)$/.exec(location.pathname);
  return m ? { tenant: decodeURIComponent(m[1]) } : { tenant: null };
}

let timer = null;
let generation = 0;

async function refresh() {
  const gen = ++generation;
  clearTimeout(timer);
  const r = route();
  try {
    if (r.tenant !== null) {
      const d = await getJSON(`/dashboard/api/tenant/${encodeURIComponent(r.tenant)}`);
      if (gen !== generation) return;
      renderTenant(d);
      document.title = `${d.tenant.id} · tollgate dashboard`;
    } else {
      const range = $('#range').value;
      const d = await getJSON(`/dashboard/api/overview?range=${encodeURIComponent(range)}`);
      if (gen !== generation) return;
      renderOverview(d);
    }
    showError('');
    const u = $('[data-testid="updated"]');
    u.textContent = `updated ${new Date().toISOString().slice(11, 19)} UTC`;
    u.setAttribute('data-loads', String(Number(u.getAttribute('data-loads') || 0) + 1));
  } catch (e) {
    if (gen === generation) showError(e.message);
  }
  if (gen === generation) timer = setTimeout(refresh, POLL_MS);
}

document.addEventListener('DOMContentLoaded', () => {
  const r = route();
  $('#overview').hidden = r.tenant !== null;
  $('#tenant').hidden = r.tenant === null;
  $('#range').addEventListener('change', refresh);
  refresh();
});
