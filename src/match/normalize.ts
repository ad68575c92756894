/**
 * The one place a domain name is normalised, for list rules and queried names alike: lowercase,
 * one trailing dot dropped, IDNs as their xn-- form. `scanName` lets the list parser validate a
 * name inside a big list text without cutting it out first; `normalizeName` is the string API.
 */
import { domainToASCII } from 'node:url';

/** Results of scanName. */
export const NAME_INVALID = 0;
/** Valid and already lowercase ASCII. */
export const NAME_OK = 1;
/** Valid ASCII, but has uppercase letters. */
export const NAME_UPPER = 2;
/** Has non-ASCII characters: needs IDN conversion before it can be judged. */
export const NAME_NON_ASCII = 3;

const MAX_NAME = 253;
const MAX_LABEL = 63;

/**
 * Checks text[start, end) (no trailing dot) as a host name. Letters, digits, '-' and '_' are
 * allowed anywhere in a label: '_' appears in real service names (_dmarc, SRV owners) and labels
 * starting with '-' are queried in the wild (Umbrella top-100k), so a stricter LDH check would
 * only make such names unblockable.
 */
export function scanName(text: string, start: number, end: number): number {
  if (end <= start || end - start > MAX_NAME) return NAME_INVALID;
  let result = NAME_OK;
  let labelStart = start;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) { // '.'
      if (i === labelStart || i - labelStart > MAX_LABEL) return NAME_INVALID;
      labelStart = i + 1;
    } else if ((c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 95) {
      // a-z 0-9 - _
    } else if (c >= 65 && c <= 90) {
      if (result === NAME_OK) result = NAME_UPPER;
    } else if (c >= 0x80) {
      return NAME_NON_ASCII;
    } else {
      return NAME_INVALID;
    }
  }
  if (end === labelStart || end - labelStart > MAX_LABEL) return NAME_INVALID;
  return result;
}

/**
 * lowercase, strip one trailing dot, IDN → xn-- (domainToASCII only when non-ASCII is present);
 * null for names that are not valid domain names (empty labels, > 253 chars, label > 63, spaces ...).
 * Returns the argument itself when it is already normal, so the query path does not allocate.
 */
export function normalizeName(name: string): string | null {
  let end = name.length;
  if (end > 0 && name.charCodeAt(end - 1) === 46) end--;
  const kind = scanName(name, 0, end);
  if (kind === NAME_INVALID) return null;
  const body = end === name.length ? name : name.slice(0, end);
  if (kind === NAME_OK) return body;
  if (kind === NAME_UPPER) return body.toLowerCase();
  const ascii = domainToASCII(body);
  // domainToASCII returns '' for what WHATWG URL rules reject; what it lets through is checked again.
  if (ascii === '' || scanName(ascii, 0, ascii.length) !== NAME_OK) return null;
  return ascii;
}
