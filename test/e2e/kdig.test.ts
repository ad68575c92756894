// DoT and DoH end to end with a real third-party client: the built CLI serves, kdig (knot-dnsutils)
// asks over +tls and +https (POST and GET), with and without the city laptop's device certificate,
// from an unmanaged source address.
import t from 'tap';
import { spawn, spawnSync, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { createTestPki, type TestPki, type Issued } from '../helpers/certs.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const hasKdig = spawnSync('sh', ['-c', 'command -v kdig']).status === 0;
const HOTEL = '127.0.20.5';

const freePort = (): Promise<number> => new Promise((resolve) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => {
    const { port } = s.address() as net.AddressInfo;
    s.close(() => resolve(port));
  });
});

function kdig(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('kdig', args, { timeout: 15_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
  });
}

let pki: TestPki;
let up: FakeUpstream;
let laptop: Issued;
let child: ChildProcess;
let dotPort: number;
let dohPort: number;
let blocks: string;
let configFile: string;

t.before(async () => {
  pki = await createTestPki();
  laptop = await pki.device({ cn: 'laptop-042', ou: 'City Devices' });
  up = await startFakeUpstream({ zone: { 'www.tiktok.com A': { answers: [{ type: 'A', ttl: 300, data: '198.51.100.7' }] } } });
  const dir = mkdtempSync(join(tmpdir(), 'appfence-kdig-'));
  [dotPort, dohPort] = [await freePort(), await freePort()];
  blocks = join(dir, 'blocks.log');
  const config = join(dir, 'appfence.yaml');
  configFile = config;
  writeFileSync(config, `dns:
  listen: ["127.0.0.1:${await freePort()}"]
  tls: { listen: ["127.0.0.1:${dotPort}"], cert: ${pki.server.cert}, key: ${pki.server.key} }
  https: { listen: ["127.0.0.1:${dohPort}"], cert: ${pki.server.cert}, key: ${pki.server.key} }
  upstreams: ["127.0.0.1:${up.port}"]
clientCerts: { ca: ${pki.ca.cert} }
access: { allow: ["127.0.0.0/8"] }
lists: { tiktok: { sources: ["${join(root, 'blocklists/tiktok.txt')}"] } }
groups:
  city: { subnets: ["127.0.10.0/24"], certificates: { subject: { OU: "City Devices" } }, block: [tiktok] }
log: { level: info, blocks: "${blocks}" }
`);
  child = spawn(process.execPath, [join(root, 'dist/cli.js'), 'serve', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (d: Buffer) => { err += d.toString(); if (err.includes('appfence started')) resolve(); });
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
  });
});
t.teardown(async () => {
  child?.kill('SIGKILL');
  await up?.close();
  if (pki) await rm(pki.dir, { recursive: true, force: true });
});

const tlsArgs = (withCert: boolean): string[] => [
  `+tls-ca=${pki.serverCa.cert}`, '+tls-hostname=localhost',
  ...(withCert ? [`+tls-certfile=${laptop.cert}`, `+tls-keyfile=${laptop.key}`] : []),
];

t.test('kdig +tls: the device certificate decides, wherever the laptop is', { skip: hasKdig ? false : 'kdig not installed' }, async (t) => {
  const withCert = await kdig(['@127.0.0.1', '-p', String(dotPort), '-b', HOTEL, '+tls', ...tlsArgs(true), '+short', 'www.tiktok.com', 'A']);
  t.equal(withCert.trim(), '0.0.0.0');
  const without = await kdig(['@127.0.0.1', '-p', String(dotPort), '-b', HOTEL, '+tls', ...tlsArgs(false), '+short', 'www.tiktok.com', 'A']);
  t.equal(without.trim(), '198.51.100.7');
});

t.test('kdig +https (POST and GET): same decision over DoH', { skip: hasKdig ? false : 'kdig not installed' }, async (t) => {
  const post = await kdig(['@127.0.0.1', '-p', String(dohPort), '-b', HOTEL, '+https', ...tlsArgs(true), '+short', 'www.tiktok.com', 'A']);
  t.equal(post.trim(), '0.0.0.0', 'POST with device cert: sinkholed');
  const get = await kdig(['@127.0.0.1', '-p', String(dohPort), '-b', HOTEL, '+https', '+https-get', ...tlsArgs(true), '+short', 'www.tiktok.com', 'AAAA']);
  t.equal(get.trim(), '::', 'GET with device cert: sinkholed');
  const guest = await kdig(['@127.0.0.1', '-p', String(dohPort), '-b', HOTEL, '+https', ...tlsArgs(false), '+short', 'www.tiktok.com', 'A']);
  t.equal(guest.trim(), '198.51.100.7', 'no certificate: forwarded');

  await new Promise((r) => setTimeout(r, 100));
  const events = readFileSync(blocks, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const doh = events.filter((e) => e['proto'] === 'doh');
  t.equal(doh.length, 2);
  t.match(doh[0], { event: 'block', client: HOTEL, group: 'city', via: 'cert', device: 'laptop-042' });
});

t.test('appfence check --cert uses the same certificate judgement as the listeners', async (t) => {
  const check = (...args: string[]) => spawnSync(process.execPath, [join(root, 'dist/cli.js'), 'check', '--config', configFile, ...args],
    { encoding: 'utf8', timeout: 20_000 });
  const device = check('--client', HOTEL, '--cert', laptop.cert, 'www.tiktok.com');
  t.equal(device.status, 1, 'blocked → exit 1');
  t.match(device.stdout, /www\.tiktok\.com\s+BLOCK\s+group=city\s+via=cert\s+device=laptop-042\s+rule=tiktok\.com list=tiktok/);
  const forged = await pki.device({ cn: 'laptop-042', ou: 'City Devices', issuer: 'stranger' });
  const stranger = check('--client', HOTEL, '--cert', forged.cert, 'www.tiktok.com');
  t.equal(stranger.status, 0, 'not identified → default group → allowed');
  t.match(stranger.stdout, /certificate: not used \(not signed by clientCerts\.ca\)/);
  t.match(stranger.stdout, /ALLOW\s+group=default\s+via=default/);
  const expired = await pki.device({ cn: 'laptop-050', ou: 'City Devices', days: -1 });
  t.match(check('--client', HOTEL, '--cert', expired.cert, 'www.tiktok.com').stdout, /not used \(expired\)/);
});

t.test('tls:// and https:// upstreams: a second appfence forwards over DoT and DoH to the first', { skip: hasKdig ? false : 'kdig not installed' }, async (t) => {
  for (const [label, upstream] of [['DoT', `tls://127.0.0.1:${dotPort}`], ['DoH', `https://127.0.0.1:${dohPort}/dns-query`]] as const) {
    const dir = mkdtempSync(join(tmpdir(), 'appfence-chain-'));
    const port = await freePort();
    writeFileSync(join(dir, 'appfence.yaml'), `dns: { listen: ["127.0.0.1:${port}"], upstreams: ["${upstream}"], timeoutMs: 3000 }
access: { allow: ["127.0.0.0/8"] }
log: { level: info, blocks: "${join(dir, 'blocks.log')}" }
`);
    // the first appfence's certificate is issued by the test server CA: trusted here through Node's extra-CA hook
    const second = spawn(process.execPath, [join(root, 'dist/cli.js'), 'serve', '--config', join(dir, 'appfence.yaml')],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_EXTRA_CA_CERTS: pki.serverCa.cert } });
    t.teardown(() => second.kill('SIGKILL'));
    await new Promise<void>((resolve, reject) => {
      let err = '';
      second.stderr!.on('data', (d: Buffer) => { err += d.toString(); if (err.includes('appfence started')) resolve(); });
      second.once('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
    });
    const answer = await kdig(['@127.0.0.1', '-p', String(port), '+short', 'www.tiktok.com', 'A']);
    t.equal(answer.trim(), '198.51.100.7', `${label} upstream: answered through the first appfence`);
    second.kill('SIGTERM');
  }
});
