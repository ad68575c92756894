// `appfence check` with a URL list, as `serve` reads it: downloaded when the host answers, else the last
// good copy in stateDir (a warning on stderr), and with neither an error naming the source (exit 2)
// rather than an answer that ignores the list. check itself never writes stateDir.
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startListServer } from '../helpers/list-server.js';
import { startServer } from '../helpers/start-server.js';

const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
/** Asynchronous: the list host runs in this process and must keep answering while the CLI runs. */
const run = (...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> => new Promise((resolve) => {
  execFile(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 30_000 }, (err, stdout, stderr) =>
    resolve({ status: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr }));
});

const yaml = (url: string, stateDir: string): string => `
dns: { listen: ["127.0.0.1:0"], upstreams: ["127.0.0.1:9"] }
access: { allow: ["127.0.10.0/24"] }
lists: { remote: { sources: ["${url}/tiktok.txt"] } }
stateDir: ${stateDir}
groups: { city: { subnets: ["127.0.10.0/24"], block: [remote] } }
log: { level: warn }
`;

t.test('check uses the stateDir copy of a URL list whose host is down, with a warning', async (t) => {
  const host = await startListServer('127.0.0.74', 'tiktok.com\n');
  t.teardown(() => host.stop());
  const dir = mkdtempSync(join(tmpdir(), 'appfence-check-url-'));
  const stateDir = join(dir, 'state');
  const file = join(dir, 'c.yaml');
  writeFileSync(file, yaml(host.url, stateDir));
  const check = () => run('check', '--config', file, '--client', '127.0.10.5', 'www.tiktok.com');

  const up = await check();
  t.equal(up.status, 1, up.stderr);
  t.match(up.stdout, /www\.tiktok\.com\s+BLOCK\s+group=city\s+via=subnet\s+rule=tiktok\.com list=remote/);
  t.equal(up.stderr, '', 'no warning while the host answers');
  t.equal(host.requests.length, 1);

  await host.stop();
  const none = await check();
  t.equal(none.status, 2, 'host down and no copy: an error, not an ALLOW that ignores the list');
  t.match(none.stderr, /http:\/\/127\.0\.0\.74:\d+\/tiktok\.txt: .*ECONNREFUSED.*holds no good copy: cannot check against lists\.remote/);
  t.equal(none.stdout, '');

  // serve keeps the last good copy in stateDir; check only reads it
  await host.start();
  const serving = await startServer(yaml(host.url, stateDir), {});
  await serving.close();
  const kept = readdirSync(join(stateDir, 'lists')).sort();
  await host.stop();
  const fromCopy = await check();
  t.equal(fromCopy.status, 1, fromCopy.stderr);
  t.match(fromCopy.stdout, /www\.tiktok\.com\s+BLOCK\s+group=city\s+via=subnet\s+rule=tiktok\.com list=remote/, 'decided with the copy');
  const warning = fromCopy.stderr.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)
    .find((l) => l['msg'] === 'list download failed; serving the last good copy');
  t.match(warning, { level: 'warn', served: 'last good copy from stateDir', error: /ECONNREFUSED/, source: `${host.url}/tiktok.txt` },
    'a warning on stderr says the copy was used and why');
  t.same(readdirSync(join(stateDir, 'lists')).sort(), kept, 'check wrote nothing to stateDir');
});
