import t from 'tap';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { ListSourceError } from '../../src/errors.js';
import { parseListText, type DomainRule } from '../../src/lists/parse-line.js';
import { listFromTexts, loadLists, ruleName } from '../../src/lists/load-lists.js';
import { readSource } from '../../src/lists/source.js';

const fixtures = fileURLToPath(new URL('../fixtures/lists/', import.meta.url));
const rule = (name: string, kind: DomainRule['kind'], line = 1, exception = false): DomainRule => ({ name, kind, exception, line });

t.test('each format, one line at a time', async (t) => {
  const cases: [string, DomainRule[], string[]][] = [
    // [line, rules, ip rules]
    ['tiktok.com', [rule('tiktok.com', 'subtree')], []],
    ['TikTok.COM.', [rule('tiktok.com', 'subtree')], []],
    ['bücher.example', [rule('xn--bcher-kva.example', 'subtree')], []],
    ['*.tiktok.com', [rule('tiktok.com', 'below')], []],
    ['||tiktok.com^', [rule('tiktok.com', 'subtree')], []],
    ['||tiktok.com', [rule('tiktok.com', 'subtree')], []],
    ['||tiktok.com^$important', [rule('tiktok.com', 'subtree')], []],
    ['||*.tiktok.com^', [rule('tiktok.com', 'below')], []],
    ['@@||ok.tiktok.com^', [rule('ok.tiktok.com', 'subtree', 1, true)], []],
    ['@@ok.tiktok.com', [rule('ok.tiktok.com', 'subtree', 1, true)], []],
    ['0.0.0.0 a.example b.example\tc.example', [rule('a.example', 'exact'), rule('b.example', 'exact'), rule('c.example', 'exact')], []],
    ['127.0.0.1 x.example # trailing comment', [rule('x.example', 'exact')], []],
    ['::1 v6.example', [rule('v6.example', 'exact')], []],
    [':: v6b.example', [rule('v6b.example', 'exact')], []],
    ['127.0.0.1 localhost localhost.localdomain local broadcasthost', [], []],
    ['::1 ip6-localhost ip6-loopback', [], []],
    ['0.0.0.0 0.0.0.0', [], []],
    ['tiktok.com # why it is here', [rule('tiktok.com', 'subtree')], []],
    ['  tiktok.com  ', [rule('tiktok.com', 'subtree')], []],
    ['_dmarc.example.org', [rule('_dmarc.example.org', 'subtree')], []],
    ['1password.com', [rule('1password.com', 'subtree')], []],
    ['-container.example', [rule('-container.example', 'subtree')], []],
    ['192.0.2.1', [], ['192.0.2.1/32']],
    ['198.51.100.0/24', [], ['198.51.100.0/24']],
    ['2001:db8::1', [], ['2001:db8::1/128']],
    ['2001:db8::/32', [], ['2001:db8::/32']],
    ['# comment', [], []],
    ['! adblock comment', [], []],
    ['[Adblock Plus 2.0]', [], []],
    ['', [], []],
    ['   \t', [], []],
  ];
  for (const [text, rules, ips] of cases) {
    const got = parseListText(text, 'case', 'auto');
    t.same(got.rules, rules, `rules of ${JSON.stringify(text)}`);
    t.same(got.ipRules.map((r) => r.cidr), ips, `ip rules of ${JSON.stringify(text)}`);
    t.same(got.rejects, [], `no rejects for ${JSON.stringify(text)}`);
  }
});

t.test('rejected lines keep their text, line number and a reason', async (t) => {
  const cases: [string, RegExp][] = [
    ['example.com##.banner', /cosmetic/],
    ['example.com#@#.banner', /cosmetic/],
    ['/ads[0-9]+\\.example/', /regular expression/],
    ['||example.com/ads/*', /path/],
    ['example.com/ads', /path/],
    ['||example.com^$third-party', /modifier \$third-party/],
    ['||example.com^$important,client=10.0.0.1', /modifier \$client/],
    ['example.com$important', /modifier/],
    ['example.com^', /without \|\|/],
    ['|https://example.com', /anchored/],
    ['http://example.com/x', /URL/],
    ['https://example.com', /URL/],
    ['ad*.example.com', /wildcard/],
    ['*example.com', /wildcard/],
    ['exa mple.com', /hosts lines start with an IP/],
    ['0.0.0.0 ok.example bad..example', /invalid domain name/],
    ['a..b', /invalid domain name/],
    ['.', /invalid domain name/],
    ['..', /invalid domain name/],
    [`${'a'.repeat(64)}.example`, /invalid domain name/],
    [`${'abcdefghi.'.repeat(26)}com`, /invalid domain name/],
    ['10.0.0.0/33', /CIDR/],
    ['10.0.0.0/x', /CIDR/],
    ['exam!ple.com', /invalid domain name/],
    ['@@0.0.0.0 x.example', /hosts lines start with an IP/],
    ['foo#bar', /not a domain name/],
  ];
  for (const [text, reason] of cases) {
    const got = parseListText(`# header\n\n${text}\n`, 'list.txt', 'auto');
    t.equal(got.rejects.length, 1, `one reject for ${JSON.stringify(text)}`);
    const reject = got.rejects[0];
    t.match(reject, { source: 'list.txt', line: 3, text: text.trim(), reason }, JSON.stringify(text));
  }
  // The good name on a hosts line with a bad one still loads.
  t.same(parseListText('0.0.0.0 ok.example bad..example', 's', 'auto').rules, [rule('ok.example', 'exact')]);
});

t.test('line numbers across comments, blank lines, CRLF and a BOM', async (t) => {
  const text = '\ufeff# list\r\n\r\ntiktok.com\r\n! note\r\nbad name here\r\n0.0.0.0 x.example\r\n||y.example^';
  const got = parseListText(text, 'crlf.txt', 'auto');
  t.same(got.rules, [rule('tiktok.com', 'subtree', 3), rule('x.example', 'exact', 6), rule('y.example', 'subtree', 7)]);
  t.same(got.rejects.map((r) => [r.line, r.text]), [[5, 'bad name here']]);
  t.same(parseListText('\ufefftiktok.com', 's', 'auto').rules, [rule('tiktok.com', 'subtree')], 'BOM before the first rule');
});

t.test("match: 'subtree' turns every rule into a subtree rule", async (t) => {
  const got = parseListText('0.0.0.0 a.example\n*.b.example\n||*.c.example^\nd.example', 's', 'subtree');
  t.same(got.rules.map((r) => r.kind), ['subtree', 'subtree', 'subtree', 'subtree']);
});

t.test('compact storage holds the same rules as parseListText', async (t) => {
  const text = 'Tiktok.com\n0.0.0.0 a.example b.example\n*.c.example\n@@||ok.tiktok.com^\nbad..name\n10.0.0.0/8\nbücher.example';
  const objects = parseListText(text, 'mem', 'auto');
  const list = listFromTexts('mixed', [{ source: 'mem', text }]);
  t.equal(list.ruleCount, objects.rules.length);
  t.same(Array.from({ length: list.ruleCount }, (_, i) => ruleName(list.rules, i)), objects.rules.map((r) => r.name));
  t.same(Array.from(list.rules.lines), objects.rules.map((r) => r.line));
  t.same(list.rejects, objects.rejects);
  t.equal(list.rejectCount, 1);
  t.same(list.ipRules, [{ cidr: '10.0.0.0/8', line: 6, source: 'mem' }]);
});

t.test('compact storage grows past its first buffers', async (t) => {
  const names = Array.from({ length: 5000 }, (_, i) => `host-${i}.some-longer-label.example`);
  const list = listFromTexts('big', [{ source: 'big', text: names.join('\n') }]);
  t.equal(list.ruleCount, 5000);
  t.equal(ruleName(list.rules, 0), names[0]);
  t.equal(ruleName(list.rules, 4999), names[4999]);
  t.equal(list.rules.lines[4999], 5000);
});

t.test('a flood of bad lines is counted, not all kept', async (t) => {
  const list = listFromTexts('junk', [{ source: 'junk', text: 'x y z\n'.repeat(5000) }]);
  t.equal(list.rejectCount, 5000);
  t.equal(list.rejects.length, 1000);
});

t.test('loadLists reads files, one list from several sources', async (t) => {
  const [list, other] = await loadLists([
    { name: 'mixed', sources: [`${fixtures}plain.txt`, `${fixtures}hosts-crlf.txt`], match: 'auto', refreshMs: 86_400_000 },
    { name: 'ads', sources: [`${fixtures}adblock.txt`], match: 'auto', refreshMs: 86_400_000 },
  ]);
  t.equal(list?.name, 'mixed');
  t.equal(list?.ruleCount, 3);
  t.same(list?.rejects.map((r) => [r.source.endsWith('hosts-crlf.txt'), r.line, r.text]), [[true, 4, '0.0.0.0 bad_name!.example']]);
  t.same(Array.from(list?.rules.sourceIndex ?? []), [0, 0, 1]);
  t.equal(other?.ruleCount, 2);
  t.same(other?.rejects.map((r) => [r.line, r.reason.split(' ')[0]]), [[5, 'cosmetic']]);
  await t.rejects(loadLists([{ name: 'x', sources: [`${fixtures}missing.txt`], match: 'auto', refreshMs: 86_400_000 }]),
    { name: 'ListSourceError', code: 'AF_ERR_LIST_SOURCE', message: /missing\.txt: file not found/ });
  await t.rejects(readSource(fixtures), ListSourceError, 'a directory is not a list');
});

t.test('URL sources against a local server', async (t) => {
  let status = 200;
  let body = 'tiktok.com\n';
  let hang = false;
  const server: Server = createServer((req, res) => {
    if (hang) return; // never answers: the client's timeout must fire
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => { server.closeAllConnections(); server.close(); });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const warnings: string[] = [];
  const onWarning = (msg: string): void => { warnings.push(msg); };

  t.equal(await readSource(`${base}/a.txt`, { onWarning }), 'tiktok.com\n');
  status = 404;
  t.equal(await readSource(`${base}/a.txt`, { onWarning }), 'tiktok.com\n', '404 → last good copy');
  t.match(warnings, [/a\.txt: download failed \(HTTP 404\); using the last good copy/]);
  await t.rejects(readSource(`${base}/never-fetched.txt`), { code: 'AF_ERR_LIST_SOURCE', message: /HTTP 404/ }, '404 without a copy');

  hang = true;
  await t.rejects(readSource(`${base}/slow.txt`, { timeoutMs: 200 }), { message: /timed out after 200 ms/ });
  t.equal(await readSource(`${base}/a.txt`, { timeoutMs: 200, onWarning }), 'tiktok.com\n', 'timeout → last good copy');
  t.match(warnings[1], /timed out/);

  hang = false;
  status = 200;
  body = 'x'.repeat(5000);
  await t.rejects(readSource(`${base}/big.txt`, { maxBytes: 1000 }), { message: /larger than 1000 bytes/ });
  body = '||new.example^\n';
  t.equal(await readSource(`${base}/a.txt`), body, 'a good download replaces the copy');

  const [list] = await loadLists([{ name: 'remote', sources: [`${base}/list.txt`], match: 'auto', refreshMs: 86_400_000 }]);
  t.equal(list?.ruleCount, 1);
  t.equal(list?.sources[0], `${base}/list.txt`);
  await t.rejects(readSource('ftp://127.0.0.1/list.txt'), { message: /only http and https/ });
  await t.rejects(readSource('http://127.0.0.1:1/list.txt'), ListSourceError, 'connection refused');
});
