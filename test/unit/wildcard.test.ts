// `*` inside a label (||p16-tiktok*.ibyteimg.com^): parsing, matching through DomainIndex beside plain
// rules and exceptions, what is rejected, and explanations.
import t from 'tap';
import { parseListText } from '../../src/lists/parse-line.js';
import { listFromTexts } from '../../src/lists/load-lists.js';
import { DomainIndex } from '../../src/match/domain-index.js';
import { explainWildcard, globMatches } from '../../src/match/wildcard.js';

const index = (...lists: string[]) => DomainIndex.build(lists.map((text, i) => listFromTexts(`l${i}`, [{ source: `l${i}.txt`, text }])));

t.test('globMatches: * is any run of characters, case-insensitive, whole label', async (t) => {
  const yes: [string, string][] = [['p16-tiktok*', 'p16-tiktok-va'], ['p16-tiktok*', 'p16-tiktok'], ['tiktok-*lb*', 'tiktok-core-lb-maliva'],
    ['*-tiktok', 'abtest-sg-tiktok'], ['p*-tiktok-*-sign-*', 'p19-tiktok-dm-sticker-sign-useast2a'], ['a*b*c', 'aXXbYYc'], ['p16-tiktok*', 'P16-TikTok-VA']];
  const no: [string, string][] = [['p16-tiktok*', 'p16-capcut-sign-sg'], ['p16-tiktok*', 'xp16-tiktok'], ['*-tiktok', 'abtest-tiktok-x'],
    ['a*b*c', 'aXXbYY'], ['tiktok-*lb*', 'tiktok-core']];
  for (const [g, label] of yes) t.ok(globMatches(g, `x.${label}.y`, 2, 2 + label.length), `${g} ~ ${label}`);
  for (const [g, label] of no) t.notOk(globMatches(g, label, 0, label.length), `${g} !~ ${label}`);
});

t.test('parsing: adblock rules with * in the first label become wildcard rules; the rest is rejected with a reason', async (t) => {
  const p = parseListText('||p16-tiktok*.ibyteimg.com^\n||Tiktok-*LB*.byteoversea.net^$important\n||*.tiktok.com^\n', 'l.txt', 'auto');
  t.same(p.wildRules.map((w) => [w.glob, w.anchor, w.line]), [['p16-tiktok*', 'ibyteimg.com', 1], ['tiktok-*lb*', 'byteoversea.net', 2]]);
  t.same(p.rules.map((r) => [r.name, r.kind]), [['tiktok.com', 'below']], '||*.x^ stays a below-rule');
  for (const [line, reason] of [
    ['||p16.tik*tok.ibyteimg.com^', /first label only/], ['||ad*^', /literal zone/], ['@@||p16-tiktok*.ibyteimg.com^', /wildcard exception/],
    ['||*.*.example.com^', /wildcard|invalid/], ['||a b*.example.com^', /./], ['p16-tiktok*.ibyteimg.com', /only in adblock rules/],
  ] as const) {
    const r = parseListText(`${line}\n`, 'l.txt', 'auto');
    t.equal(r.rejects.length, 1, line);
    t.match(r.rejects[0]?.reason, reason, line);
  }
});

t.test('matching: the hosts, never the zone; most specific rule wins; exceptions still apply', async (t) => {
  const ix = index('||p16-tiktok*.ibyteimg.com^\n||tiktok-*lb*.byteoversea.net^\n@@||p16-tiktok-ok.ibyteimg.com^\n');
  const blocks = (name: string) => ix.match(name, 1) >= 0;
  for (const n of ['p16-tiktok-va.ibyteimg.com', 'p16-tiktok.ibyteimg.com', 'x.p16-tiktok-sg.ibyteimg.com', 'tiktok-core-lb-maliva.byteoversea.net']) {
    t.ok(blocks(n), `blocks ${n}`);
  }
  for (const n of ['ibyteimg.com', 'p16-capcut-sign-sg.ibyteimg.com', 'p16-tiktok-va.ibyteimg.com.evil.example', 'p16-tiktok-va.other.com',
    'byteoversea.net', 'log-tiktok.byteoversea.net', 'p16-tiktok-ok.ibyteimg.com']) {
    t.notOk(blocks(n), `does not block ${n}`);
  }
  const id = ix.match('p16-tiktok-va.ibyteimg.com', 1);
  t.match(ix.describe(id), { listName: 'l0', rule: '||p16-tiktok*.ibyteimg.com^', source: 'l0.txt', line: 1 });
  t.equal(ix.listOf(id), 0);
  t.equal(ix.ruleCount, 3);

  // A plain rule on the zone is less specific than the wildcard; a plain rule on the host is more.
  const two = index('ibyteimg.com\n', '||p16-tiktok*.ibyteimg.com^\n', 'p16-tiktok-va.ibyteimg.com\n');
  t.equal(two.describe(two.match('p16-tiktok-va.ibyteimg.com', 0b011)).listName, 'l1');
  t.equal(two.describe(two.match('p16-tiktok-va.ibyteimg.com', 0b111)).listName, 'l2');
  t.equal(two.match('p16-tiktok-va.ibyteimg.com', 0b100) >= 0, true);
  t.equal(two.match('p16-tiktok-va.ibyteimg.com', 0b001) >= 0, true, 'the zone rule alone still covers it');
  t.equal(two.match('p16-capcut.ibyteimg.com', 0b010), -1, 'a list mask without the zone rule leaves other hosts');
});

t.test('explanations say what the * covers', async (t) => {
  t.match(explainWildcard('p16-tiktok*', 'ibyteimg.com'), /names in ibyteimg\.com whose label left of it matches "p16-tiktok\*".*ibyteimg\.com itself .* not covered/);
});
