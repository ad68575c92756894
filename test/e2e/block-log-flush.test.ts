// `appfence serve` with the block log in a file as deployed (asynchronous, batched writes): a burst
// of blocked queries, SIGTERM the moment the last answer arrives, exit 0 — and one line in the file
// for every blocked answer the client received, none torn.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import dgram from 'node:dgram';
import { startFakeUpstream } from '../helpers/fake-upstream.js';
import { buildQuery } from '../helpers/dns-client.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'appfence-flush-'));

function started(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('appfence started')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
  });
}

t.test('SIGTERM right after a burst of blocked queries: exit 0 with every answered block in the log', async (t) => {
  const up = await startFakeUpstream();
  t.teardown(() => up.close());
  const probe = dgram.createSocket('udp4');
  await new Promise<void>((r) => probe.bind(0, '127.0.0.1', () => r()));
  const port = probe.address().port;
  probe.close();
  const blocks = join(dir, 'blocks.log');
  const config = join(dir, 'appfence.yaml');
  writeFileSync(config, `dns:
  listen: ["127.0.0.1:${port}"]
  upstreams: ["127.0.0.1:${up.port}"]
access: { allow: ["127.0.0.0/8"] }
lists: { tiktok: { sources: ["${join(root, 'blocklists/tiktok.txt')}"] } }
groups: { city: { subnets: ["127.0.10.0/24"], block: [tiktok] } }
log: { level: info, blocks: "${blocks}" }
`);
  const child = spawn(process.execPath, [join(root, 'dist/cli.js'), 'serve', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  await started(child);

  const client = dgram.createSocket('udp4');
  await new Promise<void>((r) => client.bind(0, '127.0.10.5', () => r()));
  const total = 3000;
  const answered = new Set<number>();
  client.on('message', (m) => answered.add(m.readUInt16BE(0)));
  // bursts of 200, each sent once the previous one is answered (or after 1 s): bounded in count and time
  for (let id = 0; id < total; id += 200) {
    for (let i = id; i < id + 200; i++) client.send(buildQuery({ id: i, name: `v${i}.tiktokv.com`, type: 'A' }), port, '127.0.0.1');
    for (let w = 0; w < 100 && answered.size < Math.min(total, id + 200) * 0.95; w++) await new Promise((r) => setTimeout(r, 10));
  }
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM exits 0');
  client.close();
  t.ok(answered.size > total * 0.9, `${answered.size} of ${total} answered`);
  const lines = readFileSync(blocks, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  const logged = new Set(lines.filter((l) => l['event'] === 'block').map((l) => Number(/^v(\d+)\./.exec(String(l['name']))?.[1])));
  const missing = [...answered].filter((id) => !logged.has(id));
  t.same(missing, [], 'every answered blocked query has its line');
  t.notOk(lines.some((l) => l['event'] === 'suppressed'), 'nothing suppressed at this rate');
});
