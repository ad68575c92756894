/**
 * The block page: small, self-contained HTML (inline CSS, no script, no external resource, so it renders
 * the same behind any filter and cannot leak the visit elsewhere) naming what was blocked and why, and
 * whom to ask. Every value is HTML-escaped: the host comes from the client's request.
 */
export interface BlockPageFacts {
  readonly host: string;
  readonly rule: string;
  readonly list: string;
  readonly group: string;
  /** Set when the host itself was allowed but its DNS alias (CNAME) was blocked. */
  readonly cname?: string | undefined;
  readonly contact: string;
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

export function blockPage(f: BlockPageFacts): string {
  const row = (label: string, value: string): string => `<tr><th>${label}</th><td>${escapeHtml(value)}</td></tr>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Blocked: ${escapeHtml(f.host)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em;color:#222}
h1{font-size:1.4em}table{border-collapse:collapse}th{text-align:left;padding:.2em 1em .2em 0;color:#555;font-weight:normal}</style>
</head><body>
<h1>This site is blocked on this device</h1>
<p>The organisation's policy for this device does not allow <strong>${escapeHtml(f.host)}</strong>.</p>
<table>
${row('Host', f.host)}${f.cname === undefined ? '' : row('Via alias', f.cname)}
${row('Rule', f.rule)}
${row('List', f.list)}
${row('Device group', f.group)}
</table>
${f.contact === '' ? '' : `<p>If you need this site for your work, contact: ${escapeHtml(f.contact)}</p>`}
</body></html>
`;
}
