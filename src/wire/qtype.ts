/** Type numbers → mnemonics for logs and `check` (RFC 3597 TYPEnnn for the rest). Cold path only. */
const NAMES: Readonly<Record<number, string>> = {
  1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 13: 'HINFO', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV',
  35: 'NAPTR', 39: 'DNAME', 41: 'OPT', 43: 'DS', 46: 'RRSIG', 47: 'NSEC', 48: 'DNSKEY', 50: 'NSEC3', 52: 'TLSA',
  64: 'SVCB', 65: 'HTTPS', 99: 'SPF', 255: 'ANY', 257: 'CAA',
};

export function qtypeName(type: number): string {
  return NAMES[type] ?? `TYPE${type}`;
}

const NUMBERS = new Map(Object.entries(NAMES).map(([n, name]) => [name, Number(n)]));

export function qtypeNumber(name: string): number | undefined {
  const upper = name.toUpperCase();
  const known = NUMBERS.get(upper);
  if (known !== undefined) return known;
  const m = /^TYPE(\d{1,5})$/.exec(upper);
  return m && Number(m[1]) < 65536 ? Number(m[1]) : undefined;
}
