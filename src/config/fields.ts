/**
 * The zod leaves the config schema (config/schema.ts) is built from. Each carries the message an
 * admin reads after the key path ("must be a positive integer", "is not a CIDR"); values that are
 * strings with structure (addresses, CIDRs, durations) are parsed by config/parse-field.ts and come
 * out normalised. Relative paths resolve against `dir`, the config file's folder.
 */
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import {
  Problem, isIP, parseCidrText, parseDuration, parseHostname, parseListen, parseSourceUrl, parseUpstream, quote,
} from './parse-field.js';

/** RFC 2181 §8: TTLs are 31-bit. */
export const MAX_TTL = 2_147_483_647;

/** A string schema whose value `parse` turns into T, or rejects with the Problem's message. */
export function parsedString<T>(parse: (value: string) => T | Problem, typeError = 'must be a string') {
  return z.string({ error: typeError }).transform((value, ctx): T => {
    const out = parse(value);
    if (out instanceof Problem) {
      ctx.issues.push({ code: 'custom', message: out.message, input: value });
      return z.NEVER;
    }
    return out;
  });
}

/** `required`: the message when the key is left out (else "must be a string"). */
export const text = (required?: string) => z.string({
  error: (i) => (i.input === undefined && required !== undefined ? required : 'must be a string'),
}).refine((v) => v.trim() !== '', { error: 'must not be empty' });

export const bool = () => z.boolean({ error: 'must be true or false' });

/** Integers only; 1.5, "1500" and 1e400 are errors. `min` 1 reads "positive", 0 "non-negative". */
export function int(min: number, max = Number.MAX_SAFE_INTEGER) {
  const error = max !== Number.MAX_SAFE_INTEGER ? `must be an integer from ${min} to ${max}`
    : `must be a ${min === 1 ? 'positive' : 'non-negative'} integer`;
  return z.int({ error }).min(min, { error }).max(max, { error });
}

export function oneOf<const T extends readonly [string, ...string[]]>(options: T) {
  return z.enum(options, { error: `must be one of ${options.join(', ')}` });
}

/** A file path; relative ones resolve against the config file's folder. */
export function filePath(dir: string, required?: string) {
  return text(required).transform((v) => (isAbsolute(v) ? v : resolve(dir, v)));
}

export const listen = () => parsedString(parseListen, 'must be a string "host:port" or "[v6]:port"');

/** A list of listen addresses; `fallback` when the key is left out. */
export function listenList(fallback: readonly string[]) {
  return z.array(listen(), { error: 'must be a list' }).prefault([...fallback]);
}

export const cidr = () => parsedString(parseCidrText, 'must be a string (a CIDR such as "10.20.0.0/16")');

export const upstream = () => parsedString(parseUpstream, 'must be a string such as "9.9.9.9" or "tls://1.1.1.1:853"');

export const hostname = () => parsedString(parseHostname, 'must be a host name such as "dns.city.example"');

export const duration = () => parsedString(parseDuration, 'must be a duration such as "90s", "30m", "4h" or "1d"');

/** A list source: an http(s) URL or a file path. */
export function listSource(dir: string) {
  return parsedString((value) => {
    if (value.trim() === '') return new Problem('must not be empty');
    const read = parseSourceUrl(value);
    if (read instanceof Problem) return read;
    if ('url' in read) return read.url;
    return isAbsolute(read.file) ? read.file : resolve(dir, read.file);
  });
}

/** One path or a list of them, normalised to a list (clientCerts.ca, clientCerts.crl). */
export function pathOrPaths(dir: string, messages: { readonly empty: string; readonly required?: string }) {
  return z.union([
    filePath(dir).transform((p) => [p]),
    z.array(filePath(dir)).min(1, { error: messages.empty }),
  ], { error: (issue) => (issue.input === undefined && messages.required !== undefined ? messages.required
    : 'must be a file path or a list of them') });
}

const MODE_WORDS = ['null', 'nxdomain', 'refused'] as const;
export type BlockMode = (typeof MODE_WORDS)[number] | { readonly ip: readonly string[] };

const AT_LEAST_ONE_IP = 'must give at least one IPv4 or IPv6 address';

/** null (0.0.0.0 / ::), nxdomain, refused, or { ip: [...] }: how a blocked name is answered. */
export function blockMode() {
  const ip = z.string({ error: (i) => `${quote(i.input)} is not an IP address` })
    .refine((v) => isIP(v), { error: (i) => `${quote(i.input)} is not an IP address` });
  const mode = z.union([
    z.enum(MODE_WORDS),
    z.strictObject({
      ip: z.array(ip, { error: (i) => (i.input === undefined ? AT_LEAST_ONE_IP : 'must be a list') }).min(1, { error: AT_LEAST_ONE_IP }),
    }),
  ], { error: (i) => `${quote(i.input)} must be null, nxdomain, refused or { ip: [...] }` });
  return mode.transform((m): BlockMode => m);
}
