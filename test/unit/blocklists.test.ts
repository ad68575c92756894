import t from 'tap';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { listFromTexts } from '../../src/lists/load-lists.js';
import { parseListText } from '../../src/lists/parse-line.js';
import { DomainIndex } from '../../src/match/domain-index.js';

const dir = fileURLToPath(new URL('../../blocklists/', import.meta.url));
const read = (file: string): string => readFileSync(`${dir}${file}`, 'utf8');

// Class X of shared/research/tiktok-domains.md: third-party bases that appear in public TikTok lists
// (CDNs, clouds, SDK link services, mistakes, look-alikes). No shipped rule may cover one of them.
// tlivecdn.com joined after the 2026-12-02 review: Tencent Cloud's live-streaming CNAME zone, once in tiktok.txt.
const THIRD_PARTY_BASES = `
akamaized.net edgekey.net edgesuite.net akadns.net fastly.net myqcloud.com worldfcdn.com wsdvs.com
akamaihd.net alikunlun.com alikunlun.net amazonaws.com app-measurement.com app.link baishan-cloud.net
bitgravity.com bsgslb.cn bsgslb.com cdngslb.com cdnle.com cdntip.com cdnvideo.ru cloudcdn.net
cloudflare.net cloudfront.net cloudglb.com dnsv1.com footprint.net googleusercontent.com gshifen.com
jcloudcdn.com jomodns.com ks-cdn.com ks-cdn1.com ksyuncdn.com kunlunca.com kunluncan.com kunlungr.com
kunlunhuf.com kunlunle.com kunlunpi.com kunlunsl.com onelink.me ovscdns.net srip.net tm.com.my umeng.com
wscdns.com wsglb0.com wshifen.com zwtianshangm.com atomile.com com.localdomain dvaitas.lt rocket-cdn.com
worldfcdn2.com 189.cn 21cn.com akamai.net aliyuncs.com amap.com appsflyersdk.com awsdns-04.co.uk
awsdns-26.net awsdns-55.com awsdns-56.org cdn77.org cifapps.com cmbchina.com likee.video ly.lan
numericable.fr qlivecdn.com rocket-cdnbp.com spbycdn.com splashthat.com taobao.com taobao.net
tbsandbox.com tiktokder.com tiktokstalk.com tlivepush.com tlivecdn.com`.trim().split(/\s+/);

t.test('the research list of third-party bases is complete here', async (t) => {
  t.equal(THIRD_PARTY_BASES.length, 83);
  t.equal(new Set(THIRD_PARTY_BASES).size, 83);
});

for (const file of ['tiktok.txt', 'bytedance.txt', 'allow-example.txt']) {
  t.test(`${file} parses cleanly and spares every third-party base`, async (t) => {
    const text = read(file);
    const parsed = parseListText(text, file, 'auto');
    t.same(parsed.rejects, [], 'no rejected lines');
    t.same(parsed.ipRules, [], 'no IP rules');
    t.ok(parsed.rules.length > 0);
    t.equal(new Set(parsed.rules.map((r) => r.name)).size, parsed.rules.length, 'no duplicate rules');
    for (const rule of parsed.rules) {
      const covered = THIRD_PARTY_BASES.filter((base) => base === rule.name || base.endsWith(`.${rule.name}`));
      if (covered.length > 0) t.fail(`line ${rule.line}: ${rule.name} covers third-party ${covered.join(', ')}`);
    }
    const index = DomainIndex.build([listFromTexts(file, [{ source: file, text }])]);
    for (const base of THIRD_PARTY_BASES) {
      if (index.match(base, 1) >= 0 || index.match(`unrelated-host.${base}`, 1) >= 0) t.fail(`${file} blocks ${base}`);
    }
    t.match(text, /^# appfence (blocklist|allow list)/, 'header says what it is');
  });
}

t.test('tiktok.txt covers TikTok and nothing else', async (t) => {
  const text = read('tiktok.txt');
  const { rules, wildRules } = parseListText(text, 'tiktok.txt', 'auto');
  t.ok(rules.every((r) => r.kind === 'subtree' && !r.exception), 'plain subtree rules only');
  t.equal(rules.length, 49 + 7 + 13 + 24, '49 TikTok bases, 7 seen in traffic, 13 ByteDance-labelled third-party names, 24 shop/first-party');
  t.equal(wildRules.length, 7, '7 wildcard rules for TikTok hosts in shared ByteDance zones');
  const index = DomainIndex.build([listFromTexts('tiktok', [{ source: 'tiktok.txt', text }])]);
  for (const name of ['www.tiktok.com', 'tiktok.com', 'api16-normal-c-useast1a.tiktokv.com', 'v16-webapp.tiktokcdn.com',
    'useast5.tiktoklb.us', 'p16-tiktokcdn-com.akamaized.net', 'x.bytedance.map.fastly.net',
    // TikTok Shop's seller-facing hosts (accuracy review, item 8c)
    'seller.tiktokshopglobalselling.com', 'auth.tiktok-shops.com', 'open-api.tiktokglobalshop.com', 'lf16-scmcdn.oecstatic.com',
    // TikTok's hosts inside shared ByteDance zones (item 8b), through `*` inside a label
    'p16-tiktok-dm-sticker-sign-sg.ibyteimg.com', 'p19-tiktok-poi-picture-sign-useast2a.ibyteimg.com', 'p16-musical-va.ibyteimg.com',
    'p19-oec-va.ibyteimg.com', 'lf16-tiktok-common.ibytedtos.com', 'tiktok-core-lb-maliva.byteoversea.net',
    'quic-tiktok-core-proxy-i18n-gcpva.byteoversea.net', 'abtest-sg-tiktok.byteoversea.com']) {
    t.ok(index.match(name, 1) >= 0, `blocks ${name}`);
  }
  for (const name of ['tiktokder.com', 'cdn.tiktokder.com', 'akamaized.net', 'other.akamaized.net', 'example.org',
    'nottiktok.com', 'tiktok.com.example.org', 'www.bytedance.com', 'capcut.com', 'douyin.com',
    // a customer's live stream on Tencent Cloud: its CNAME target is <id>.tlivecdn.com (review item 8a)
    'tlivecdn.com', 'play-example.tlivecdn.com', 'tokopedia.com',
    // the shared zones themselves and other ByteDance apps' hosts in them stay open
    'ibyteimg.com', 'p16-capcut-sign-sg.ibyteimg.com', 'p16-ulike-sg.ibyteimg.com', 'byteoversea.net', 'gpm.byteoversea.net',
    'ibytedtos.com', 'sf16-muse-va.ibytedtos.com', 'v16-ad.byteoversea.com']) {
    t.equal(index.match(name, 1), -1, `does not block ${name}`);
  }
  for (const source of ['v2fly/domain-list-community', 'blocklistproject/Lists', 'llacb47/mischosts', 'danhorton7/pihole-block-tiktok']) {
    t.match(text, source, `header names ${source}`);
  }
  t.match(text, /Licence: MIT/);
});

t.test('bytedance.txt is the opt-in rest of ByteDance, without TikTok duplicates', async (t) => {
  const tiktok = new Set(parseListText(read('tiktok.txt'), 't', 'auto').rules.map((r) => r.name));
  const text = read('bytedance.txt');
  const rules = parseListText(text, 'bytedance.txt', 'auto').rules;
  t.equal(rules.length, 41 + 6 + 12 + 24 + 50);
  t.same(rules.filter((r) => tiktok.has(r.name)).map((r) => r.name), []);
  const index = DomainIndex.build([listFromTexts('bytedance', [{ source: 'bytedance.txt', text }])]);
  for (const name of ['www.bytedance.com', 'log.byteoversea.com', 'www.capcut.com', 'api16-access-wf-sg.pangle.io', 'www.douyin.com',
    // review item 8d: Douyin/Toutiao static and video zones, Pangle ad zones, CapCut and Lemon8
    'p3.douyinpic.com', 'v3.idouyinvod.com', 'p1.toutiaoimg.com', 's3.toutiaostatic.com', 'v1.toutiaovod.com',
    'sf16-static.i18n-pglstatp.com', 'api-access.pangolin-sdk-toutiao.com', 'www.capcut.cn', 'mcs-ttp.lemon8-app.us']) {
    t.ok(index.match(name, 1) >= 0, `blocks ${name}`);
  }
  t.equal(index.match('www.tiktok.com', 1), -1);
  for (const removed of ['toutiao50.com', 'mzfvozqybf.com', 'zjurl.cn']) t.equal(index.match(removed, 1), -1, `unverified ${removed} removed`);
  t.match(text, /Opt-in/);
});

t.test('doh-bypass.txt blocks the public encrypted resolvers, never their providers\' other sites', async (t) => {
  const text = read('doh-bypass.txt');
  const parsed = parseListText(text, 'doh-bypass.txt', 'auto');
  t.same(parsed.rejects, [], 'no rejected lines');
  t.equal(new Set(parsed.rules.map((r) => r.name)).size, parsed.rules.length, 'no duplicate rules');
  t.ok(parsed.rules.every((r) => r.kind === 'subtree' && !r.exception));
  t.ok(parsed.ipRules.some((r) => r.cidr === '1.1.1.1/32') && parsed.ipRules.some((r) => r.cidr === '2001:4860:4860::8888/128'),
    'the providers\' anycast addresses are IP rules');
  const index = DomainIndex.build([listFromTexts('doh-bypass', [{ source: 'doh-bypass.txt', text }])]);
  for (const name of ['dns.google', 'chrome.cloudflare-dns.com', 'mozilla.cloudflare-dns.com', 'one.one.one.one', 'dns.quad9.net',
    'doh.opendns.com', 'dns.adguard-dns.com', 'abc123.d.adguard-dns.com', 'firefox.dns.nextdns.io', 'anycast.dns.nextdns.io',
    'adblock.dns.mullvad.net', 'zero.dns0.eu', 'family-filter-dns.cleanbrowsing.org', 'doh.xfinity.com']) {
    t.ok(index.match(name, 1) >= 0, `blocks ${name}`);
  }
  for (const name of ['google.com', 'www.google.com', 'cloudflare.com', 'www.cloudflare.com', 'quad9.net', 'www.quad9.net',
    'adguard.com', 'nextdns.io', 'my.nextdns.io', 'mullvad.net', 'opendns.com', 'cleanbrowsing.org', 'xfinity.com', 'nic.cz']) {
    t.equal(index.match(name, 1), -1, `does not block ${name}`);
  }
  for (const source of ['doh_provider_entry.cc', 'dibdot/DoH-IP-blocklists', 'BSD-3-Clause', 'GPL-3.0', 'Licence: MIT']) {
    t.match(text, source, `header names ${source}`);
  }
});

t.test('bypass-signals.txt holds exactly the vendor-documented canaries', async (t) => {
  const text = read('bypass-signals.txt');
  const parsed = parseListText(text, 'bypass-signals.txt', 'auto');
  t.same(parsed.rejects, []);
  t.same(parsed.rules.map((r) => r.name).sort(), ['mask-h2.icloud.com', 'mask.icloud.com', 'use-application-dns.net']);
  const index = DomainIndex.build([listFromTexts('signals', [{ source: 'bypass-signals.txt', text }])]);
  t.equal(index.match('icloud.com', 1), -1, 'iCloud itself is untouched');
  t.equal(index.match('www.icloud.com', 1), -1);
  t.match(text, /support\.mozilla\.org/);
  t.match(text, /developer\.apple\.com/);
  t.match(text, /answer: nxdomain/);
});
