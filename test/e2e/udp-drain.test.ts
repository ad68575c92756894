// `appfence serve` on each UDP socket path (dns.udpBatch auto = batched, off = node:dgram): the
// start-up line names the path, and a query waiting on the upstream at SIGTERM is still answered
// before the process exits 0 (the socket stays open for sending while nothing more is read).
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import dgram from 'node:dgram';
import { startFakeUpstream } from '../helpers/fake-upstream.js';
import { query } from '../helpers/dns-client.js';

const cli = join(fileURLToPath(new URL('../..', import.meta.url)), 'dist/cli.js');
const dir = mkdtempSync(join(tmpdir(), 'appfence-drain-'));
const up = await startFakeUpstream({ zone: { 'example.org A': { answers: [{ type: 'A', ttl: 300, data: '192.0.2.10' }] } } });
t.teardown(() => up.close());

async function freePort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

for (const [udpBatch, path] of [['auto', 'batch'], ['off', 'dgram']] as const) {
  t.test(`udpBatch ${udpBatch}: SIGTERM answers the query in flight, then exits 0`, async (t) => {
    const port = await freePort();
    const file = join(dir, `${udpBatch}.yaml`);
    writeFileSync(file, `dns: { listen: ["127.0.0.1:${port}"], upstreams: ["127.0.0.1:${up.port}"], udpBatch: ${udpBatch} }\nlog: { level: info }\n`);
    const child = spawn(process.execPath, [cli, 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
    let log = '';
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        log += d.toString();
        if (log.includes('appfence started')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${log}`)));
    });
    const line = log.split('\n').filter((l) => l.includes('"dns udp:')).map((l) => JSON.parse(l) as Record<string, unknown>);
    t.match(line, [{ path, udpBatch }], 'one start-up line names the UDP path');
    up.opts.delayMs = 800;
    t.teardown(() => { up.opts.delayMs = 0; });
    const answer = query({ server: { host: '127.0.0.1', port }, name: 'example.org', type: 'A', proto: 'udp', localAddress: '127.0.0.1', timeoutMs: 5000 });
    await new Promise((r) => setTimeout(r, 300));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    t.same((await answer).answers.map((a) => a.data), ['192.0.2.10'], 'the query in flight at SIGTERM was answered');
    t.equal(await exited, 0, 'then exit 0');
  });
}
