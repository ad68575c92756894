import t from 'tap';
import { listFromTexts, type LoadedList } from '../../src/lists/load-lists.js';
import { parseListText } from '../../src/lists/parse-line.js';
import { DomainIndex, MAX_LISTS } from '../../src/match/domain-index.js';
import { normalizeName } from '../../src/match/normalize.js';

const list = (name: string, text: string, match: 'auto' | 'subtree' = 'auto'): LoadedList =>
  listFromTexts(name, [{ source: `${name}.txt`, text }], match);
const ruleText = (index: DomainIndex, name: string, mask: number): string | null => {
  const id = index.match(name, mask);
  return id < 0 ? null : index.describe(id).rule;
};

t.test('normalizeName', async (t) => {
  const cases: [string, string | null][] = [
    ['tiktok.com', 'tiktok.com'],
    ['WWW.TikTok.Com', 'www.tiktok.com'],
    ['tiktok.com.', 'tiktok.com'],
    ['tiktok.com..', null],
    ['bücher.example', 'xn--bcher-kva.example'],
    ['BÜCHER.example.', 'xn--bcher-kva.example'],
    ['xn--bcher-kva.example', 'xn--bcher-kva.example'],
    ['_dmarc.example.org', '_dmarc.example.org'],
    ['com', 'com'],
    ['', null],
    ['.', null],
    ['a..b', null],
    ['.a', null],
    ['a b.example', null],
    ['a*.example', null],
    ['ex/ample.com', null],
    ['münchen example', null],
    [`${'a'.repeat(63)}.example`, `${'a'.repeat(63)}.example`],
    [`${'a'.repeat(64)}.example`, null],
    [`${'abcdefghi.'.repeat(25)}com`, `${'abcdefghi.'.repeat(25)}com`], // 253 characters
    [`${'abcdefghi.'.repeat(25)}comx`, null], // 254
    [`${'abcdefghi.'.repeat(25)}com.`, `${'abcdefghi.'.repeat(25)}com`], // trailing dot does not count
  ];
  for (const [input, expected] of cases) t.equal(normalizeName(input), expected, JSON.stringify(input));
  const already = 'www.example.org';
  t.equal(normalizeName(already), already, 'a normal name comes back as is');
});

t.test('subtree, exact and below rules', async (t) => {
  const index = DomainIndex.build([list('l', 'tiktok.com\n0.0.0.0 exact.example\n*.below.example\n||adblock.example^')]);
  const cases: [string, string | null][] = [
    ['tiktok.com', 'tiktok.com'],
    ['www.tiktok.com', 'tiktok.com'],
    ['a.b.c.tiktok.com', 'tiktok.com'],
    ['nottiktok.com', null],
    ['tiktok.com.evil.net', null],
    ['com', null],
    ['exact.example', '0.0.0.0 exact.example'],
    ['www.exact.example', null],
    ['below.example', null],
    ['x.below.example', '*.below.example'],
    ['y.x.below.example', '*.below.example'],
    ['adblock.example', '||adblock.example^'],
    ['ads.adblock.example', '||adblock.example^'],
    ['', null],
  ];
  for (const [name, rule] of cases) t.equal(ruleText(index, name, 1), rule, name);
});

t.test("a list with match: 'subtree'", async (t) => {
  const index = DomainIndex.build([list('l', '0.0.0.0 exact.example\n*.below.example', 'subtree')]);
  t.equal(ruleText(index, 'www.exact.example', 1), '0.0.0.0 exact.example');
  t.equal(ruleText(index, 'below.example', 1), '*.below.example');
});

t.test('the most specific rule wins', async (t) => {
  const index = DomainIndex.build([
    list('broad', 'example.org'),
    list('narrow', 'ads.example.org\n0.0.0.0 x.ads.example.org'),
  ]);
  t.equal(ruleText(index, 'x.ads.example.org', 0b11), '0.0.0.0 x.ads.example.org');
  t.equal(ruleText(index, 'y.ads.example.org', 0b11), 'ads.example.org');
  t.equal(ruleText(index, 'www.example.org', 0b11), 'example.org');
  t.equal(index.describe(index.match('y.ads.example.org', 0b11)).listName, 'narrow');
});

t.test('the list mask selects lists', async (t) => {
  const index = DomainIndex.build([list('a', 'shared.example\nonly-a.example'), list('b', 'shared.example\nonly-b.example')]);
  t.equal(index.match('only-a.example', 0b10), -1);
  t.equal(index.describe(index.match('only-b.example', 0b10)).listName, 'b');
  t.equal(index.describe(index.match('shared.example', 0b10)).listName, 'b', 'a name in two lists: the masked one');
  t.equal(index.describe(index.match('shared.example', 0b11)).listName, 'a', 'both: the first list');
  t.equal(index.match('shared.example', 0), -1);
  t.equal(index.match('shared.example', 0b100), -1, 'a bit without a list');
});

t.test('exceptions stay inside their list', async (t) => {
  const index = DomainIndex.build([
    list('block', 'tiktok.com\n@@||ok.tiktok.com^\nexample.org\n@@||example.org^\nads.example.net\n@@*.ads.example.net'),
    list('other', 'ok.tiktok.com\nexample.net'),
  ]);
  t.equal(index.match('ok.tiktok.com', 0b01), -1, 'exception covers the name');
  t.equal(index.match('x.ok.tiktok.com', 0b01), -1, 'and below it');
  t.equal(ruleText(index, 'www.tiktok.com', 0b01), 'tiktok.com');
  t.equal(index.match('www.example.org', 0b01), -1, 'an exception as broad as the block rule wins');
  t.equal(ruleText(index, 'ads.example.net', 0b01), 'ads.example.net', '@@*.x leaves x itself blocked');
  t.equal(index.match('a.ads.example.net', 0b01), -1);
  t.equal(ruleText(index, 'ok.tiktok.com', 0b11), 'ok.tiktok.com', "another list's block still applies");
  t.equal(index.describe(index.match('ok.tiktok.com', 0b11)).listName, 'other');
  t.equal(ruleText(index, 'a.ads.example.net', 0b11), 'example.net', 'falls back to a less specific rule of another list');
  t.equal(ruleText(index, 'a.ok.tiktok.com', 0b11), 'ok.tiktok.com');
});

t.test('an exception less specific than a block cancels it', async (t) => {
  const index = DomainIndex.build([list('l', 'deep.allowed.example\n@@||allowed.example^')]);
  t.equal(index.match('x.deep.allowed.example', 1), -1);
});

t.test('describe, counts and limits', async (t) => {
  const index = DomainIndex.build([
    list('first', '# header\ntiktok.com\n\n*.tiktokcdn.com'),
    listFromTexts('second', [{ source: 's1', text: '||a.example^' }, { source: 's2', text: '! c\n0.0.0.0 b.example\n@@||ok.a.example^' }]),
  ]);
  t.equal(index.ruleCount, 5);
  t.equal(index.listRuleCount(0), 2);
  t.equal(index.listRuleCount(1), 3);
  t.equal(index.listRuleCount(7), 0);
  t.same(index.describe(index.match('www.tiktok.com', 3)), { list: 0, listName: 'first', rule: 'tiktok.com', source: 'first.txt', line: 2 });
  t.same(index.describe(index.match('v.tiktokcdn.com', 3)), { list: 0, listName: 'first', rule: '*.tiktokcdn.com', source: 'first.txt', line: 4 });
  t.same(index.describe(index.match('b.example', 3)), { list: 1, listName: 'second', rule: '0.0.0.0 b.example', source: 's2', line: 2 });
  t.same(index.describe(4), { list: 1, listName: 'second', rule: '@@||ok.a.example^', source: 's2', line: 3 });
  t.throws(() => index.describe(5), RangeError);
  t.throws(() => index.describe(-1), RangeError);

  const empty = DomainIndex.build([]);
  t.equal(empty.match('tiktok.com', -1), -1);
  t.equal(empty.ruleCount, 0);
  const lists = Array.from({ length: MAX_LISTS }, (_, i) => list(`l${i}`, `n${i}.example`));
  const full = DomainIndex.build(lists);
  t.equal(full.describe(full.match('n30.example', 1 << 30)).listName, 'l30', 'bit 30 works');
  t.throws(() => DomainIndex.build([...lists, list('one-too-many', 'x.example')]), { code: 'AF_ERR_CONFIG_INVALID' });
});

t.test('agrees with a naive matcher on random lists and names', async (t) => {
  let seed = 12345;
  const rand = (n: number): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return (seed >>> 8) % n; };
  const labels = ['a', 'b', 'c', 'ab', 'tiktok', 'com', 'x-y'];
  const randomName = (): string => Array.from({ length: 1 + rand(4) }, () => labels[rand(labels.length)]).join('.');
  const prefixes = ['', '', '*.', '||', '@@||', '0.0.0.0 '];
  const texts = Array.from({ length: 4 }, () => Array.from({ length: 60 }, () => `${prefixes[rand(prefixes.length)]}${randomName()}`).join('\n'));
  const index = DomainIndex.build(texts.map((text, i) => list(`r${i}`, text)));
  const parsed = texts.map((text) => parseListText(text, 'r', 'auto').rules);
  const covers = (r: { name: string; kind: string }, name: string): boolean =>
    (r.kind !== 'below' && name === r.name) || (r.kind !== 'exact' && name.endsWith(`.${r.name}`));

  let checked = 0;
  for (let k = 0; k < 3000; k++) {
    const name = randomName();
    const mask = 1 + rand(15);
    // Naive: per unexcepted list in the mask, the covering block rule with the longest name.
    let best: { list: number; name: string } | null = null;
    parsed.forEach((rules, l) => {
      if ((mask & (1 << l)) === 0) return;
      if (rules.some((r) => r.exception && covers(r, name))) return;
      for (const r of rules) {
        if (!r.exception && covers(r, name) && (best === null || r.name.length > best.name.length)) best = { list: l, name: r.name };
      }
    });
    const id = index.match(name, mask);
    const expected = best as { list: number; name: string } | null;
    if (expected === null) {
      if (id !== -1) t.fail(`${name} mask ${mask}: expected no match, got ${index.describe(id).rule}`);
    } else {
      const got = id < 0 ? null : index.describe(id);
      const gotName = got?.rule.replace(/^(\|\||\*\.|0\.0\.0\.0 )/, '').replace(/\^$/, '').replace(/^\*\./, '');
      if (got === null || gotName !== expected.name || (mask & (1 << got.list)) === 0) {
        t.fail(`${name} mask ${mask}: expected a rule on ${expected.name}, got ${got?.rule ?? 'none'}`);
      }
    }
    checked++;
  }
  t.equal(checked, 3000);
});
