/**
 * The decision `appfence check` explains, as data: who the client is (a valid device certificate
 * passes access.allow and beats the subnet, as on the TLS listeners), then per name the rule that
 * decided. GET /check on the admin listener answers it against the running generation.
 */
import { isIP } from 'node:net';
import type { Policy, RuleInfo } from '../policy/policy.js';
import type { Identifier, ClientIdentity } from '../identity/identify.js';
import type { CertificateIdentifier, CertIdentity } from '../identity/certificate.js';
import { normalizeName } from '../match/normalize.js';
import { UsageError } from '../errors.js';

export interface CheckInput {
  readonly client: string;
  readonly names: readonly string[];
  readonly cert?: string;
}

/** What a Generation provides (runtime/generation.ts): the same policy, identifier and CA as `serve`. */
export interface CheckDeps {
  readonly policy: Policy;
  readonly identifier: Identifier;
  /** null without `clientCerts`. */
  readonly certs: CertificateIdentifier | null;
}

export interface NameDecision {
  readonly name: string;
  readonly action: 'allow' | 'block';
  readonly rule: RuleInfo | null;
  /** An allow rule that won over this block rule. */
  readonly overridden: RuleInfo | null;
  readonly answer: string;
}

export interface CheckReport {
  readonly client: string;
  /** Outside access.allow without a valid device certificate: every query gets REFUSED. */
  readonly refused: boolean;
  readonly certificate?: { readonly used: boolean; readonly reason?: string };
  readonly group: string | null;
  readonly via: ClientIdentity['via'] | null;
  readonly device?: string;
  readonly blocked: boolean;
  readonly names: readonly NameDecision[];
}

export function checkReport(input: CheckInput, deps: CheckDeps): CheckReport {
  if (isIP(input.client) === 0) throw new UsageError(`client: "${input.client}" is not an IP address`);
  const names = input.names.map((raw) => {
    const name = normalizeName(raw);
    if (name === null) throw new UsageError(`"${raw}" is not a domain name`);
    return name;
  });
  let certificate: CheckReport['certificate'];
  let cert: CertIdentity | undefined;
  if (input.cert !== undefined) {
    if (deps.certs === null) throw new UsageError('cert: clientCerts is not configured, so a certificate cannot identify anything');
    const verdict = deps.certs.identifyPem(input.cert);
    if (verdict.identity !== undefined) {
      cert = verdict.identity;
      certificate = { used: true };
    } else {
      certificate = { used: false, reason: verdict.reason };
    }
  }
  const base = { client: input.client, ...(certificate === undefined ? {} : { certificate }) };
  // The same Identifier as the listeners: a valid certificate passes access.allow and beats the subnet.
  const who: ClientIdentity | null = deps.identifier.identify({ address: input.client, proto: cert === undefined ? 'udp' : 'dot', cert });
  if (who === null) {
    return { ...base, refused: true, group: null, via: null, blocked: true, names: names.map((name) =>
      ({ name, action: 'block', rule: null, overridden: null, answer: 'refused' })) };
  }
  const group = deps.policy.group(who.group);
  const decisions = names.map((name): NameDecision => {
    const e = deps.policy.explain(group, name);
    return e.action === 'block'
      ? { name, action: 'block', rule: e.rule, overridden: null, answer: e.answer }
      : { name, action: 'allow', rule: e.overridden === null ? null : e.rule, overridden: e.overridden, answer: 'forward' };
  });
  return {
    ...base,
    refused: false,
    group: group.name,
    via: who.via,
    ...(who.device === undefined ? {} : { device: who.device }),
    blocked: decisions.some((d) => d.action === 'block'),
    names: decisions,
  };
}
