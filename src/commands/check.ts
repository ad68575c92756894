/**
 * `appfence check`: the decision the policy takes for a client, told in full. It builds the same
 * Generation as `serve` and runs the same identify → decide code as the DNS pipeline
 * (Identifier.identify, then Policy.explain, which is blockingRuleId told verbosely). URL lists
 * come as `serve` gets them (lists/list-keeper.ts): downloaded, else the last good copy in
 * stateDir with a warning; check never writes stateDir (it may run as another user than serve).
 */
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { parse } from './args.js';
import { configFrom } from './load.js';
import { UsageError, ConfigError, ListSourceError } from '../errors.js';
import type { AppLogger } from '../log/logger.js';
import { ListKeeper } from '../lists/list-keeper.js';
import type { RuleInfo } from '../policy/policy.js';
import type { CertIdentity } from '../net/peer.js';
import { buildGeneration, retireGeneration, type Generation, type ListLoader } from '../runtime/generation.js';
import { createAppLogger } from '../log/logger.js';
import { explainWildcard } from '../match/wildcard.js';
import { normalizeName } from '../match/normalize.js';
import { checkReport } from '../runtime/check-report.js';

export async function checkCommand(args: readonly string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    config: { type: 'string', short: 'c' },
    client: { type: 'string' },
    cert: { type: 'string' },
    json: { type: 'boolean' },
  }, true);
  if (values.client === undefined) throw new UsageError('--client IP is required');
  if (isIP(values.client) === 0) throw new UsageError(`--client: "${values.client}" is not an IP address`);
  if (positionals.length === 0) throw new UsageError('name at least one NAME to check');
  const names = positionals.map((raw) => {
    const name = normalizeName(raw);
    if (name === null) throw new UsageError(`"${raw}" is not a domain name`);
    return name;
  });

  const config = await configFrom(values.config);
  let pem: string | undefined;
  if (values.cert !== undefined) {
    if (config.clientCerts === undefined) throw new ConfigError('clientCerts', 'not configured, so --cert cannot identify anything');
    const certFile = values.cert;
    pem = await readFile(certFile, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new UsageError(`--cert: cannot read "${certFile}": ${err.code ?? String(err)}`);
    });
  }
  // The generation `serve` would build from this config: same lists, policy, identifier, CAs.
  const quiet = ['error', 'fatal', 'silent'].includes(config.log.level) ? config.log.level : 'warn';
  const log = createAppLogger(quiet);
  const gen = await buildGeneration(config, log, undefined, undefined, listsOnce(log));
  try {
    if (values.json === true) {
      // The same JSON as the admin listener's GET /check.
      const report = checkReport({ client: values.client, names, ...(pem === undefined ? {} : { cert: pem }) }, gen);
      process.stdout.write(JSON.stringify(report, null, 2) + '\n');
      return report.blocked ? 1 : 0;
    }
    return explain(gen, values.client, pem, names);
  } finally {
    retireGeneration(gen, null);
  }
}

/**
 * The lists as `serve` would start with them. A URL source with neither a download nor a good copy
 * is an error here (serve starts without it): a decision explained without that list would mislead.
 */
function listsOnce(log: AppLogger): ListLoader {
  return async (lists, stateDir, guard) => {
    const keeper = new ListKeeper({ log: log.child({ component: 'lists' }), onRefresh: () => undefined });
    try {
      const loaded = await keeper.load(lists, stateDir, guard);
      for (const list of keeper.loadedStatus()) {
        const missing = list.sources.find((s) => s.state === 'missing');
        if (missing !== undefined) {
          throw new ListSourceError(missing.source, `${missing.lastError ?? 'no rules'}, and ${stateDir} holds no good copy: cannot check against lists.${list.name}`);
        }
      }
      return loaded;
    } finally {
      keeper.close();
    }
  };
}

function explain(gen: Generation, client: string, pem: string | undefined, names: readonly string[]): number {
  const out: string[] = [];
  // The certificate first: a valid one passes access.allow, on DoT/DoH as here.
  let cert: CertIdentity | undefined;
  if (pem !== undefined && gen.certs !== null) {
    const result = gen.certs.identifyPem(pem);
    if (result.identity !== undefined) cert = result.identity;
    else out.push(`certificate: not used (${result.reason})`);
  }
  const who = gen.identifier.identify({ address: client, proto: cert === undefined ? 'udp' : 'dot', cert });
  if (who === null) {
    out.push(`${client}: refused (not in access.allow); every query gets REFUSED`);
    process.stdout.write(out.join('\n') + '\n');
    return 1;
  }
  const { policy } = gen;
  const group = policy.group(who.group);
  let blocked = false;
  const width = Math.max(...names.map((n) => n.length));
  for (const name of names) {
    const e = policy.explain(group, name);
    if (e.action === 'block') blocked = true;
    const parts = [name.padEnd(width), e.action.toUpperCase().padEnd(5), `group=${e.group}`, `via=${who.via}`];
    if (who.device !== undefined) parts.push(`device=${who.device}`);
    if (e.action === 'block') parts.push(ruleText(e.rule), `answer=${e.answer}`);
    else if (e.overridden !== null) parts.push(`allowed by ${ruleText(e.rule)} over ${ruleText(e.overridden)}`);
    else parts.push('answer=forward');
    out.push(parts.join('  '));
  }
  process.stdout.write(out.join('\n') + '\n');
  return blocked ? 1 : 0;
}

function ruleText(r: RuleInfo | null): string {
  if (r === null) return 'rule=-';
  const text = `rule=${r.rule} list=${r.list} (${r.source}:${r.line})`;
  // `||p16-tiktok*.ibyteimg.com^`: say what the `*` covered, since the zone itself stays open.
  const m = /^\|\|([^.]*\*[^.]*)\.(.+)\^$/.exec(r.rule);
  return m === null ? text : `${text} [${explainWildcard(m[1]!, m[2]!)}]`;
}
