/**
 * Reads list text (plain domains, hosts, adblock `||x^`, `*.x`, `@@` exceptions, IPs/CIDRs) into
 * rules, IP rules and rejected lines. The loader (load-lists.ts) streams rules into compact
 * storage through a RuleSink; `parseListText` builds plain objects for tests and `lists check`.
 * Never throws on content: a bad line becomes a rejection with its 1-based line number.
 */
import { isIP } from 'node:net';
import { NAME_INVALID, NAME_NON_ASCII, normalizeName, scanName } from '../match/normalize.js';
import {
  FORMAT_ADBLOCK, FORMAT_ADBLOCK_BELOW, FORMAT_HOSTS, FORMAT_PLAIN, FORMAT_WILDCARD, KIND_BELOW, KIND_EXACT, KIND_NAMES,
  KIND_SUBTREE, type RuleKind,
} from '../match/rule-store.js';
import { splitWildcard } from '../match/wildcard.js';

export type { RuleKind } from '../match/rule-store.js';
export interface DomainRule { name: string; kind: RuleKind; exception: boolean; line: number }
export interface IpRule { cidr: string; line: number }
export interface RejectedLine { source: string; line: number; text: string; reason: string }


export interface WildLine { glob: string; anchor: string; text: string; line: number }

export interface RuleSink {
  /** text[start, end) is a valid name that at most needs ASCII lowercasing. */
  rule(text: string, start: number, end: number, kind: number, exception: boolean, format: number, line: number): void;
  ip(cidr: string, line: number): void;
  /** `||p16-tiktok*.ibyteimg.com^`: a glob for the first label, a literal zone after it. */
  wild?(glob: string, anchor: string, text: string, line: number): void;
  reject(line: number, text: string, reason: string): void;
}

// Names a hosts file maps to itself; they are never rules.
const HOSTS_SKIP = new Set(['localhost', 'localhost.localdomain', 'local', 'broadcasthost', '0.0.0.0']);

/** Feeds every line of `text` to `sink`. `subtree` turns every rule into a subtree rule. */
export function parseInto(text: string, subtree: boolean, sink: RuleSink): void {
  const n = text.length;
  let pos = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 0;
  while (pos < n) {
    let eol = text.indexOf('\n', pos);
    if (eol < 0) eol = n;
    parseLine(text, pos, eol, ++line, subtree, sink);
    pos = eol + 1;
  }
}

function isBlank(c: number): boolean {
  return c === 32 || c === 9 || c === 13 || c === 11 || c === 12;
}

function parseLine(text: string, a: number, b: number, line: number, subtree: boolean, sink: RuleSink): void {
  while (a < b && isBlank(text.charCodeAt(a))) a++;
  while (b > a && isBlank(text.charCodeAt(b - 1))) b--;
  if (a === b) return;
  const first = text.charCodeAt(a);
  if (first === 35 || first === 33) return; // '#', '!'
  if (first === 91 && text.charCodeAt(b - 1) === 93) return; // "[Adblock Plus 2.0]"

  // One pass finds what decides the format: a '#' (comment or cosmetic), an inner blank, and the
  // characters no host name has. Bounded by the line: indexOf would scan the rest of the list.
  let blank = -1;
  let dollar = -1;
  let odd = 0; // bit 1: '/', 2: '^', 4: ':'
  for (let i = a; i < b; i++) {
    const c = text.charCodeAt(i);
    if (c === 35) {
      if (isBlank(text.charCodeAt(i - 1))) { b = i; break; }
      const next = text.charCodeAt(i + 1);
      if (next === 35 || next === 64 || next === 36 || next === 37 || next === 63) {
        return sink.reject(line, text.slice(a, b), 'cosmetic (element hiding) rule: DNS sees host names only');
      }
      return sink.reject(line, text.slice(a, b), 'not a domain name');
    }
    if (c === 47) odd |= 1;
    else if (c === 94) odd |= 2;
    else if (c === 58) odd |= 4;
    else if (c === 36) { if (dollar < 0) dollar = i; }
    else if (blank < 0 && isBlank(c)) blank = i;
  }
  while (b > a && isBlank(text.charCodeAt(b - 1))) b--;
  if (blank >= b) blank = -1;
  if (dollar >= b) dollar = -1;

  if (blank >= 0) return parseHostsLine(text, a, b, blank, line, subtree, sink);

  let exception = false;
  if (first === 64 && text.charCodeAt(a + 1) === 64) { // "@@"
    exception = true;
    a += 2;
  }
  if (text.charCodeAt(a) === 124 && text.charCodeAt(a + 1) === 124) { // "||"
    return parseAdblock(text, a + 2, b, dollar, exception, line, subtree, sink);
  }
  const c0 = text.charCodeAt(a);
  const reason = odd === 0 && dollar < 0 && c0 !== 124 ? null : unsupportedReason(text, a, b);
  if (reason !== null) return sink.reject(line, text.slice(exception ? a - 2 : a, b), reason);
  if (!exception && ((odd & 4) !== 0 || (c0 >= 48 && c0 <= 57)) && parseIp(text, a, b, line, sink)) return;
  if (c0 === 42 && text.charCodeAt(a + 1) === 46) { // "*."
    return emitName(text, a + 2, b, subtree ? KIND_SUBTREE : KIND_BELOW, exception, FORMAT_WILDCARD, line, a, sink);
  }
  emitName(text, a, b, KIND_SUBTREE, exception, FORMAT_PLAIN, line, a, sink);
}

/** Reasons for lines that look like rules of other tools; null when it may be a name. */
function unsupportedReason(text: string, a: number, b: number): string | null {
  const c = text.charCodeAt(a);
  if (c === 47 && b - a > 2 && text.charCodeAt(b - 1) === 47) return 'regular expression rule: not supported';
  if (c === 124) return 'anchored URL rule: not supported (use ||name^)';
  const body = text.slice(a, b);
  if (body.includes('://')) return 'URL, not a domain name';
  if (body.includes('$')) return 'adblock modifier without ||name^: not supported';
  if (body.includes('^')) return 'adblock rule without ||: not supported (use ||name^)';
  const slash = body.indexOf('/');
  if (slash >= 0 && isIP(body.slice(0, slash)) === 0) return 'path, not a domain name: DNS sees host names only';
  return null;
}

function parseAdblock(text: string, a: number, b: number, dollar: number, exception: boolean, line: number,
  subtree: boolean, sink: RuleSink): void {
  const start = exception ? a - 4 : a - 2;
  let end = b;
  if (dollar >= 0) {
    const modifiers = text.slice(dollar + 1, b).split(',');
    for (const m of modifiers) {
      // $important only raises priority over exceptions in browsers; a DNS block is already final.
      if (m.trim() !== 'important') {
        return sink.reject(line, text.slice(start, b), `unsupported adblock modifier $${m.trim()}`);
      }
    }
    end = dollar;
  }
  // "||x^" and "||x" (some lists omit the separator) both mean the name and everything below it.
  if (end > a && text.charCodeAt(end - 1) === 94) end--;
  for (let i = a; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 47) return sink.reject(line, text.slice(start, b), 'path rule: DNS sees host names only');
    if (c === 94 || c === 124) return sink.reject(line, text.slice(start, b), 'unsupported adblock syntax');
  }
  if (text.charCodeAt(a) === 42 && text.charCodeAt(a + 1) === 46) {
    return emitName(text, a + 2, end, subtree ? KIND_SUBTREE : KIND_BELOW, exception, FORMAT_ADBLOCK_BELOW, line, start, sink, b);
  }
  const star = text.indexOf('*', a);
  if (star >= 0 && star < end) return emitWild(text, a, end, exception, line, start, b, sink);
  emitName(text, a, end, KIND_SUBTREE, exception, FORMAT_ADBLOCK, line, start, sink, b);
}

/** `||glob.zone^`: `*` inside the first label only (AdGuard's syntax); exceptions keep to plain names. */
function emitWild(text: string, a: number, end: number, exception: boolean, line: number, start: number, b: number,
  sink: RuleSink): void {
  const whole = text.slice(start, b);
  if (exception) return sink.reject(line, whole, 'wildcard exception: not supported (write the exception as a plain name)');
  if (sink.wild === undefined) return sink.reject(line, whole, 'wildcard inside a name: not supported here');
  const split = splitWildcard(text.slice(a, end));
  if (typeof split === 'string') return sink.reject(line, whole, split);
  sink.wild(split.glob, split.anchor, whole, line);
}

/** "0.0.0.0 a b c": each name is an exact rule. */
function parseHostsLine(text: string, a: number, b: number, blank: number, line: number,
  subtree: boolean, sink: RuleSink): void {
  const address = text.slice(a, blank);
  if (isIP(address) === 0) {
    const reason = address.includes('://') ? 'URL, not a domain name' : 'not a domain name (hosts lines start with an IP address)';
    return sink.reject(line, text.slice(a, b), reason);
  }
  const kind = subtree ? KIND_SUBTREE : KIND_EXACT;
  let i = blank;
  while (i < b) {
    while (i < b && isBlank(text.charCodeAt(i))) i++;
    let j = i;
    while (j < b && !isBlank(text.charCodeAt(j))) j++;
    if (j > i && !isHostsSelfName(text, i, j)) emitName(text, i, j, kind, false, FORMAT_HOSTS, line, a, sink, b);
    i = j;
  }
}

function isHostsSelfName(text: string, a: number, b: number): boolean {
  const c = text.charCodeAt(a) | 32;
  if (c !== 108 && c !== 98 && c !== 105 && c !== 48) return false; // l b i 0: the only possible starts
  const name = text.slice(a, b).toLowerCase();
  return HOSTS_SKIP.has(name) || name.startsWith('ip6-');
}

/** Bare IPv4/IPv6 or CIDR → IP rule (for the proxy's raw-IP checks). */
function parseIp(text: string, a: number, b: number, line: number, sink: RuleSink): boolean {
  const token = text.slice(a, b);
  const slash = token.indexOf('/');
  const address = slash < 0 ? token : token.slice(0, slash);
  const family = isIP(address);
  // A slash after a non-address was already rejected as a path, so this is a name like 1password.com.
  if (family === 0) return false;
  const max = family === 4 ? 32 : 128;
  if (slash < 0) {
    sink.ip(`${address}/${max}`, line);
    return true;
  }
  const prefixText = token.slice(slash + 1);
  const prefix = Number(prefixText);
  if (!/^\d{1,3}$/.test(prefixText) || prefix > max) sink.reject(line, token, 'bad CIDR prefix length');
  else sink.ip(token, line);
  return true;
}

function emitName(text: string, a: number, b: number, kind: number, exception: boolean, format: number,
  line: number, lineStart: number, sink: RuleSink, lineEnd = b): void {
  let end = b;
  if (end > a && text.charCodeAt(end - 1) === 46) end--;
  const scan = scanName(text, a, end);
  if (scan === NAME_INVALID) {
    const reason = text.slice(a, b).includes('*') ? 'wildcard inside a name: only in adblock rules (||p16-tiktok*.example.com^)' : 'invalid domain name';
    return sink.reject(line, text.slice(lineStart, lineEnd), reason);
  }
  if (scan === NAME_NON_ASCII) {
    const ascii = normalizeName(text.slice(a, end));
    if (ascii === null) return sink.reject(line, text.slice(lineStart, lineEnd), 'invalid internationalised domain name');
    return sink.rule(ascii, 0, ascii.length, kind, exception, format, line);
  }
  sink.rule(text, a, end, kind, exception, format, line);
}

/** For tests and `appfence lists check`: the whole list as plain objects. Never throws. */
export function parseListText(text: string, source: string, match: 'auto' | 'subtree'):
  { rules: DomainRule[]; ipRules: IpRule[]; wildRules: WildLine[]; rejects: RejectedLine[] } {
  const rules: DomainRule[] = [];
  const ipRules: IpRule[] = [];
  const wildRules: WildLine[] = [];
  const rejects: RejectedLine[] = [];
  parseInto(text, match === 'subtree', {
    rule(src, start, end, kind, exception, _format, line) {
      rules.push({ name: src.slice(start, end).toLowerCase(), kind: KIND_NAMES[kind] ?? 'subtree', exception, line });
    },
    ip(cidr, line) { ipRules.push({ cidr, line }); },
    wild(glob, anchor, text, line) { wildRules.push({ glob, anchor, text, line }); },
    reject(line, lineText, reason) { rejects.push({ source, line, text: lineText, reason }); },
  });
  return { rules, ipRules, wildRules, rejects };
}
