/**
 * Server TLS options for DoT and DoH from the config: certificate and key read from disk (so a
 * SIGHUP picks up renewed files) and, with `clientCerts`, the device CA and whether a certificate
 * is required. Read errors name the config key, like every other config problem.
 */
import { readFile } from 'node:fs/promises';
import { createSecureContext, type TlsOptions } from 'node:tls';
import type { ClientCertsConfig, TlsListenerConfig } from '../../config/types.js';
import { ConfigError } from '../../errors.js';
import { CertificateIdentifier } from '../../identity/certificate.js';

export async function readPem(file: string, keyPath: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(keyPath, `cannot read "${file}": ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
}

export async function serverTlsOptions(listener: TlsListenerConfig, keyPath: string, caPems: readonly string[] | null,
  clientCerts: ClientCertsConfig | undefined): Promise<TlsOptions> {
  const [cert, key] = await Promise.all([readPem(listener.cert, `${keyPath}.cert`), readPem(listener.key, `${keyPath}.key`)]);
  const options: TlsOptions = { cert, key, minVersion: 'TLSv1.2' };
  if (caPems !== null && clientCerts !== undefined) Object.assign(options, CertificateIdentifier.tlsOptions(caPems, clientCerts.require));
  try {
    // fail here, at load or reload, rather than on the first handshake: a key that does not match, a bad PEM
    createSecureContext(options);
  } catch (err) {
    throw new ConfigError(keyPath, `unusable certificate or key: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  return options;
}
