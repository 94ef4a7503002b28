// bench/stream report: reads the sample files written by bench/stream/client.c and prints
// markdown tables.
//
//   node bench/stream/report.mjs [WAY=BASELINE...] OUT.json...
//
// Files are grouped by their "way" label, in order of first appearance; several files of
// one way (rounds) are pooled. Then, for each WAY=BASELINE pair, the added latency (the
// way's percentile minus the baseline's, from the pooled samples) and the same for the
// chunk p99 round by round, to show the spread.
import fs from 'node:fs';

function pct(sorted, p) {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}
function stats(a) {
  const s = Float64Array.from(a).sort();
  return { n: s.length, p50: pct(s, 50), p99: pct(s, 99), max: s[s.length - 1] };
}
const ms = (ns) => (ns / 1e6).toFixed(3);

function report(files, pairs) {
  const groups = new Map();
  for (const name of files) {
    const f = JSON.parse(fs.readFileSync(name, 'utf8'));
    let g = groups.get(f.way);
    if (!g) {
      g = { way: f.way, lat: [], ttft: [], rounds: [], streams: 0, bad: 0, events: 0, usageChunks: 0, usageNull: 0, unstamped: 0 };
      groups.set(f.way, g);
    }
    for (const x of f.lat) g.lat.push(x);
    for (const x of f.ttft) g.ttft.push(x);
    g.rounds.push({ L: stats(f.lat), T: stats(f.ttft) });
    for (const k of ['streams', 'bad', 'events', 'usageChunks', 'usageNull', 'unstamped']) g[k] += f[k];
  }
  for (const g of groups.values()) {
    g.L = stats(g.lat);
    g.T = stats(g.ttft);
  }
  console.log('| way | streams | events | usage chunks | "usage":null | chunk p50 | chunk p99 | chunk max | TTFT p50 | TTFT p99 | TTFT max |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const g of groups.values()) {
    console.log(`| ${g.way} | ${g.streams}${g.bad ? ` (${g.bad} bad)` : ''} | ${g.events} | ${g.usageChunks} | ${g.usageNull} | ` +
      `${ms(g.L.p50)} | ${ms(g.L.p99)} | ${ms(g.L.max)} | ${ms(g.T.p50)} | ${ms(g.T.p99)} | ${ms(g.T.max)} |`);
  }
  console.log('');
  console.log('Added latency, ms (the way\'s percentile minus its baseline\'s; last column: chunk p99 added, round by round):');
  console.log('');
  console.log('| way | vs | chunk p50 | chunk p99 | chunk max | TTFT p50 | TTFT p99 | chunk p99 per round |');
  console.log('|---|---|---:|---:|---:|---:|---:|---|');
  const d = (x, y) => ((x - y) / 1e6).toFixed(3);
  for (const [way, bname] of Object.entries(pairs)) {
    const g = groups.get(way), b = groups.get(bname);
    if (!g || !b) continue;
    const rounds = g.rounds.map((r, i) => d(r.L.p99, (b.rounds[i] || b).L.p99)).join(' / ');
    console.log(`| ${way} | ${bname} | ${d(g.L.p50, b.L.p50)} | ${d(g.L.p99, b.L.p99)} | ${d(g.L.max, b.L.max)} | ` +
      `${d(g.T.p50, b.T.p50)} | ${d(g.T.p99, b.T.p99)} | ${rounds} |`);
  }
}

const pairs = {}, files = [];
for (const a of process.argv.slice(2)) {
  const m = /^([^=]+)=([^=]+)$/.exec(a);
  if (m && !a.endsWith('.json')) pairs[m[1]] = m[2];
  else files.push(a);
}
if (!files.length) {
  console.error('usage: node bench/stream/report.mjs [WAY=BASELINE...] OUT.json...');
  process.exit(2);
}
report(files, pairs);
