/**
 * Is a new copy of a list source believable? A list host that answers an error page with status
 * 200, or a proxy that returns one word, must not replace a working list (found: a list replaced
 * by the one word `Forbidden` was accepted as a 1-rule list, and TikTok resolved for managed
 * devices). A copy is refused when it looks like an error page, or holds fewer than half the rules
 * of the last good copy of that source; the loader then keeps the last good copy.
 */

/** Why the text is not a list, or null when it may be one. */
export function errorPageReason(text: string): string | null {
  const head = text.slice(0, 1024).trimStart().toLowerCase();
  if (/^(<!doctype\s|<html|<\?xml|<head|<body)/.test(head) || /<(html|body|title)[\s>]/.test(head)) return 'looks like an HTML error page';
  if (/^[{[]/.test(head) && /"(error|message|status)"/.test(head)) return 'looks like a JSON error response';
  const trimmed = text.trim();
  // One token without a dot is no domain list: "Forbidden", "Unauthorized", "404".
  if (trimmed !== '' && !/\s/.test(trimmed) && !trimmed.includes('.')) return `is the single word "${trimmed.slice(0, 40)}"`;
  return null;
}

/** Why a copy with `rules` rules is refused against a last good copy with `lastGood`, or null. */
export function shrinkReason(rules: number, lastGood: number): string | null {
  return rules * 2 < lastGood ? 'has fewer than half the rules of its last good copy' : null;
}
