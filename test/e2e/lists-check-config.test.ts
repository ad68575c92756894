// `appfence lists check --config FILE`: every source of a config, the URL ones downloaded from a
// list host on loopback, each parsed with its list's match; exit 1 on rejected lines, 2 when a source cannot be read.
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startListServer } from '../helpers/list-server.js';

const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'appfence-lists-check-'));
/** Asynchronous: the list host runs in this process and must keep answering while the CLI runs. */
const run = (...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> => new Promise((resolve) => {
  execFile(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 30_000 }, (err, stdout, stderr) =>
    resolve({ status: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr }));
});

t.test('lists check --config reads files and URLs of every list', async (t) => {
  const host = await startListServer('127.0.0.73', 'tiktok.com\nnot a rule\n');
  t.teardown(() => host.stop());
  writeFileSync(join(dir, 'local.txt'), 'tiktokv.com\n0.0.0.0 a.example\n');
  const file = join(dir, 'c.yaml');
  writeFileSync(file, `dns: { upstreams: ["127.0.0.1:53"] }
lists:
  local: { sources: [local.txt], match: subtree }
  remote: { sources: ["${host.url}/tiktok.txt"] }
`);
  const r = await run('lists', 'check', '--config', file);
  t.equal(r.status, 1, r.stderr);
  t.match(r.stdout, `lists.local: ${join(dir, 'local.txt')}: 2 rules, 0 rejected`);
  t.match(r.stdout, `lists.remote: ${host.url}/tiktok.txt: 1 rules, 1 rejected`);
  t.match(r.stdout, `${host.url}/tiktok.txt:2: `);
  t.equal(host.requests.length, 1, 'the URL was downloaded');

  await host.stop();
  const down = await run('lists', 'check', '--config', file);
  t.equal(down.status, 2, 'an unreachable source: exit 2');
  t.match(down.stdout, /lists\.remote: http:\/\/127\.0\.0\.73:\d+\/tiktok\.txt: cannot be read: .*ECONNREFUSED/);
  t.match(down.stdout, /lists\.local: .*: 2 rules, 0 rejected/, 'the other sources are still reported');
});
