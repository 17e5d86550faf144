/**
 * Flow tokens (RFC 5626 §5.2 style) carried in the user part of our Record-Route URI, so that
 * in-dialog requests reach a UA over the flow it used, not its (possibly private) Contact.
 *
 * One token names both ends of the dialog: the caller's flow (`a`, where the initial request
 * came from) and the callee's flow (`b`, where it was sent), plus the From tag of the initial
 * request (`ftag`) to tell the direction of later requests (RFC 3261 §12: the caller keeps its
 * From tag in every request it sends in the dialog).
 *
 * Integrity: HMAC-SHA256 over the encoded text with a secret, truncated to 80 bits; a token
 * that fails the check is ignored (the request is routed by its Request-URI).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
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

const MAC_BYTES = 10;
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

/** Encodes and verifies flow tokens with one secret. */
export class FlowTokenCodec {
  private readonly secret: Buffer;

  /** @param secret HMAC key; random per process when omitted (tokens then do not survive a restart). */
  constructor(secret?: Buffer) {
    this.secret = secret ?? randomBytes(32);
  }

  private mac(text: string): Buffer {
    return createHmac('sha256', this.secret).update(text).digest().subarray(0, MAC_BYTES);
  }

  /** Returns a token usable as a SIP URI user part (base64url: unreserved characters only). */
  encode(token: FlowToken): string {
    const text = [token.ftag, encFlow(token.a), encFlow(token.b)].join('|');
    return Buffer.concat([this.mac(text), Buffer.from(text)]).toString('base64url');
  }

  /** Decodes and authenticates a token; undefined when malformed or forged. */
  decode(value: string): FlowToken | undefined {
    if (value.length < 16 || value.length > 1024 || !/^[A-Za-z0-9_-]+$/.test(value)) return undefined;
    const raw = Buffer.from(value, 'base64url');
    if (raw.length <= MAC_BYTES) return undefined;
    const text = raw.subarray(MAC_BYTES).toString();
    if (!timingSafeEqual(raw.subarray(0, MAC_BYTES), this.mac(text))) return undefined;
    const parts = text.split('|');
    if (parts.length !== 11) return undefined;
    const a = decFlow(parts.slice(1, 6));
    const b = decFlow(parts.slice(6, 11));
    if (!a || !b) return undefined;
    return { ftag: parts[0], a, b };
  }
}
