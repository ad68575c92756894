#!/usr/bin/env node
/**
 * argv → one command. The only place that exits the process with a code: commands return
 * their exit code or throw an AppfenceError whose exitCode says 2 (usage/config) or 1.
 */
import { readFileSync } from 'node:fs';
import { AppfenceError, UsageError } from './errors.js';
import { serveCommand } from './commands/serve.js';
import { checkCommand } from './commands/check.js';
import { listsCheckCommand } from './commands/lists-check.js';
import { tailCommand } from './commands/tail.js';
import { reportCommand } from './commands/report.js';

const HELP = `appfence — DNS resolver (UDP, TCP, DoT, DoH) that keeps TikTok off organisation-owned devices

Usage:
  appfence serve [--config FILE]                      run every listener in the config (embedded default without --config)
  appfence check [--config FILE] --client IP [--cert PEM] NAME...
                                                      explain the decision for each NAME (exit 0 all allowed, 1 any blocked)
  appfence lists check FILE...                        parse list files, report rejected lines (exit 1 if any)
  appfence tail [FILE]                                follow the block log (stdin or FILE), one readable line per event
  appfence report [--since DURATION] [--group G] [--format table|json|csv] [FILE...]
                                                      per device: blocked names, counts, first/last seen, TikTok app or web
  appfence --version | --help | COMMAND --help

Exit codes: 0 ok, 1 negative answer (check, lists check), 2 usage or config error.`;

export const COMMAND_HELP: Record<string, string> = {
  serve: `Usage: appfence serve [--config FILE]
  Runs DNS (UDP+TCP on every dns.listen address, DoT on dns.tls, DoH on dns.https) with the
  lists, groups and device-certificate trust (clientCerts) of FILE.
  Without --config: the embedded default (DNS on 127.0.0.1:1053, upstreams from /etc/resolv.conf,
  blocklists/tiktok.txt, every loopback client managed).
  SIGHUP reloads config and lists atomically; SIGTERM/SIGINT drain for up to 5 s and exit 0.`,
  check: `Usage: appfence check [--config FILE] --client IP [--cert PEM] NAME...
  Prints, per NAME, the decision the policy of FILE takes for a client at IP (and with the device
  certificate PEM): group, how it was identified, the matching rule and list, the answer.
  Exit 0 when all allowed, 1 when any is blocked or the client is refused, 2 on bad input.`,
  lists: `Usage: appfence lists check FILE...
  Parses list files (plain, hosts, adblock, *.x), prints the rule count and every rejected line as
  FILE:LINE. Exit 1 if any line was rejected, 2 if a file cannot be read.`,
  report: `Usage: appfence report [--since DURATION] [--group G] [--format table|json|csv] [FILE...]
  Summarises block logs (FILE..., e.g. blocks.log*: rotated and gzip-compressed copies are read too;
  stdin without FILE). One row per device (certificate CN, else client address): blocks and audits,
  first and last seen, top names, and whether the names show the TikTok APP (its API/telemetry zones,
  tiktokv.*) or only the WEB (tiktok.com pages, web assets, embeds). --since 90s|30m|4h|1d|2w or an ISO
  date; --group keeps one group's events. Exit 0, or 2 on bad input or an unreadable FILE.`,
  tail: `Usage: appfence tail [FILE]
  Follows the block log (JSON lines) from FILE, or from stdin, printing one readable line per event.`,
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(HELP + '\n');
    return command === undefined ? 2 : 0;
  }
  if (command === '--version' || command === '-v') {
    process.stdout.write(version() + '\n');
    return 0;
  }
  const help = COMMAND_HELP[command];
  if (help !== undefined && (rest.includes('--help') || rest.includes('-h'))) {
    process.stdout.write(help + '\n');
    return 0;
  }
  switch (command) {
    case 'serve':
      return serveCommand(rest);
    case 'check':
      return checkCommand(rest);
    case 'lists':
      if (rest[0] !== 'check') throw new UsageError(`unknown command "lists ${rest[0] ?? ''}"; try: appfence lists check FILE...`);
      return listsCheckCommand(rest.slice(1));
    case 'tail':
      return tailCommand(rest);
    case 'report':
      return reportCommand(rest);
    default:
      throw new UsageError(`unknown command "${command}"; see appfence --help`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    // serve keeps running on its own; every other command ends here
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof AppfenceError) {
      process.stderr.write(`appfence: ${err.message}\n`);
      process.exit(err.exitCode);
    }
    process.stderr.write(`appfence: unexpected error: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(70);
  },
);
