// The built CLI for the core's fixes, as a user runs it: `check --cert` from outside access.allow
// agrees with the server, and SIGHUPs during a slow reload are queued, not dropped. Its own file
// (not cli.test.ts) so each file's CLI spawns stay within the per-file timeout on a loaded machine.
import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import dgram from 'node:dgram';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { createTestPki, cityDevices } from '../helpers/certs.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cli = join(root, 'dist/cli.js');
const dir = mkdtempSync(join(tmpdir(), 'appfence-e2e-core-'));

const run = (args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 30_000 });

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

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

let up: FakeUpstream;
t.before(async () => {
  up = await startFakeUpstream({ zone: {} });
});
t.teardown(() => up?.close());

t.test('check --cert from an address outside access.allow agrees with the server: a valid device certificate passes', async (t) => {
  const pki = await createTestPki();
  t.teardown(() => rm(pki.dir, { recursive: true, force: true }));
  const { laptop, forged } = await cityDevices(pki);
  const expired = await pki.device({ cn: 'laptop-044', ou: 'City Devices', days: -1 });
  const file = join(dir, 'roaming.yaml');
  writeFileSync(join(dir, 'tiktok.txt'), 'tiktok.com\n');
  writeFileSync(file, `dns: { upstreams: ["127.0.0.1:53"] }
clientCerts: { ca: ${pki.ca.cert} }
access: { allow: ["10.0.0.0/8"] }
lists: { tiktok: { sources: ["${join(dir, 'tiktok.txt')}"] } }
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
    setTimeout(() => res.end('tiktok.com\n'), requests === 2 ? 3000 : 0);
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
  const started = Date.now() + 10_000;
  while (requests < 2 && Date.now() < started) await new Promise((r) => setTimeout(r, 20));
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
