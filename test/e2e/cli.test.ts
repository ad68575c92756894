// The built CLI (dist/cli.js, made by `npm test`'s build step) as a user runs it: `serve` driven by
// dig from managed and guest source addresses, SIGHUP reload, SIGTERM with log flush, and the
// check / lists check / tail commands with their exit codes.
import t from 'tap';
import { spawn, spawnSync, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import dgram from 'node:dgram';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { createTestPki, cityDevices } from '../helpers/certs.js';
import { rm } from 'node:fs/promises';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cli = join(root, 'dist/cli.js');
const dir = mkdtempSync(join(tmpdir(), 'appfence-e2e-'));

const run = (args: string[], input?: string) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', input, timeout: 20_000 });

const dig = (port: number, from: string, ...args: string[]): Promise<string> =>
  new Promise((resolve, reject) => {
    execFile('dig', ['@127.0.0.1', '-p', String(port), '-b', from, '+tries=1', '+time=2', ...args], { timeout: 10_000 }, (err, stdout) =>
      err ? reject(err) : resolve(stdout));
  });

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

/** Resolves once the server logged that it listens (bounded by the test timeout). */
function waitForListening(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('appfence started')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
  });
}

const hasDig = spawnSync('sh', ['-c', 'command -v dig']).status === 0;

let up: FakeUpstream;
t.before(async () => {
  up = await startFakeUpstream({ zone: {
    'www.tiktok.com A': { answers: [{ type: 'A', ttl: 300, data: '198.51.100.7' }] },
    'example.org A': { answers: [{ type: 'A', ttl: 300, data: '192.0.2.10' }] },
  } });
});
t.teardown(() => up?.close());

t.test('--version, --help, unknown command', async (t) => {
  const v = run(['--version']);
  t.equal(v.status, 0);
  t.equal(v.stdout.trim(), JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version);
  const h = run(['--help']);
  t.equal(h.status, 0);
  t.match(h.stdout, /appfence serve/);
  t.match(run(['check', '--help']).stdout, /--client IP/);
  const bad = run(['frobnicate']);
  t.equal(bad.status, 2);
  t.match(bad.stderr, /unknown command "frobnicate"/);
});

t.test('serve: bad config exits 2 naming the key path', async (t) => {
  const file = join(dir, 'bad.yaml');
  writeFileSync(file, 'dns:\n  listen: ["127.0.0.1"]\n  upstreams: ["127.0.0.1:53"]\n');
  const r = run(['serve', '--config', file]);
  t.equal(r.status, 2);
  t.match(r.stderr, /dns\.listen\[0\]/);
});

t.test('serve with dig: managed subnet sinkholed, guest resolved, SIGHUP reload, SIGTERM flushes', { skip: hasDig ? false : 'dig not installed' }, async (t) => {
  const port = await freePort();
  const blocks = join(dir, 'blocks.log');
  const file = join(dir, 'appfence.yaml');
  const yaml = (cityBlocks: string) => `dns:
  listen: ["127.0.0.1:${port}"]
  upstreams: ["127.0.0.1:${up.port}"]
access: { allow: ["127.0.0.0/8"] }
lists: { tiktok: { sources: ["${join(root, 'blocklists/tiktok.txt')}"] } }
groups: { city: { subnets: ["127.0.10.0/24"], block: [${cityBlocks}] } }
log: { level: info, blocks: "${blocks}" }
`;
  writeFileSync(file, yaml('tiktok'));
  const child = spawn(process.execPath, [cli, 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  await waitForListening(child);

  t.equal((await dig(port, '127.0.10.5', '+short', 'www.tiktok.com')).trim(), '0.0.0.0', 'city device: sinkhole');
  t.equal((await dig(port, '127.0.10.5', '+short', '+tcp', 'www.tiktok.com', 'AAAA')).trim(), '::', 'city device over TCP: ::');
  t.equal((await dig(port, '127.0.20.5', '+short', 'www.tiktok.com')).trim(), '198.51.100.7', 'guest: real answer');
  t.equal((await dig(port, '127.0.10.5', '+short', 'example.org')).trim(), '192.0.2.10', 'other names resolve for everyone');
  const full = await dig(port, '127.0.10.5', 'www.tiktok.com', 'HTTPS');
  t.match(full, /status: NOERROR/);
  t.match(full, /ANSWER: 0/, 'HTTPS for a blocked name: NODATA');

  // reload: the city group stops blocking
  writeFileSync(file, yaml(''));
  const reloaded = new Promise<void>((resolve) => child.stderr!.on('data', (d: Buffer) => { if (d.toString().includes('"reloaded"')) resolve(); }));
  child.kill('SIGHUP');
  await reloaded;
  t.equal((await dig(port, '127.0.10.5', '+short', 'www.tiktok.com')).trim(), '198.51.100.7', 'after SIGHUP: new policy');

  // a broken config on reload keeps the running one
  writeFileSync(file, 'dns: [');
  const failed = new Promise<void>((resolve) => child.stderr!.on('data', (d: Buffer) => { if (d.toString().includes('reload failed')) resolve(); }));
  child.kill('SIGHUP');
  await failed;
  t.equal((await dig(port, '127.0.20.5', '+short', 'example.org')).trim(), '192.0.2.10', 'still serving after a bad reload');

  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM exits 0');
  const lines = readFileSync(blocks, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.equal(lines.filter((l) => l['event'] === 'block').length, 3, 'every block was flushed to the log');
  t.match(lines[0], { event: 'block', proto: 'udp', client: '127.0.10.5', group: 'city', via: 'subnet', name: 'www.tiktok.com', qtype: 'A', rule: 'tiktok.com', list: 'tiktok', answer: 'null' });

  const tail = run(['tail'], readFileSync(blocks, 'utf8'));
  t.equal(tail.status, 0);
  t.match(tail.stdout, /BLOCK\s+udp\s+127\.0\.10\.5\s+city \(subnet\)\s+www\.tiktok\.com A → null\s+\[tiktok: tiktok\.com\]/);
  t.match(tail.stdout.split('\n')[1], /www\.tiktok\.com AAAA/);
});

t.test('check: explains and exits 0 / 1 / 2', async (t) => {
  const file = join(dir, 'check.yaml');
  writeFileSync(join(dir, 'allow.txt'), 'allowed.tiktok.com\n');
  writeFileSync(file, `dns: { upstreams: ["127.0.0.1:53"] }
lists:
  tiktok: { sources: ["${join(root, 'blocklists/tiktok.txt')}"] }
  exceptions: { sources: ["allow.txt"] }
groups: { city: { subnets: ["10.20.0.0/16"], block: [tiktok], allow: [exceptions], mode: nxdomain } }
access: { allow: ["10.0.0.0/8"] }
`);
  const blocked = run(['check', '--config', file, '--client', '10.20.1.2', 'WWW.TikTok.com.', 'example.org']);
  t.equal(blocked.status, 1, 'any blocked → 1');
  t.match(blocked.stdout, /www\.tiktok\.com\s+BLOCK\s+group=city\s+via=subnet\s+rule=tiktok\.com list=tiktok \(.*tiktok\.txt:\d+\)\s+answer=nxdomain/);
  t.match(blocked.stdout, /example\.org\s+ALLOW\s+group=city/);
  const allowed = run(['check', '--config', file, '--client', '10.99.0.1', 'www.tiktok.com']);
  t.equal(allowed.status, 0, 'default group → allowed');
  t.match(allowed.stdout, /ALLOW\s+group=default\s+via=default/);
  const exception = run(['check', '--config', file, '--client', '10.20.1.2', 'allowed.tiktok.com']);
  t.equal(exception.status, 0);
  t.match(exception.stdout, /allowed by rule=allowed\.tiktok\.com list=exceptions .* over rule=tiktok\.com list=tiktok/);
  const refused = run(['check', '--config', file, '--client', '192.0.2.1', 'example.org']);
  t.equal(refused.status, 1);
  t.match(refused.stdout, /refused/);
  t.equal(run(['check', '--config', file, '--client', 'not-an-ip', 'x.org']).status, 2);
  t.equal(run(['check', '--config', file, 'x.org']).status, 2, '--client missing');
  t.equal(run(['check', '--config', file, '--client', '10.20.1.2', 'bad name!']).status, 2);
});

t.test('lists check: counts rules, names rejected lines by file:line', async (t) => {
  const good = join(dir, 'good.txt');
  const bad = join(dir, 'bad.txt');
  writeFileSync(good, '# comment\ntiktok.com\n||tiktokv.com^\n0.0.0.0 a.example b.example\n*.tiktokcdn.com\n');
  writeFileSync(bad, 'tiktok.com\nthis is not a rule\n||ads.example^$third-party\nok.example\n');
  const r = run(['lists', 'check', good]);
  t.equal(r.status, 0);
  t.match(r.stdout, /good\.txt: 5 rules, 0 rejected/);
  const b = run(['lists', 'check', good, bad]);
  t.equal(b.status, 1);
  t.match(b.stdout, /bad\.txt: 2 rules, 2 rejected/);
  t.match(b.stdout, /bad\.txt:2: /);
  t.match(b.stdout, /bad\.txt:3: /);
  t.equal(run(['lists', 'check', join(dir, 'nope.txt')]).status, 2);
  t.ok(existsSync(good));
});

t.test('serve: a port in use exits 2 naming the key; SIGTERM answers in-flight queries before exiting 0', async (t) => {
  const busy = dgram.createSocket('udp4');
  await new Promise<void>((r) => busy.bind(0, '127.0.0.1', () => r()));
  const file = join(dir, 'busy.yaml');
  writeFileSync(file, `dns: { listen: ["127.0.0.1:${busy.address().port}"], upstreams: ["127.0.0.1:${up.port}"] }\n`);
  const r = run(['serve', '--config', file]);
  busy.close();
  t.equal(r.status, 2);
  t.match(r.stderr, /dns\.listen\[0\]: cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);
  t.notMatch(r.stderr, /at .*\.js/, 'no stack trace');

  if (!hasDig) return;
  const port = await freePort();
  writeFileSync(file, `dns: { listen: ["127.0.0.1:${port}"], upstreams: ["127.0.0.1:${up.port}"] }\nlog: { level: info }\n`);
  const child = spawn(process.execPath, [cli, 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  await waitForListening(child);
  up.opts.delayMs = 800;
  t.teardown(() => { up.opts.delayMs = 0; });
  const answer = dig(port, '127.0.20.5', '+short', 'example.org');
  await new Promise((r) => setTimeout(r, 300));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  t.equal((await answer).trim(), '192.0.2.10', 'the query in flight at SIGTERM was answered');
  t.equal(await exited, 0, 'then exit 0');
});

t.test('check --cert with an unreadable file exits 2', async (t) => {
  const file = join(dir, 'certs.yaml');
  writeFileSync(join(dir, 'ca.pem'), 'not a certificate');
  writeFileSync(file, `dns: { upstreams: ["127.0.0.1:53"] }\nclientCerts: { ca: ca.pem }\n`);
  const r = run(['check', '--config', file, '--client', '10.0.0.1', '--cert', join(dir, 'missing.pem'), 'example.org']);
  t.equal(r.status, 2);
  t.match(r.stderr, /--cert: cannot read/);
});

t.test('tail FILE follows the block log as it grows', async (t) => {
  const file = join(dir, 'follow.log');
  const line = (name: string) => JSON.stringify({ time: '2026-11-24T10:00:00.000Z', event: 'block', proto: 'tcp', client: '10.20.4.7',
    group: 'city', via: 'cert', device: 'laptop-042', name, qtype: 'AAAA', rule: 'tiktok.com', list: 'tiktok', answer: 'nxdomain' }) + '\n';
  writeFileSync(file, line('first.tiktok.com'));
  const child = spawn(process.execPath, [cli, 'tail', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => child.kill('SIGKILL'));
  let out = '';
  const seen = (text: string) => new Promise<void>((resolve) => {
    const check = () => { if (out.includes(text)) resolve(); };
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); check(); });
    check();
  });
  await seen('first.tiktok.com');
  const { appendFileSync } = await import('node:fs');
  appendFileSync(file, line('second.tiktok.com'));
  await seen('second.tiktok.com');
  t.match(out, /BLOCK\s+tcp\s+10\.20\.4\.7\s+city \(cert laptop-042\)\s+second\.tiktok\.com AAAA → nxdomain\s+\[tiktok: tiktok\.com\]/);
});

t.test('check --cert from an address outside access.allow agrees with the server: a valid device certificate passes', async (t) => {
  const pki = await createTestPki();
  t.teardown(() => rm(pki.dir, { recursive: true, force: true }));
  const { laptop, forged } = await cityDevices(pki);
  const expired = await pki.device({ cn: 'laptop-044', ou: 'City Devices', days: -1 });
  const file = join(dir, 'roaming.yaml');
  writeFileSync(file, `dns: { upstreams: ["127.0.0.1:53"] }
clientCerts: { ca: ${pki.ca.cert} }
access: { allow: ["10.0.0.0/8"] }
lists: { tiktok: { sources: ["${join(root, 'blocklists/tiktok.txt')}"] } }
groups:
  city:
    subnets: ["10.20.0.0/16"]
    certificates: { issuer: "City Device CA", subject: { OU: "City Devices", CN: "laptop-*" } }
    block: [tiktok]
`);
  const hotel = '203.0.113.5';
  const served = run(['check', '--config', file, '--client', hotel, '--cert', laptop.cert, 'www.tiktok.com']);
  t.equal(served.status, 1, 'blocked → 1, not refused');
  t.match(served.stdout, /www\.tiktok\.com\s+BLOCK\s+group=city\s+via=cert\s+device=laptop-042/);
  t.notMatch(served.stdout, /refused/);
  const bare = run(['check', '--config', file, '--client', hotel, 'www.tiktok.com']);
  t.equal(bare.status, 1);
  t.match(bare.stdout, /203\.0\.113\.5: refused \(not in access\.allow\)/, 'the same address without a certificate is refused');
  for (const [label, cert, reason] of [['stranger CA', forged, 'not signed by clientCerts.ca'], ['expired', expired, 'expired']] as const) {
    const r = run(['check', '--config', file, '--client', hotel, '--cert', cert.cert, 'www.tiktok.com']);
    t.equal(r.status, 1, label);
    t.match(r.stdout, new RegExp(`certificate: not used \\(${reason}\\)\n203\\.0\\.113\\.5: refused`), `${label}: said why, then refused`);
  }
  const office = run(['check', '--config', file, '--client', '10.20.1.2', '--cert', laptop.cert, 'example.org']);
  t.equal(office.status, 0);
  t.match(office.stdout, /example\.org\s+ALLOW\s+group=city\s+via=cert\s+device=laptop-042/, 'inside access.allow the certificate still beats the subnet');
});

t.test('serve: SIGHUPs during a slow reload are queued into exactly one more reload, none dropped', async (t) => {
  const http = await import('node:http');
  let requests = 0;
  // the list server answers the first reload's download slowly, so the next SIGHUPs arrive during it
  const web = http.createServer((_req, res) => {
    requests++;
    setTimeout(() => res.end('tiktok.com\n'), requests === 2 ? 1500 : 0);
  });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => web.close());
  const url = `http://127.0.0.1:${(web.address() as import('node:net').AddressInfo).port}/tiktok.txt`;
  const file = join(dir, 'slow-reload.yaml');
  writeFileSync(file, `dns: { listen: ["127.0.0.1:${await freePort()}"], upstreams: ["127.0.0.1:${up.port}"] }
lists: { tiktok: { sources: ["${url}"] } }
log: { level: info, blocks: "${join(dir, 'slow-blocks.log')}" }
`);
  const child = spawn(process.execPath, [cli, 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  await waitForListening(child);
  t.equal(requests, 1, 'start-up downloaded the list');
  let reloads = 0;
  child.stderr!.on('data', (d: Buffer) => { reloads += d.toString().split('"msg":"reloaded"').length - 1; });

  child.kill('SIGHUP');
  await new Promise((r) => setTimeout(r, 400));
  t.equal(requests, 2, 'the first reload is downloading');
  child.kill('SIGHUP');
  await new Promise((r) => setTimeout(r, 100));
  child.kill('SIGHUP');
  const deadline = Date.now() + 10_000;
  while (reloads < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 300)); // room for a wrongly started third reload to show up
  t.equal(reloads, 2, 'two reloads: the running one and one queued for the two SIGHUPs during it');
  t.equal(requests, 3, 'the queued reload downloaded again; no third reload');
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  t.equal(await exited, 0);
});
