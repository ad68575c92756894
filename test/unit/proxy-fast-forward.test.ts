// The undici path on its own: origin-form paths as http-proxy's legacy parser sends them, what counts as
// bodiless, and a request undici will not send as given handed back (null) for http-proxy to forward.
import t from 'tap';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { FastForwarder, hasNoBody, originForm } from '../../src/proxy/fast-forward.js';
import type { ForwardFailure } from '../../src/proxy/forward.js';

t.test('originForm keeps the path as written, drops the fragment, roots a bare query', async (t) => {
  t.equal(originForm('http://a.example/'), '/');
  t.equal(originForm('http://a.example'), '/');
  t.equal(originForm('http://a.example:8080/x/../y;p?q=1&r#frag'), '/x/../y;p?q=1&r');
  t.equal(originForm('http://a.example?q'), '/?q');
  t.equal(originForm('http://a.example#f'), '/');
  t.equal(originForm('http://[::1]:81/v6?x'), '/v6?x');
  t.equal(originForm('/already?x#f'), '/already?x');
});

t.test('hasNoBody: no length above 0 and no chunked body', async (t) => {
  const req = (headers: http.IncomingHttpHeaders) => ({ headers }) as http.IncomingMessage;
  t.ok(hasNoBody(req({})));
  t.ok(hasNoBody(req({ 'content-length': '0' })));
  t.notOk(hasNoBody(req({ 'content-length': '5' })));
  t.notOk(hasNoBody(req({ 'transfer-encoding': 'chunked' })));
});

t.test('forward: a request undici refuses comes back as null, untouched; a valid one is relayed', async (t) => {
  const origin = http.createServer((req, res) => res.end(`origin saw ${req.url}`));
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  const originPort = (origin.address() as AddressInfo).port;
  const fast = new FastForwarder(2000);
  const outcomes: (ForwardFailure | null | 'handed back')[] = [];
  const proxy = http.createServer((req, res) => {
    const upgrade = req.headers['x-test-upgrade'] !== undefined;
    const headers: http.IncomingHttpHeaders = { host: `127.0.0.1:${originPort}`, via: '1.1 appfence', ...(upgrade ? { upgrade: 'h2c' } : {}) };
    const p = fast.forward(req, res, '127.0.0.1', originPort, headers);
    if (p === null) {
      outcomes.push('handed back');
      t.notOk(res.headersSent, 'nothing answered yet: the caller can still forward it');
      return void res.end('fallback');
    }
    void p.then((o) => outcomes.push(o));
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  const port = (proxy.address() as AddressInfo).port;
  t.teardown(() => { fast.close(); proxy.close(); origin.close(); });
  const get = (extra: Record<string, string>) => fetch(`http://127.0.0.1:${port}/p?x=1`, { headers: extra }).then(async (r) => ({ status: r.status, body: await r.text(), via: r.headers.get('via') }));
  t.same(await get({}), { status: 200, body: 'origin saw /p?x=1', via: '1.1 appfence' });
  t.same(await get({ 'x-test-upgrade': '1' }), { status: 200, body: 'fallback', via: null });
  t.same(outcomes, [null, 'handed back']);
});
