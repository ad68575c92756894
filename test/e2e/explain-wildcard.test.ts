// `appfence lists check` and `appfence check` on `*`-in-a-label rules and IP rules, through the built CLI:
// what a wildcard rule covers is said in words, and the list's own answer is the one check reports.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const cli = join(fileURLToPath(new URL('../..', import.meta.url)), 'dist/cli.js');
const dir = mkdtempSync(join(tmpdir(), 'appfence-wild-'));
const run = (args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60_000 });

writeFileSync(join(dir, 'shared.txt'), '# TikTok in shared zones\n||p16-tiktok*.ibyteimg.com^\ntiktok.com\n198.51.100.0/24\n||bad*.tik*tok.example^\n');
writeFileSync(join(dir, 'signals.txt'), 'use-application-dns.net\n');
writeFileSync(join(dir, 'appfence.yaml'), `dns: { upstreams: ["127.0.0.1:53"] }
lists:
  shared: { sources: [shared.txt] }
  signals: { sources: [signals.txt], answer: nxdomain }
groups: { city: { subnets: ["10.20.0.0/16"], block: [shared, signals] } }
`);

t.test('lists check: counts wildcard rules, explains each, rejects * beyond the first label', async (t) => {
  const r = run(['lists', 'check', join(dir, 'shared.txt')]);
  t.equal(r.status, 1, 'one line rejected');
  t.match(r.stdout, /shared\.txt: 2 rules \(1 with \* in a label\), 1 IP rules, 1 rejected/);
  t.match(r.stdout, /shared\.txt:2: \|\|p16-tiktok\*\.ibyteimg\.com\^ covers names in ibyteimg\.com whose label left of it matches "p16-tiktok\*"/);
  t.match(r.stdout, /shared\.txt:5: .*first label only/);
});

t.test('check: a host in the shared zone is blocked by the wildcard rule, explained; the zone is not', async (t) => {
  const config = join(dir, 'appfence.yaml');
  const r = run(['check', '--config', config, '--client', '10.20.1.2', 'p16-tiktok-va.ibyteimg.com', 'p16-capcut.ibyteimg.com',
    'use-application-dns.net']);
  t.equal(r.status, 1);
  const line = (name: string) => r.stdout.split('\n').find((l) => l.startsWith(`${name} `)) ?? '';
  t.match(line('p16-tiktok-va.ibyteimg.com'), /BLOCK .*rule=\|\|p16-tiktok\*\.ibyteimg\.com\^ list=shared \(.*shared\.txt:2\) \[covers names in ibyteimg\.com.*\] +answer=null/);
  t.match(line('p16-capcut.ibyteimg.com'), /ALLOW .*answer=forward/);
  t.match(line('use-application-dns.net'), /BLOCK .*list=signals .*answer=nxdomain/, 'the list\'s answer, not the group\'s');
});
