// A real browser through the proxy: Debian's chromium, headless, driven by playwright-core. 127.0.0.1
// (where the browser connects from) is a managed device here, so a blocked name shows appfence's
// block page and an allowed one the origin's page; once with --proxy-server, once with the PAC file
// (--proxy-pac-url) the proxy serves itself.
import t from 'tap';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startServer, type Started } from '../helpers/start-server.js';
import { startOrigin, type Origin } from '../helpers/origin.js';

const CHROMIUM = '/usr/bin/chromium';

if (!existsSync(CHROMIUM)) {
  t.test('chromium through the proxy', { skip: `${CHROMIUM} is not installed (Debian package "chromium"; .ci/run installs it)` }, () => undefined);
} else {
  let up: FakeUpstream;
  let origin: Origin;
  let srv: Started;

  t.before(async () => {
    origin = await startOrigin('127.0.0.2', 'Allowed origin');
    up = await startFakeUpstream({ zone: {
      'www.example.org A': { answers: [{ type: 'A', data: '127.0.0.2' }] },
      'www.tiktok.com A': { answers: [{ type: 'A', data: '127.0.0.2' }] },
    } });
    srv = await startServer(`
dns: { listen: ["127.0.0.1:0"], upstreams: ["127.0.0.1:${up.port}"], timeoutMs: 500 }
proxy: { listen: ["127.0.0.1:0"], blockPage: { contact: "IT service desk, ext. 4357" } }
access: { allow: ["127.0.0.0/8"] }
lists: { tiktok: { sources: ["tiktok.txt"] } }
groups: { loopback: { subnets: ["127.0.0.1/32"], block: [tiktok] } }
log: { level: silent }
`, { 'tiktok.txt': 'tiktok.com\n' });
  });
  t.teardown(async () => {
    await srv.close();
    await up.close();
    await origin.close();
  });

  async function withBrowser(proxyFlag: string, fn: (b: BrowserContext) => Promise<void>): Promise<void> {
    const profile = mkdtempSync(join(tmpdir(), 'appfence-chromium-'));
    // a fresh profile per run: no cache, no HSTS or proxy state carried over
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      timeout: 30_000,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync',
        // plain http:// navigations stay plain (no HTTPS-first upgrade attempt before the real request)
        '--disable-features=HttpsUpgrades,HttpsFirstBalancedModeAutoEnable', proxyFlag],
    });
    try {
      await fn(browser);
    } finally {
      await browser.close();
      rmSync(profile, { recursive: true, force: true });
    }
  }

  async function visit(browser: BrowserContext, url: string): Promise<{ status: number; title: string; text: string }> {
    const page = await browser.newPage();
    try {
      const res = await page.goto(url, { timeout: 15_000 });
      return { status: res?.status() ?? 0, title: await page.title(), text: await page.innerText('body') };
    } finally {
      await page.close();
    }
  }

  for (const mode of ['--proxy-server', '--proxy-pac-url'] as const) {
    t.test(`chromium with ${mode}: block page for the managed device, the origin for an allowed name`, async (t) => {
      const port = srv.runtime.ports.proxy[0]!;
      const flag = mode === '--proxy-server' ? `--proxy-server=http://127.0.0.1:${port}` : `--proxy-pac-url=http://127.0.0.1:${port}/proxy.pac`;
      await withBrowser(flag, async (browser) => {
        const blocked = await visit(browser, `http://www.tiktok.com:${origin.port}/@someone`);
        t.equal(blocked.status, 403);
        t.equal(blocked.title, 'Blocked: www.tiktok.com');
        t.match(blocked.text, 'This site is blocked on this device');
        t.match(blocked.text, 'IT service desk, ext. 4357');
        const allowed = await visit(browser, `http://www.example.org:${origin.port}/`);
        t.equal(allowed.status, 200);
        t.equal(allowed.title, 'Allowed origin');
        t.match(allowed.text, `www.example.org:${origin.port}`);
      });
      t.match(srv.events().at(-1), { event: 'block', proto: 'http', client: '127.0.0.1', group: 'loopback', name: 'www.tiktok.com' });
    });
  }
}
