// The DNS pipeline without sockets: real Policy, Identifier and BlockLog, a fake Resolver that
// records whether it was asked (Blocky's mocked `next`) and answers with bytes dns2 encodes.
// The real-socket suites (test/integration) stay; these pin the stage order and the sync-until-I/O contract.
import t from 'tap';
import { ResponseRateLimiter } from '../../src/dns/rate-limit.js';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dns2 from 'dns2';
import { DnsPipeline, type DnsGeneration, type DnsPeer } from '../../src/dns/pipeline.js';
import { Policy } from '../../src/policy/policy.js';
import { ClientIdentifier } from '../../src/identity/identify.js';
import { listFromTexts } from '../../src/lists/load-lists.js';
import { BlockLog } from '../../src/log/block-log.js';
import { createAppLogger } from '../../src/log/logger.js';
import type { Lookup, Resolver, ResolvedAnswer } from '../../src/resolver/resolver.js';
import type { Query } from '../../src/wire/read.js';
import type { GroupConfig } from '../../src/config/types.js';
import type { CertIdentity } from '../../src/net/peer.js';
import { buildQuery, decodeReply } from '../helpers/dns-client.js';

const { Packet } = dns2;
type Resource = InstanceType<typeof Packet>['answers'][number];

const CITY: DnsPeer = { address: '10.20.1.2', proto: 'udp' };
const GUEST: DnsPeer = { address: '10.99.0.1', proto: 'tcp' };
const STRANGER: DnsPeer = { address: '203.0.113.5', proto: 'udp' };

/** Answers from a table of name → records; sync (a cache hit) unless `async`, then a promise. */
class FakeResolver implements Resolver {
  calls: string[] = [];
  async = false;
  fail = false;
  records: Record<string, Partial<Resource>[]> = {
    'example.org': [{ type: Packet.TYPE.A, address: '192.0.2.10' }],
    'cdn.example.net': [{ type: Packet.TYPE.CNAME, domain: 'v16.tiktokcdn.com' }, { name: 'v16.tiktokcdn.com', type: Packet.TYPE.A, address: '198.51.100.8' }],
  };
  resolve(query: Buffer, q: Query): Buffer | Promise<Buffer> {
    const answer = this.resolveAnswer(query, q);
    return answer instanceof Promise ? answer.then((a) => a.bytes) : answer.bytes;
  }
  /** The proxy's door; the DNS pipeline must never use it. */
  lookup(name: string): Promise<Lookup> {
    return Promise.reject(new Error(`the DNS pipeline asked lookup(${name})`));
  }
  resolveAnswer(query: Buffer, q: Query): ResolvedAnswer | Promise<ResolvedAnswer> {
    this.calls.push(q.qname);
    if (this.fail) return Promise.reject(new Error('every upstream failed'));
    const req = Packet.parse(query);
    const res = Packet.createResponseFromRequest(req);
    const records = this.records[q.qname] ?? [];
    res.answers = records.map((r) => ({ name: q.qname, class: 1, ttl: 300, ...r }) as Resource);
    const answer: ResolvedAnswer = { bytes: res.toBuffer(), aliasTargets: records.filter((r) => r.type === Packet.TYPE.CNAME).map((r) => r.domain!) };
    return this.async ? new Promise((resolve) => setImmediate(() => resolve(answer))) : answer;
  }
}

const group = (name: string, subnets: string[], block: string[], mode: GroupConfig['mode'] = 'null'): GroupConfig =>
  ({ name, subnets, block, allow: [], mode });

function generation(resolver: Resolver, tiktokRules = 'tiktok.com\ntiktokcdn.com\n', blockedTtl = 42): DnsGeneration {
  const groups = [group('city', ['10.20.0.0/16'], ['tiktok']), group('city-nx', ['10.21.0.0/16'], ['tiktok'], 'nxdomain')];
  return {
    config: { log: { queries: false }, dns: { blockedTtl, maxUdpSize: 1232 } },
    policy: Policy.compile({ groups, default: group('default', [], []) }, [listFromTexts('tiktok', [{ source: 'tiktok.txt', text: tiktokRules }])]),
    identifier: new ClientIdentifier(['10.0.0.0/8'], groups),
    resolver,
    rateLimiter: new ResponseRateLimiter({ responsesPerSecond: 0, slip: 2 }),
  };
}

function setup(): { pipeline: DnsPipeline; resolver: FakeResolver; current: { generation: DnsGeneration }; events: () => Record<string, unknown>[] } {
  const dir = mkdtempSync(join(tmpdir(), 'appfence-pipeline-'));
  const file = join(dir, 'blocks.log');
  const blockLog = new BlockLog({ destination: file, sync: true });
  t.teardown(() => blockLog.close());
  const resolver = new FakeResolver();
  const current = { generation: generation(resolver) };
  const pipeline = new DnsPipeline(current, blockLog, createAppLogger('silent'));
  const events = (): Record<string, unknown>[] => {
    blockLog.flush();
    return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) : [];
  };
  return { pipeline, resolver, current, events };
}

const ask = (name: string, type = 'A', id = 7): Buffer => buildQuery({ name, type, id });

t.test('blocked name: sinkhole at once, the resolver is never asked, one block event', async (t) => {
  const { pipeline, resolver, events } = setup();
  const out = pipeline.handle(ask('www.tiktok.com'), CITY);
  t.ok(Buffer.isBuffer(out), 'synchronous');
  const reply = decodeReply(out as Buffer);
  t.equal(reply.packet.header.id, 7);
  t.same(reply.answers.map((a) => [a.data, a.ttl]), [['0.0.0.0', 42]], 'the group\'s mode, blockedTtl');
  t.same(resolver.calls, []);
  t.equal(pipeline.stats.get('udp', 'blocked'), 1);
  t.match(events(), [{ event: 'block', proto: 'udp', client: '10.20.1.2', group: 'city', via: 'subnet', name: 'www.tiktok.com', rule: 'tiktok.com', answer: 'null' }]);
  const nx = decodeReply(pipeline.handle(ask('www.tiktok.com'), { address: '10.21.0.9', proto: 'udp' }) as Buffer);
  t.equal(nx.rcode, 3, 'another group, another sinkhole (by GroupPolicy.index)');
});

t.test('outside access.allow: REFUSED before anything else; a verified certificate passes', async (t) => {
  const { pipeline, resolver } = setup();
  t.equal(decodeReply(pipeline.handle(ask('example.org'), STRANGER) as Buffer).rcode, 5);
  t.same(resolver.calls, [], 'not resolved for a refused client');
  t.equal(pipeline.stats.get('udp', 'refused'), 1);
  const cert: CertIdentity = { group: 'city', via: 'cert', device: 'laptop-042' };
  const roaming = decodeReply(pipeline.handle(ask('www.tiktok.com'), { address: STRANGER.address, proto: 'dot', cert }) as Buffer);
  t.same(roaming.answers.map((a) => a.data), ['0.0.0.0'], 'the laptop at a hotel is served by its group');
});

t.test('allowed name: a cache hit is returned synchronously; an upstream answer is a promise', async (t) => {
  const { pipeline, resolver } = setup();
  const hit = pipeline.handle(ask('example.org', 'A', 99), GUEST);
  t.ok(Buffer.isBuffer(hit), 'no promise on a hit');
  t.same(decodeReply(hit as Buffer).answers.map((a) => a.data), ['192.0.2.10']);
  t.equal(pipeline.stats.get('tcp', 'cached'), 1);
  resolver.async = true;
  const miss = pipeline.handle(ask('example.org'), GUEST);
  t.ok(miss instanceof Promise);
  t.equal(pipeline.inFlight, 1, 'counted while waiting (shutdown drains it)');
  t.same(decodeReply((await miss)!).answers.map((a) => a.data), ['192.0.2.10']);
  t.equal(pipeline.inFlight, 0);
  t.equal(pipeline.stats.get('tcp', 'forwarded'), 1);
  t.same(resolver.calls, ['example.org', 'example.org']);
});

t.test('CNAME inspection: an allowed name whose answer leads to a blocked one is sinkholed, for managed clients only', async (t) => {
  const { pipeline, events } = setup();
  const managed = decodeReply(pipeline.handle(ask('cdn.example.net'), CITY) as Buffer);
  t.same(managed.answers.map((a) => a.data), ['0.0.0.0']);
  t.match(events().pop(), { event: 'block', name: 'cdn.example.net', cname: 'v16.tiktokcdn.com', rule: 'tiktokcdn.com' });
  const guest = decodeReply(pipeline.handle(ask('cdn.example.net'), GUEST) as Buffer);
  t.same(guest.answers.map((a) => a.data), ['v16.tiktokcdn.com', '198.51.100.8'], 'a guest gets the real answer');
});

t.test('every upstream failed: SERVFAIL; malformed input: FORMERR or dropped', async (t) => {
  const { pipeline, resolver } = setup();
  resolver.fail = true;
  t.equal(decodeReply((await pipeline.handle(ask('example.org'), GUEST))!).rcode, 2);
  t.equal(pipeline.stats.get('tcp', 'servfail'), 1);
  t.equal(pipeline.handle(Buffer.from([1, 2, 3]), GUEST), null, 'too short: dropped');
  const response = ask('example.org');
  response[2] = response[2]! | 0x80;
  t.equal(pipeline.handle(response, GUEST), null, 'a response, not a query: dropped');
  const garbage = Buffer.concat([ask('example.org').subarray(0, 12), Buffer.from([0x3f, 0x61])]);
  t.equal(decodeReply(pipeline.handle(garbage, GUEST) as Buffer).rcode, 1, 'a question that does not parse: FORMERR');
});

t.test('a reload during an upstream wait: the generation that decided describes the block', async (t) => {
  const { pipeline, resolver, current, events } = setup();
  resolver.async = true;
  const pending = pipeline.handle(ask('cdn.example.net'), CITY);
  // the new generation has other rule ids (a rule in front) and another blockedTtl
  current.generation = generation(resolver, 'other.example\ntiktok.com\ntiktokcdn.com\n', 7);
  const reply = decodeReply((await pending)!);
  t.same(reply.answers.map((a) => [a.data, a.ttl]), [['0.0.0.0', 42]], 'answered with the deciding generation\'s sinkhole');
  t.match(events().pop(), { rule: 'tiktokcdn.com', list: 'tiktok' });
  const now = decodeReply(pipeline.handle(ask('www.tiktok.com'), CITY) as Buffer);
  t.same(now.answers.map((a) => a.ttl), [7], 'the next query uses the new generation');
});
