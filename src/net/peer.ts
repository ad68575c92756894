/**
 * The vocabulary of one request, shared by every front end (DNS now, the proxy and admin later):
 * who is asking (address, protocol, a verified device certificate) and what identity that gives.
 * It lives here rather than in dns/ or log/ so no front end has to import another to say "client".
 */

/** How a request arrived; the block log's `proto` field and the metrics label. */
export type Proto = 'udp' | 'tcp' | 'dot' | 'doh' | 'http' | 'connect';

export const PROTOS: readonly Proto[] = ['udp', 'tcp', 'dot', 'doh', 'http', 'connect'];

/** Why a client is in its group: a device certificate, its subnet, or neither (SPEC "Identification"). */
export type Via = 'cert' | 'subnet' | 'default';

export interface ClientIdentity {
  readonly group: string;
  readonly via: Via;
  /** Certificate subject CN, when via is 'cert'. */
  readonly device?: string;
}

/** What a verified device certificate says: its group and its device name. */
export interface CertIdentity extends ClientIdentity {
  readonly via: 'cert';
  /** Subject CN; '' when the certificate has none. */
  readonly device: string;
}

export interface Peer {
  readonly address: string;
  readonly proto: Proto;
  /** Set by TLS front ends when the client presented a valid device certificate (judged once per connection). */
  readonly cert?: CertIdentity | undefined;
}
