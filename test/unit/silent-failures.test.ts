// The checks and summaries that turn silent failures into log lines, without sockets: which list
// copies are believable, the /24 and /56 prefixes of the refused-clients summary and its bounded
// report, and the per-certificate throttle of rejected device certificates.
import t from 'tap';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { errorPageReason, shrinkReason } from '../../src/lists/sanity.js';
import { RefusedClients, prefixOf } from '../../src/log/refused-clients.js';
import { CertRejections, rejectionReason } from '../../src/identity/cert-rejections.js';
import { createAppLogger } from '../../src/log/logger.js';
import { createTestPki } from '../helpers/certs.js';
import { rm } from 'node:fs/promises';

const logFile = (): { path: string; lines: () => Record<string, unknown>[] } => {
  const path = join(mkdtempSync(join(tmpdir(), 'appfence-log-')), 'app.log');
  return { path, lines: () => readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
};

t.test('error pages are not lists; real lists are', async (t) => {
  for (const [text, why] of [
    ['Forbidden', /single word "Forbidden"/], ['Forbidden\n', /single word/], ['  404 ', /single word "404"/],
    ['<!DOCTYPE html>\n<html><head><title>403</title></head><body>denied</body></html>', /HTML/],
    ['<html>\n<body>Service Unavailable</body>', /HTML/], ['\n  <?xml version="1.0"?><Error><Code>AccessDenied</Code></Error>', /HTML/],
    ['{"error":"rate limited","status":429}', /JSON/],
  ] as const) t.match(errorPageReason(text), why, JSON.stringify(text.slice(0, 20)));
  for (const text of ['tiktok.com', 'tiktok.com\ntiktokv.com\n', '# TikTok\n0.0.0.0 tiktok.com\n', '||tiktok.com^\n', '', '# emptied\n', '*.tiktokcdn.com'])
    t.equal(errorPageReason(text), null, JSON.stringify(text));
  t.match(shrinkReason(1, 3), /fewer than half/);
  t.equal(shrinkReason(2, 4), null, 'exactly half is kept');
  t.equal(shrinkReason(50, 10), null);
});

t.test('refused clients: /24 and /56 prefixes, one bounded summary line per interval', async (t) => {
  t.equal(prefixOf('203.0.113.7'), '203.0.113.0/24');
  t.equal(prefixOf('::ffff:198.51.100.9'), '198.51.100.0/24');
  t.equal(prefixOf('2001:db8:1:2ff::5'), '2001:db8:1:200::/56');
  t.equal(prefixOf('2001:db8::1'), '2001:db8:0:0::/56');
  const log = logFile();
  const refused = new RefusedClients(createAppLogger('warn', log.path), 60_000);
  for (let i = 0; i < 5; i++) refused.note(`203.0.113.${i}`);
  refused.note('198.51.100.1');
  for (let i = 0; i < 300; i++) refused.note(`10.${i >> 8}.${i & 255}.1`);
  t.equal(refused.total, 306);
  refused.report();
  refused.report();
  const lines = log.lines();
  t.equal(lines.length, 1, 'one line for the interval; an empty report writes nothing');
  t.match(lines[0], { level: 'warn', msg: 'clients refused: not in access.allow', count: 306, clients: { '203.0.113.0/24': 5, '198.51.100.0/24': 1 } });
  t.equal(Object.keys(lines[0]!['clients'] as object).length, 256, 'at most 256 prefixes named');
  t.equal(lines[0]!['unlisted'], 46, '302 prefixes: refusals from the 46 beyond the cap counted as unlisted');
});

t.test('rejected device certificates: reason in the operator\'s words, one line per certificate per interval', async (t) => {
  t.equal(rejectionReason('CERT_HAS_EXPIRED'), 'expired');
  t.equal(rejectionReason('not yet valid'), 'not yet valid');
  t.equal(rejectionReason('UNABLE_TO_VERIFY_LEAF_SIGNATURE'), 'unknown CA');
  t.equal(rejectionReason('not for client authentication'), 'wrong key usage');
  t.equal(rejectionReason('matches no group'), 'matches no group');
  const pki = await createTestPki();
  t.teardown(() => rm(pki.dir, { recursive: true, force: true }));
  const [a, b] = await Promise.all([pki.device({ cn: 'laptop-042', ou: 'City Devices', days: -1 }), pki.device({ cn: 'laptop-043' })]);
  const log = logFile();
  let now = 1_000_000;
  const rejections = new CertRejections(createAppLogger('warn', log.path), 60_000, () => now);
  const certA = new X509Certificate(readFileSync(a.cert));
  rejections.note(certA, 'expired', '127.0.20.5');
  rejections.note(certA, 'expired', '127.0.20.5');
  rejections.note(new X509Certificate(readFileSync(b.cert)), 'matches no group', '127.0.20.6');
  now += 61_000;
  rejections.note(certA, 'expired', '127.0.20.5');
  t.same(rejections.counts, { expired: 3, 'not yet valid': 0, 'unknown CA': 0, 'wrong key usage': 0, 'matches no group': 1 });
  const lines = log.lines();
  t.equal(lines.length, 3, 'the repeat within the interval is counted, not logged');
  t.match(lines[0], { level: 'warn', subject: /CN=laptop-042/, issuer: /CN=City Device CA/, reason: 'expired', client: '127.0.20.5', count: 1 });
  t.match(lines[1], { subject: /CN=laptop-043/, reason: 'matches no group' });
  t.match(lines[2], { reason: 'expired', count: 2, msg: /device certificate rejected/ }, 'the next line carries the ones held back');
});
