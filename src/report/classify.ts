/**
 * Which blocked names show the TikTok *app* on a device, and which only the *web* (pages, or TikTok
 * embeds and pixels on other sites). The table is data on purpose: docs/report.md explains each row.
 *
 * App signals: the mobile app's own API and telemetry zones. The app (and only the app) talks to the
 * "v" zones — tiktokv.com and its regional twins — for its feed API (api16/api19/api22-*), telemetry
 * (log*, mon*, mssdk*), config (tnc*) and LIVE (webcast*). A browser on www.tiktok.com uses the "w"
 * zones and tiktok.com itself instead, so one of these names is strong evidence the app is installed.
 * Web signals: tiktok.com pages, the web front end's own static and analytics zones, and the pixel
 * (analytics.tiktok.com) that third-party sites embed. Neutral: CDNs both use (tiktokcdn*, ibyteimg ...).
 */

export type Signal = 'app' | 'web' | 'neutral';

const APP_ZONES: readonly string[] = [
  'tiktokv.com', 'tiktokv.us', 'tiktokv.eu', 'tiktokv-us.com', 'tiktokv-eu.com', 'tiktokv-row.com',
];
// Not app signals although TikTok-branded: tiktokpangle*.us is Pangle, ByteDance's ad SDK that other
// apps embed too, so it would report a device with any Pangle-funded game as "runs TikTok".
const WEB_ZONES: readonly string[] = [
  'tiktok.com', 'tiktokw.us', 'tiktokw.eu', 'ttwstatic.com', 'tiktok.shop', 'tiktokshop.com', 'musical.ly',
];

function under(name: string, zone: string): boolean {
  return name === zone || (name.length > zone.length && name.endsWith(zone) && name.charCodeAt(name.length - zone.length - 1) === 46);
}

/** The signal of one blocked name (already lower-case, no trailing dot, as the block log writes it). */
export function signalOf(name: string): Signal {
  for (const z of APP_ZONES) if (under(name, z)) return 'app';
  // The app also resolves a few tiktok.com hosts, but none only it does; they stay web evidence.
  for (const z of WEB_ZONES) if (under(name, z)) return 'web';
  return 'neutral';
}

export type Pattern = 'app' | 'web' | 'other';

/** A device shows the app once any app signal was blocked; else the web when any web signal was. */
export function patternOf(appSignals: number, webSignals: number): Pattern {
  if (appSignals > 0) return 'app';
  return webSignals > 0 ? 'web' : 'other';
}
