// The Policy without sockets: compile from config + lists, group indexes, blockingRuleId (allow
// beats block, masks per group), firstBlockedAlias, describe/explain agreeing with blockingRuleId.
import t from 'tap';
import { listFromTexts } from '../../src/lists/load-lists.js';
import { Policy, NO_RULE } from '../../src/policy/policy.js';
import type { GroupConfig } from '../../src/config/types.js';

const group = (name: string, block: string[], allow: string[] = [], mode: GroupConfig['mode'] = 'null'): GroupConfig =>
  ({ name, subnets: [], block, allow, mode });

const lists = [
  listFromTexts('tiktok', [{ source: 'tiktok.txt', text: 'tiktok.com\ntiktokcdn.com\n' }]),
  listFromTexts('exceptions', [{ source: 'allow.txt', text: 'allowed.tiktok.com\n' }]),
  listFromTexts('ads', [{ source: 'ads.txt', text: '||ads.example^\n' }]),
];
const policy = Policy.compile({
  groups: [group('city', ['tiktok'], ['exceptions']), group('city-nx', ['tiktok', 'ads'], [], 'nxdomain'), group('open', [])],
  default: group('default', ['ads']),
}, lists);

t.test('groups in config order, default last, each with its index', async (t) => {
  t.same(policy.groups.map((g) => [g.index, g.name]), [[0, 'city'], [1, 'city-nx'], [2, 'open'], [3, 'default']]);
  t.equal(policy.group('city-nx').answer, 'nxdomain');
  t.equal(policy.group('no-such-group'), policy.defaultGroup, 'unknown name: default');
  t.notOk('sinkhole' in policy.group('city'), 'no DNS bytes in the policy');
});

t.test('blockingRuleId: lists per group, subdomains, allow beats block', async (t) => {
  const city = policy.group('city');
  const id = policy.blockingRuleId(city, 'www.tiktok.com');
  t.ok(id >= 0, 'blocked');
  t.same(policy.describe(id), { rule: 'tiktok.com', list: 'tiktok', source: 'tiktok.txt', line: 1 });
  t.equal(policy.blockingRuleId(city, 'allowed.tiktok.com'), NO_RULE, 'allow list wins');
  t.equal(policy.blockingRuleId(city, 'ads.example'), NO_RULE, 'a list the group does not use');
  t.ok(policy.blockingRuleId(policy.group('city-nx'), 'allowed.tiktok.com') >= 0, 'without the allow list: blocked');
  t.ok(policy.blockingRuleId(policy.group('city-nx'), 'x.ads.example') >= 0);
  t.equal(policy.blockingRuleId(policy.group('open'), 'www.tiktok.com'), NO_RULE, 'a group that blocks nothing');
  t.equal(policy.blockingRuleId(policy.defaultGroup, 'www.tiktok.com'), NO_RULE);
  t.equal(policy.blockingRuleId(city, 'tiktok.com.example'), NO_RULE, 'suffix of another name is not a subdomain');
});

t.test('firstBlockedAlias: the index of the first blocked target, or -1', async (t) => {
  const city = policy.group('city');
  t.equal(policy.firstBlockedAlias(city, ['cdn.example.net', 'v16.tiktokcdn.com', 'www.tiktok.com']), 1);
  t.equal(policy.firstBlockedAlias(city, ['cdn.example.net', 'allowed.tiktok.com']), -1, 'an allowed alias target');
  t.equal(policy.firstBlockedAlias(city, []), -1);
  t.equal(policy.firstBlockedAlias(policy.group('open'), ['www.tiktok.com']), -1);
});

t.test('explain tells the decision blockingRuleId takes', async (t) => {
  for (const g of policy.groups) {
    for (const name of ['www.tiktok.com', 'allowed.tiktok.com', 'ads.example', 'example.org']) {
      const e = policy.explain(g, name);
      t.equal(e.action === 'block', policy.blockingRuleId(g, name) >= 0, `${g.name} ${name}`);
    }
  }
  const e = policy.explain(policy.group('city'), 'allowed.tiktok.com');
  t.match(e, { action: 'allow', rule: { rule: 'allowed.tiktok.com', list: 'exceptions' }, overridden: { rule: 'tiktok.com', list: 'tiktok' } });
});
