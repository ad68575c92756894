// SPEC "Docker": at start-up appfence warns when all recent clients share one address that is a
// container gateway. Loopback stands in for the bridge gateway here (RuntimeOptions.gateways).
import t, { type Test } from 'tap';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import { Runtime } from '../../src/runtime/runtime.js';
import { BlockLog } from '../../src/log/block-log.js';
import { createAppLogger } from '../../src/log/logger.js';
import { startFakeUpstream } from '../helpers/fake-upstream.js';
import { query } from '../helpers/dns-client.js';

const GATEWAY = '127.0.0.1';

async function start(t: Test) {
  const up = await startFakeUpstream({ zone: { 'example.org A': { answers: [{ type: 'A', ttl: 300, data: '192.0.2.10' }] } } });
  const dir = mkdtempSync(join(tmpdir(), 'appfence-gw-'));
  writeFileSync(join(dir, 'tiktok.txt'), 'tiktok.com\n');
  const config = parseConfig(`
dns: { listen: ["127.0.0.1:0"], upstreams: ["127.0.0.1:${up.port}"] }
access: { allow: ["127.0.0.0/8"] }
lists: { tiktok: { sources: ["tiktok.txt"] } }
groups: { city: { subnets: ["127.0.10.0/24"], block: [tiktok] } }
`, join(dir, 'appfence.yaml'), {});
  const appLog = join(dir, 'app.log');
  const runtime = await Runtime.start(config, createAppLogger('warn', appLog), {
    blockLog: new BlockLog({ destination: join(dir, 'blocks.log'), sync: true }),
    gateways: [GATEWAY],
  });
  t.teardown(async () => {
    await runtime.stop(0);
    await up.close();
  });
  const server = { host: '127.0.0.1', port: runtime.ports.udp[0]! };
  const warnings = () => readFileSync(appLog, 'utf8').split('\n').filter((l) => l.includes('container gateway'));
  return { server, warnings };
}

t.test('every query from one gateway address: one warning naming it', async (t) => {
  const { server, warnings } = await start(t);
  for (let i = 0; i < 60; i++) await query({ server, name: i % 2 ? 'example.org' : 'www.tiktok.com', type: 'A', proto: 'udp', localAddress: GATEWAY });
  const lines = warnings();
  t.equal(lines.length, 1, 'warned once');
  const line = JSON.parse(lines[0]!) as Record<string, unknown>;
  t.match(line, { level: 'warn', address: GATEWAY, requests: 50 });
  t.match(line.msg, /subnet identity cannot work; run with host networking/);
});

t.test('clients from several addresses: no warning', async (t) => {
  const { server, warnings } = await start(t);
  for (let i = 0; i < 60; i++) {
    await query({ server, name: 'example.org', type: 'A', proto: 'udp', localAddress: i % 3 === 0 ? '127.0.10.5' : GATEWAY });
  }
  t.same(warnings(), []);
});
