/**
 * Flow tokens (RFC 5626 §5.2 style) carried in the user part of our Record-Route URI, so that
 * in-dialog requests reach a UA over the flow it used, not its (possibly private) Contact.
 *
 * One token names both ends of the dialog: the caller's flow (`a`, where the initial request
 * came from) and the callee's flow (`b`, where it was sent), plus the From tag of the initial
 * request (`ftag`) to tell the direction of later requests (RFC 3261 §12: the caller keeps its
 * From tag in every request it sends in the dialog).
 *
 * Protection: AES-256-GCM (authenticated encryption) with a key derived (HKDF-SHA256) from a
 * secret. RFC 5626 §5.2 requires the token to be integrity-protected ("the proxy MUST be able
 * to determine … that the flow token has not been tampered with"); encrypting it as well keeps
 * our own socket names and the peers' addresses — private `10.x` bind addresses included — out
 * of every Record-Route sent to the public side. A token that fails authentication decodes to
 * undefined (the request is routed by its Request-URI).
 *
 * Wire form: base64url(version(1) ‖ IV(12) ‖ ciphertext ‖ tag(16)); unreserved URI
 * characters only, so it is a valid SIP URI user part as it is.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import type { TransportProto } from '../transport/types.js';

/** One end of a dialog as a flow. */
export interface TokenFlow {
  transport: TransportProto;
  address: string;
  port: number;
  socketId: string;
  connectionId?: number;
}

/** Decoded token. */
export interface FlowToken {
  ftag: string;
  a: TokenFlow;
  b: TokenFlow;
}

const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const TRANSPORTS: ReadonlySet<string> = new Set(['udp', 'tcp', 'tls', 'ws', 'wss']);

function encFlow(f: TokenFlow): string {
  return [f.transport, f.address, f.port, f.socketId, f.connectionId ?? ''].join('|');
}

function decFlow(parts: string[]): TokenFlow | undefined {
  const [transport, address, port, socketId, conn] = parts;
  const p = Number(port);
  if (!TRANSPORTS.has(transport) || !address || !Number.isInteger(p) || p <= 0 || p > 65535 || !socketId) return undefined;
  const flow: TokenFlow = { transport: transport as TransportProto, address, port: p, socketId };
  if (conn) flow.connectionId = Number(conn);
  return flow;
}

/** Encodes, encrypts, authenticates and decodes flow tokens with one secret. */
export class FlowTokenCodec {
  private readonly key: Buffer;

  /**
   * @param secret key material (any length ≥ 16 octets; see flowtoken_secret.ts for a persistent
   *   one); random per process when omitted, and then tokens do not survive a restart
   */
  constructor(secret?: Buffer) {
    const ikm = secret ?? randomBytes(32);
    if (ikm.length < 16) throw new Error('flow token secret must be at least 16 octets');
    this.key = Buffer.from(hkdfSync('sha256', ikm, Buffer.from('sipedge'), Buffer.from('flow-token aes-256-gcm v1'), 32));
  }

  /** Returns a token usable as a SIP URI user part (base64url: unreserved characters only). */
  encode(token: FlowToken): string {
    const text = [token.ftag, encFlow(token.a), encFlow(token.b)].join('|');
    const iv = randomBytes(IV_BYTES);
    const head = Buffer.from([VERSION]);
    const c = createCipheriv('aes-256-gcm', this.key, iv, { authTagLength: TAG_BYTES });
    c.setAAD(head);
    const body = Buffer.concat([c.update(text, 'utf8'), c.final()]);
    return Buffer.concat([head, iv, body, c.getAuthTag()]).toString('base64url');
  }

  /** Decrypts and authenticates a token; undefined when malformed, forged or made with another secret. */
  decode(value: string): FlowToken | undefined {
    if (value.length < 16 || value.length > 1024 || !/^[A-Za-z0-9_-]+$/.test(value)) return undefined;
    const raw = Buffer.from(value, 'base64url');
    if (raw.length <= 1 + IV_BYTES + TAG_BYTES || raw[0] !== VERSION) return undefined;
    let text: string;
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, raw.subarray(1, 1 + IV_BYTES), { authTagLength: TAG_BYTES });
      d.setAAD(raw.subarray(0, 1));
      d.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
      text = Buffer.concat([d.update(raw.subarray(1 + IV_BYTES, raw.length - TAG_BYTES)), d.final()]).toString('utf8');
    } catch {
      return undefined; // authentication failed
    }
    const parts = text.split('|');
    if (parts.length !== 11) return undefined;
    const a = decFlow(parts.slice(1, 6));
    const b = decFlow(parts.slice(6, 11));
    if (!a || !b) return undefined;
    return { ftag: parts[0], a, b };
  }
}
