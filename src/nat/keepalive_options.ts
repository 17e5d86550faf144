/**
 * The OPTIONS request used as a keepalive / qualify probe (RFC 3261 §11: "Querying for
 * Capabilities"). No I/O: the edge sends the request to the binding's received flow through
 * a client transaction.
 */
import type { SipHeader, SipRequest } from '../sip/message.js';
import type { ClientTransactionHandler } from '../transaction/types.js';
import type { Destination } from '../transport/types.js';
import type { Binding } from '../store/types.js';
import { canonicalHeaderKey } from '../sip/headers.js';
import { generateBranch, generateCallId, generateTag } from '../sip/ids.js';
import { formatHostPort, formatUri, parseUri } from '../sip/uri.js';

/** Our side of the flow the OPTIONS leaves on: the advertised address (see `advertisedFor`) and the transport. */
export interface KeepaliveLocal {
  /** Advertised host towards the binding (IPv6 without brackets). */
  host: string;
  port: number;
  /** `udp`, `tcp`, `tls`, `ws`, `wss` (any case). */
  transport: string;
}

function header(name: string, value: string): SipHeader {
  return { name, key: canonicalHeaderKey(name), value };
}

/**
 * The Request-URI for a binding: its Contact as registered. RFC 3261 §19.1.5: URI headers
 * (`?…`) are not allowed in a Request-URI, so they are dropped.
 */
function requestUriOf(contact: string): string {
  if (contact.indexOf('?') < 0) return contact;
  const p = parseUri(contact);
  if (!p.ok) return contact.slice(0, contact.indexOf('?'));
  return formatUri({ ...p.value, headers: {} });
}

/**
 * Builds the keepalive OPTIONS for a binding (RFC 3261 §11.1):
 * - Request-URI: the binding's Contact ("constructed by a UAC … exactly as any other request")
 * - `Via: SIP/2.0/<TRANSPORT> <our host:port>;branch=z9hG4bK…;rport` (RFC 3581, so a NATed
 *   UA answers to the address it saw)
 * - `Max-Forwards: 70`, `To: <AOR>` (no tag), `From: <sip:keepalive@<our host>>;tag=…`,
 *   a new `Call-ID`, `CSeq: 1 OPTIONS`
 * - `Contact: <sip:keepalive@<our host:port>[;transport=…]>`, `Accept: application/sdp`
 *   (§11.1: "An Accept header field SHOULD be included")
 * - `Route` headers from the binding's Path (RFC 3327 §5.4: requests to the contact are routed
 *   through the recorded path), then `Content-Length: 0`.
 * @param binding the binding to probe
 * @param local what represents us towards the binding (from `advertisedFor`) and the transport
 */
export function buildKeepaliveOptions(binding: Binding, local: KeepaliveLocal): SipRequest {
  const transport = local.transport.toLowerCase();
  const host = formatHostPort(local.host);
  const headers: SipHeader[] = [
    header('Via', `SIP/2.0/${transport.toUpperCase()} ${formatHostPort(local.host, local.port)};branch=${generateBranch()};rport`),
    header('Max-Forwards', '70'),
  ];
  if (binding.path !== undefined) for (const p of binding.path) headers.push(header('Route', p));
  headers.push(
    header('To', `<${binding.aor}>`),
    header('From', `<sip:keepalive@${host}>;tag=${generateTag()}`),
    header('Call-ID', generateCallId(host)),
    header('CSeq', '1 OPTIONS'),
    header('Contact', `<sip:keepalive@${formatHostPort(local.host, local.port)}${transport === 'udp' ? '' : ';transport=' + transport}>`),
    header('Accept', 'application/sdp'),
    header('Content-Length', '0'),
  );
  return { type: 'request', method: 'OPTIONS', uri: requestUriOf(binding.contact), version: 'SIP/2.0', headers, body: Buffer.alloc(0) };
}

/** How {@link probeWithOptions} reached its verdict. */
export type OptionsProbeOutcome = { answered: true; status: number } | { answered: false; reason: 'timeout' | 'transport' | 'terminated' | 'error' };

/**
 * Qualify: sends one keepalive OPTIONS on a client transaction (RFC 3261 §11) and resolves once:
 * any final response counts as alive; Timer F, a transport error, a transaction that ends without
 * a final response, or a throwing `sendRequest` count as a miss.
 * @param layer the transaction layer (anything with its `sendRequest`)
 */
export function probeWithOptions(
  layer: { sendRequest(request: SipRequest, dest: Destination, handler: ClientTransactionHandler): unknown },
  req: SipRequest,
  dest: Destination,
): Promise<OptionsProbeOutcome> {
  return new Promise((resolve) => {
    let done = false;
    const fin = (r: OptionsProbeOutcome): void => {
      if (!done) {
        done = true;
        resolve(r);
      }
    };
    try {
      layer.sendRequest(req, dest, {
        onResponse: (res) => {
          if (res.status >= 200) fin({ answered: true, status: res.status });
        },
        onTimeout: () => fin({ answered: false, reason: 'timeout' }),
        onTransportError: () => fin({ answered: false, reason: 'transport' }),
        onTerminated: () => fin({ answered: false, reason: 'terminated' }),
      });
    } catch {
      fin({ answered: false, reason: 'error' });
    }
  });
}
