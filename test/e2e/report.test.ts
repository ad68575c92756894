// `appfence report` on a generated block log the way logrotate leaves it: the live file, a plain
// rotated copy and a gzip-compressed older one (plus a truncated .gz), through the built CLI.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { BlockLog, type LogEvent } from '../../src/log/block-log.js';
import { signalOf } from '../../src/report/classify.js';
import { parseSince } from '../../src/commands/report.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cli = join(root, 'dist/cli.js');
const dir = mkdtempSync(join(tmpdir(), 'appfence-report-'));
const run = (args: string[], input?: string) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', input, timeout: 20_000 });

const laptop = (name: string): LogEvent => ({ client: '127.0.10.5', group: 'city-devices', via: 'cert', device: 'laptop-0042',
  name, qtype: 'A', rule: 'tiktokv.com', list: 'tiktok', answer: 'null' });
const desktop = (name: string): LogEvent => ({ client: '127.0.10.9', group: 'city-devices', via: 'subnet', device: null,
  name, qtype: 'AAAA', rule: 'tiktok.com', list: 'tiktok', answer: 'null' });
const library = (name: string): LogEvent => ({ client: '127.0.10.77', group: 'library', via: 'subnet', device: null,
  name, qtype: 'A', rule: 'tiktokcdn.com', list: 'tiktok', answer: 'nxdomain' });

const now = Date.now();
const isoAgo = (hours: number): string => new Date(now - hours * 3_600_000).toISOString();
// A line as the server writes it, at a chosen time (BlockLog stamps "now"; older lines are re-dated).
const dated = (line: string, hours: number): string => line.replace(/"time":"[^"]+"/, `"time":"${isoAgo(hours)}"`);

/** Writes events with the real BlockLog, then re-dates them. */
function writeLog(file: string, events: [LogEvent, number][]): void {
  writeFileSync(file, ''); // BlockLog appends, as logrotate expects
  const log = new BlockLog({ destination: file, sync: true });
  for (const [ev] of events) log.block('udp', ev);
  log.close();
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
  writeFileSync(file, lines.map((l, i) => dated(l, events[i]![1])).join('\n') + '\n');
}

const live = join(dir, 'blocks.log');
t.before(() => {
  // Oldest first: blocks.log.2.gz (3 days ago), blocks.log.1 (yesterday), blocks.log (today).
  writeLog(live, [[laptop('api16-normal-c-useast1a.tiktokv.com'), 72], [desktop('www.tiktok.com'), 71]]);
  writeFileSync(`${live}.2.gz`, gzipSync(readFileSync(live)));
  writeLog(live, [[laptop('log16-normal-c-useast1a.tiktokv.com'), 26], [library('v16-webapp.tiktokcdn.com'), 25]]);
  renameSync(live, `${live}.1`);
  writeLog(live, [[laptop('api16-normal-c-useast1a.tiktokv.com'), 2], [desktop('analytics.tiktok.com'), 1],
    [desktop('www.tiktok.com'), 1]]);
  // An audit event (a group rolling the ban out), the server's own "suppressed" line, and noise.
  writeFileSync(live, readFileSync(live, 'utf8') +
    JSON.stringify({ time: isoAgo(0.5), event: 'audit', proto: 'doh', client: '127.0.10.33', group: 'parks', via: 'subnet',
      device: null, name: 'mon16-normal-useast5.tiktokv.us', qtype: 'A', rule: 'tiktokv.us', list: 'tiktok', answer: 'null' }) + '\n' +
    JSON.stringify({ time: isoAgo(0.4), event: 'suppressed', count: 7 }) + '\n' +
    'not json at all\n');
});

t.test('table: one row per device, app before web, over the live, rotated and .gz files', async (t) => {
  const r = run(['report', live, `${live}.1`, `${live}.2.gz`]);
  t.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n');
  t.match(lines[0], /^DEVICE\s+VIA\s+GROUP\s+BLOCKS\s+AUDITS\s+FIRST SEEN\s+LAST SEEN\s+PATTERN\s+TOP NAMES$/);
  const row = (device: string) => lines.find((l) => l.startsWith(`${device} `)) ?? '';
  t.match(row('laptop-0042'), /laptop-0042\s+cert\s+city-devices\s+3\s+0\s+.*APP\s+api16-normal-c-useast1a\.tiktokv\.com \(2\), log16/);
  t.match(row('127.0.10.9'), /127\.0\.10\.9\s+address\s+city-devices\s+3\s+0\s+.*WEB\s+www\.tiktok\.com \(2\), analytics\.tiktok\.com \(1\)/);
  t.match(row('127.0.10.77'), /127\.0\.10\.77\s+address\s+library\s+1\s+0\s+.*\s-\s+v16-webapp\.tiktokcdn\.com \(1\)/);
  t.match(row('127.0.10.33'), /127\.0\.10\.33\s+address\s+parks\s+0\s+1\s+.*APP/, 'audit events count as audits');
  t.ok(lines.indexOf(row('laptop-0042')) < lines.indexOf(row('127.0.10.9')), 'devices showing the app come first');
  t.match(r.stdout, /4 devices, 8 events: 2 show the TikTok app, 1 only the web\./);
  t.match(r.stdout, /could not write 7 events/);
  t.match(r.stdout, /1 lines were not block-log events/);
});

t.test('json: first and last seen span the rotated files; --since and --group filter', async (t) => {
  const all = JSON.parse(run(['report', '--format', 'json', `${live}.2.gz`, `${live}.1`, live]).stdout) as
    { devices: { device: string; firstSeen: string; lastSeen: string; blocks: number; pattern: string; clients: string[] }[]; events: number };
  const laptopRow = all.devices.find((d) => d.device === 'laptop-0042')!;
  t.equal(laptopRow.firstSeen.slice(0, 13), isoAgo(72).slice(0, 13), 'first seen comes from the .gz file');
  t.equal(laptopRow.lastSeen.slice(0, 13), isoAgo(2).slice(0, 13), 'last seen from the live file');
  t.same(laptopRow.clients, ['127.0.10.5']);
  t.equal(all.events, 8);

  const day = JSON.parse(run(['report', '--format', 'json', '--since', '1d', live, `${live}.1`, `${live}.2.gz`]).stdout) as typeof all;
  t.equal(day.events, 4, 'only the last 24 hours');
  t.equal(day.devices.find((d) => d.device === 'laptop-0042')!.blocks, 1);

  const lib = JSON.parse(run(['report', '--format', 'json', '--group', 'library', live, `${live}.1`, `${live}.2.gz`]).stdout) as typeof all;
  t.same(lib.devices.map((d) => d.device), ['127.0.10.77']);

  const iso = JSON.parse(run(['report', '--format', 'json', '--since', isoAgo(48), live, `${live}.1`]).stdout) as typeof all;
  t.equal(iso.events, 6, 'an ISO time works as --since (the live file and yesterday\'s)');
});

t.test('csv: RFC 4180 with a header; stdin without FILE; the same file twice counts once', async (t) => {
  const r = run(['report', '--format', 'csv', live, join(dir, '.', 'blocks.log')]);
  t.equal(r.status, 0);
  const rows = r.stdout.split('\r\n');
  t.equal(rows[0], 'device,via,groups,clients,blocks,audits,first_seen,last_seen,distinct_names,app_signals,web_signals,pattern,top_names');
  t.match(rows.find((l) => l.startsWith('laptop-0042,'))!, /^laptop-0042,cert,city-devices,127\.0\.10\.5,1,0,.*,1,1,0,app,api16-normal-c-useast1a\.tiktokv\.com \(1\)$/);
  t.equal(rows.filter((l) => l.length > 0).length, 1 + 3, 'header + 3 devices in the live file, not doubled');

  const s = run(['report', '--format', 'json'], readFileSync(live, 'utf8'));
  t.equal((JSON.parse(s.stdout) as { events: number }).events, 4);
});

t.test('a truncated .gz is read up to the damage and reported; bad input exits 2', async (t) => {
  const whole = gzipSync(readFileSync(`${live}.1`));
  writeFileSync(`${live}.3.gz`, whole.subarray(0, whole.length - 12));
  const r = run(['report', '--format', 'json', `${live}.3.gz`]);
  t.equal(r.status, 0);
  t.match(r.stderr, /blocks\.log\.3\.gz: .*read up to the damage/);
  t.ok((JSON.parse(r.stdout) as { damaged: unknown[] }).damaged.length === 1);

  t.equal(run(['report', '--format', 'xml', live]).status, 2);
  const since = run(['report', '--since', 'yesterday', live]);
  t.equal(since.status, 2);
  t.match(since.stderr, /--since: "yesterday"/);
  const missing = run(['report', join(dir, 'nope.log')]);
  t.equal(missing.status, 2);
  t.match(missing.stderr, /nope\.log: /);
  t.match(run(['report', '--help']).stdout, /Usage: appfence report/);
});

t.test('app and web signals', async (t) => {
  for (const n of ['api16-normal-c-useast1a.tiktokv.com', 'tiktokv.com', 'mon.tiktokv.us', 'api.tiktokv.eu', 'x.tiktokv-us.com']) t.equal(signalOf(n), 'app', n);
  for (const n of ['www.tiktok.com', 'analytics.tiktok.com', 'mcs.tiktokw.us', 'lf16-tiktok-web.ttwstatic.com']) t.equal(signalOf(n), 'web', n);
  for (const n of ['v16-webapp.tiktokcdn.com', 'api16-access-ttp.tiktokpangle.us', 'nottiktokv.com', 'tiktokv.com.example.org']) {
    t.equal(signalOf(n), 'neutral', n);
  }
  t.equal(parseSince('90s', 100_000), 10_000);
  t.equal(parseSince('2w', 2 * 604_800_000), 0);
});
