// The Grafana dashboard and the Prometheus alert rules in docker/ against a live appfence: every
// metric an expression names must be one the running server really exposes (scraped, not listed
// by hand), every expression must be valid PromQL (promtool check rules), and the alert rules
// pass promtool's own checks and the unit cases in alerts.test.yaml.
import t from 'tap';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { stringify as toYaml, parse as parseYaml } from 'yaml';
import { startFakeUpstream } from '../helpers/fake-upstream.js';
import { startServer } from '../helpers/start-server.js';
import { query } from '../helpers/dns-client.js';
import { scrape, hasPromtool } from '../helpers/metrics.js';
import { PACKAGE_ROOT } from '../../src/config/default.js';

const DOCKER = join(PACKAGE_ROOT, 'docker');
const dashboard = JSON.parse(readFileSync(join(DOCKER, 'grafana/appfence-dashboard.json'), 'utf8')) as Record<string, unknown>;
const alerts = parseYaml(readFileSync(join(DOCKER, 'prometheus/alerts.yaml'), 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] };

/** Every `expr` anywhere in the dashboard (panels, rows, annotations), and the variable queries. */
function dashboardExpressions(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) for (const n of node) dashboardExpressions(n, out);
  else if (node !== null && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === 'expr' && typeof v === 'string') out.push(v);
      else dashboardExpressions(v, out);
    }
  }
  return out;
}

const PROMQL_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']);

/** Metric names in a PromQL expression: identifiers that are not functions, keywords, labels or durations. */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')                            // label values
    .replace(/\{[^}]*\}/g, '')                                       // label matchers
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '') // grouping labels
    .replace(/\[[^\]]*\]/g, '')                                      // range selectors
    .replace(/\$\w+/g, '');                                          // Grafana variables
  const names: string[] = [];
  for (const m of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const after = stripped.slice((m.index ?? 0) + m[0].length).trimStart();
    if (after.startsWith('(') || PROMQL_WORDS.has(m[0].toLowerCase())) continue;
    const before = stripped.slice(0, m.index ?? 0);
    if (/\d$/.test(before)) continue; // 2m, 1e3
    names.push(m[0]);
  }
  return names;
}

t.test('metricNames reads PromQL as expected', async (t) => {
  t.same(metricNames('sum by (group, list) (rate(appfence_blocks_total{instance=~"$instance"}[$__rate_interval]))'), ['appfence_blocks_total']);
  t.same(metricNames('histogram_quantile(0.9, sum by (le) (rate(a_bucket[5m]))) / on(instance) group_left(version) b > 2 * 86400'), ['a_bucket', 'b']);
  t.same(metricNames('time() - x_seconds > 2 * 86400'), ['x_seconds']);
});

t.test('every dashboard and alert expression names metrics the live server exposes', async (t) => {
  const up = await startFakeUpstream({ zone: { 'example.org A': { answers: [{ type: 'A', ttl: 300, data: '192.0.2.10' }] } } });
  t.teardown(() => up.close());
  const af = await startServer(`
dns: { listen: ["127.0.0.1:0"], upstreams: ["127.0.0.1:${up.port}"] }
access: { allow: ["127.0.0.0/8"] }
lists: { tiktok: { sources: ["tiktok.txt"] } }
groups: { city: { subnets: ["127.0.10.0/24"], block: [tiktok] } }
log: { level: silent }
admin: { listen: "127.0.0.1:0", token: "t" }
`, { 'tiktok.txt': 'tiktok.com\n' });
  t.teardown(() => af.close());
  await query({ server: af.server, name: 'www.tiktok.com', type: 'A', proto: 'udp', localAddress: '127.0.10.5' });
  await query({ server: af.server, name: 'example.org', type: 'A', proto: 'udp', localAddress: '127.0.10.5' });
  const exposition = await scrape(af.runtime.adminPort);
  const exposed = new Set<string>();
  for (const [family, type] of exposition.types) {
    exposed.add(family);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) exposed.add(family + s);
    if (type === 'summary') for (const s of ['_sum', '_count']) exposed.add(family + s);
  }
  // Prometheus makes `up` itself for every scrape target.
  const fromPrometheus = new Set(['up']);

  const panels = dashboardExpressions(dashboard);
  t.ok(panels.length >= 20, `${panels.length} dashboard expressions`);
  const rules = alerts.groups.flatMap((g) => g.rules);
  for (const [where, expr] of [...panels.map((e) => ['dashboard', e] as const), ...rules.map((r) => [`alert ${r.alert}`, r.expr] as const)]) {
    const names = metricNames(expr);
    t.ok(names.length > 0, `${where}: names a metric`);
    for (const name of names) t.ok(exposed.has(name) || fromPrometheus.has(name), `${where}: ${name} is exposed`);
  }
  // What the issue asks the dashboard to show.
  const all = panels.join('\n');
  for (const name of ['appfence_blocks_total', 'appfence_dns_queries_total', 'appfence_cache_hits_total', 'appfence_upstream_duration_seconds_bucket',
    'appfence_list_rules', 'appfence_list_last_success_timestamp_seconds', 'appfence_reloads_total', 'appfence_cert_rejections_total']) {
    t.ok(all.includes(name), `the dashboard shows ${name}`);
  }
  t.match(all, /sum by \(group, list\) \(rate\(appfence_blocks_total/, 'blocks over time by group and list');
  t.match(all, /histogram_quantile\(0\.99,/, 'upstream latency quantiles');
});

t.test('dashboard expressions are valid PromQL', { skip: hasPromtool ? false : 'promtool not installed' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'appfence-promql-'));
  const exprs = dashboardExpressions(dashboard).map((e) => e
    .replace(/\$__rate_interval|\$__range|\$__interval/g, '5m')
    .replace(/\$\w+/g, '.*'));
  const file = join(dir, 'dashboard-as-rules.yaml');
  writeFileSync(file, toYaml({ groups: [{ name: 'dashboard', rules: exprs.map((expr, i) => ({ record: `dashboard:expr_${i}`, expr })) }] }));
  const r = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
  t.equal(r.status, 0, `promtool check rules: ${r.stdout}${r.stderr}`);
});

t.test('alert rules pass promtool check rules and promtool test rules', { skip: hasPromtool ? false : 'promtool not installed' }, async (t) => {
  const check = spawnSync('promtool', ['check', 'rules', 'alerts.yaml'], { cwd: join(DOCKER, 'prometheus'), encoding: 'utf8' });
  t.equal(check.status, 0, `${check.stdout}${check.stderr}`);
  t.match(check.stdout, /SUCCESS: \d+ rules found/);
  const test = spawnSync('promtool', ['test', 'rules', 'alerts.test.yaml'], { cwd: join(DOCKER, 'prometheus'), encoding: 'utf8' });
  t.equal(test.status, 0, `${test.stdout}${test.stderr}`);
  t.match(test.stdout, /SUCCESS/);
  const names = alerts.groups.flatMap((g) => g.rules.map((r) => r.alert));
  for (const alert of ['AppfenceListStale', 'AppfenceReloadFailed', 'AppfenceUpstreamsFailing', 'AppfenceCertRejectionsRising']) {
    t.ok(names.includes(alert), `${alert} exists`);
  }
  const cases = readFileSync(join(DOCKER, 'prometheus/alerts.test.yaml'), 'utf8');
  for (const alert of names) t.match(cases, new RegExp(`alertname: ${alert}\\b`), `alerts.test.yaml covers ${alert}`);
});
