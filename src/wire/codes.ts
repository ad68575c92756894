/** DNS numbers the wire code shares (RFC 1035, 3596, 6672, 6891, 4035): one definition each. */

export const TYPE_A = 1;
export const TYPE_NS = 2;
export const TYPE_CNAME = 5;
export const TYPE_SOA = 6;
export const TYPE_AAAA = 28;
export const TYPE_DNAME = 39;
export const TYPE_OPT = 41;
export const TYPE_ANY = 255;
export const CLASS_IN = 1;

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export const RCODE_NOERROR = RCODE.NOERROR;
export const RCODE_NXDOMAIN = RCODE.NXDOMAIN;

/** Bits of the 16-bit flags word (header bytes 2–3). */
export const QR = 0x8000;
export const OPCODE_MASK = 0x7800;
export const TC = 0x0200;
export const RD = 0x0100;
export const RA = 0x0080;
export const AD = 0x0020;
export const CD = 0x0010;
