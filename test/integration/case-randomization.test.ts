// dns.caseRandomization (0x20, issue 14 finding 6) through the real server on loopback: upstream questions
// carry random letter case, the client gets its own case back, the cache ignores case, a forged reply that
// does not echo the case is dropped (and counted), and an upstream that lowercases questions still answers
// and, after CASE_STRIKES such replies in a row, gets its queries without 0x20.
import t from 'tap';
import { buildQuery, decodeReply, query, sendRaw } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstreamOptions } from '../helpers/fake-upstream.js';
import { startServer } from '../helpers/start-server.js';
import { scrape } from '../helpers/metrics.js';
import { CASE_STRIKES } from '../../src/resolver/upstream.js';

const NAME = 'www.casetest-example-long-name.org'; // 28 letters: all-lowercase by chance is 2^-28

async function setup(t: { teardown(fn: () => unknown): void }, opts: FakeUpstreamOptions, on = true) {
  const up = await startFakeUpstream({ respond: () => ({ answers: [{ type: 'A', ttl: 300, data: '192.0.2.1' }] }), ...opts });
  t.teardown(() => up.close());
  const s = await startServer(`
dns:
  listen: ["127.0.0.1:0"]
  upstreams: ["${up.config.text}"]
  timeoutMs: 500${on ? '\n  caseRandomization: true' : ''}
admin: { listen: "127.0.0.1:0" }
`);
  t.teardown(() => s.close());
  return { up, s };
}

t.test('off by default: the question goes upstream as the client wrote it', async (t) => {
  const { up, s } = await setup(t, {}, false);
  await query({ server: s.server, proto: 'udp', name: `a.${NAME}`, type: 'A' });
  t.equal(up.log[0]?.name, `a.${NAME}`);
});

t.test('on: random case upstream, the client\'s own case back, cache keyed without case', async (t) => {
  const { up, s } = await setup(t, {});
  const asked = `Mixed.${NAME.toUpperCase()}`;
  const raw = await sendRaw(s.server, buildQuery({ name: asked, type: 'A', id: 7 }), 'udp');
  const reply = decodeReply(raw!);
  t.equal(reply.answers[0]?.data, '192.0.2.1');
  t.equal(reply.packet.questions[0]?.name, asked, 'the reply carries the client\'s case');
  const sent = up.log[0]!.name;
  t.equal(sent.toLowerCase(), asked.toLowerCase());
  t.not(sent, asked, `upstream saw ${sent}`);
  t.ok(/[a-z]/.test(sent) && /[A-Z]/.test(sent), 'a mix of cases');
  for (let i = 0; i < 4; i++) await query({ server: s.server, proto: 'udp', name: `n${i}.${NAME}`, type: 'A' });
  t.equal(new Set(up.log.map((l) => l.name)).size, 5, 'every question cased afresh');
  const before = up.udpQueries;
  const again = await query({ server: s.server, proto: 'udp', name: asked.toLowerCase(), type: 'A' });
  t.equal(again.answers[0]?.data, '192.0.2.1');
  t.equal(up.udpQueries, before, 'another case of the same name is a cache hit');
});

t.test('on: a forged reply that does not echo the case is dropped; the real answer is served and the drop counted', async (t) => {
  const { s } = await setup(t, { caseSpoof: true });
  for (let i = 0; i < 3; i++) {
    const r = await query({ server: s.server, proto: 'udp', name: `spoof${i}.${NAME}`, type: 'A' });
    t.same(r.answers.map((a) => a.data), ['192.0.2.1'], 'not 203.0.113.66');
  }
  const m = await scrape(s.runtime.adminPort);
  t.equal(m.value('appfence_upstream_case_mismatches_total', { upstream: s.runtime.config.dns.upstreams[0]!.text }), 3);
  t.equal(m.value('appfence_upstream_case_randomization', { upstream: s.runtime.config.dns.upstreams[0]!.text }), 1,
    'forged replies alone (the real one echoed) do not turn 0x20 off');
});

t.test('on: an upstream that lowercases questions still answers; after the strikes it gets plain questions', async (t) => {
  const { up, s } = await setup(t, { lowercaseQuestion: true });
  for (let i = 0; i < CASE_STRIKES; i++) {
    const r = await query({ server: s.server, proto: 'udp', name: `low${i}.${NAME}`, type: 'A' });
    t.same(r.answers.map((a) => a.data), ['192.0.2.1'], `answered via the plain retry (${i + 1})`);
  }
  t.equal(up.udpQueries, CASE_STRIKES * 2, 'each was asked with 0x20, then once without');
  await new Promise((r) => setTimeout(r, 800)); // the 0x20 queries time out without an exact echo: strikes
  const r = await query({ server: s.server, proto: 'udp', name: `after.${NAME}`, type: 'A' });
  t.same(r.answers.map((a) => a.data), ['192.0.2.1']);
  t.equal(up.udpQueries, CASE_STRIKES * 2 + 1, 'then a single query ...');
  t.equal(up.log.at(-1)?.name, `after.${NAME}`, '... without 0x20');
  const m = await scrape(s.runtime.adminPort);
  t.equal(m.value('appfence_upstream_case_randomization', { upstream: up.config.text }), 0, '/metrics: off for this upstream');
});
