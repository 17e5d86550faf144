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
import { randomOctets } from '../sip/ids.js';
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
/** Version octet, also the GCM additional authenticated data. */
const HEAD = Buffer.from([VERSION]);
/** base64url alphabet. */
const TOKEN_CHARS = /^[A-Za-z0-9_-]+$/;
/**
 * Authentic tokens kept by {@link FlowTokenCodec}, value → token: the most recent 4,096 made or
 * decoded (the ACK and early in-dialog requests of a call find their token here; an older one
 * is simply decrypted again). About 1.5 MB at most.
 */
const DECODE_CACHE_SIZE = 4096;
const TRANSPORTS: ReadonlySet<string> = new Set(['udp', 'tcp', 'tls', 'ws', 'wss']);

function encFlow(f: TokenFlow): string {
  return f.transport + '|' + f.address + '|' + f.port + '|' + f.socketId + '|' + (f.connectionId ?? '');
}

function decFlow(parts: string[]): TokenFlow | undefined {
  const [transport, address, port, socketId, conn] = parts;
  const p = Number(port);
  if (!TRANSPORTS.has(transport) || !address || !Number.isInteger(p) || p <= 0 || p > 65535 || !socketId) return undefined;
  const flow: TokenFlow = { transport: transport as TransportProto, address, port: p, socketId };
  if (conn) flow.connectionId = Number(conn);
  return flow;
}

function copyFlow(f: TokenFlow): TokenFlow {
  const flow: TokenFlow = { transport: f.transport, address: f.address, port: f.port, socketId: f.socketId };
  if (f.connectionId !== undefined) flow.connectionId = f.connectionId;
  return flow;
}

/** Encodes, encrypts, authenticates and decodes flow tokens with one secret. */
export class FlowTokenCodec {
  private readonly key: Buffer;
  /** Authentic tokens already decoded or made here (same string → same token). */
  private readonly cache = new Map<string, FlowToken>();

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
    const text = token.ftag + '|' + encFlow(token.a) + '|' + encFlow(token.b);
    // A fresh 96-bit IV per token from the pooled CSPRNG (never reused under one key).
    const iv = randomOctets(IV_BYTES);
    const c = createCipheriv('aes-256-gcm', this.key, iv, { authTagLength: TAG_BYTES });
    c.setAAD(HEAD);
    const body = c.update(text, 'utf8');
    const fin = c.final();
    const tag = c.getAuthTag();
    const out = Buffer.allocUnsafe(1 + IV_BYTES + body.length + fin.length + TAG_BYTES);
    out[0] = VERSION;
    iv.copy(out, 1);
    body.copy(out, 1 + IV_BYTES);
    fin.copy(out, 1 + IV_BYTES + body.length);
    tag.copy(out, 1 + IV_BYTES + body.length + fin.length);
    const value = out.toString('base64url');
    // Remember what decode() would return (only when the text splits back into its 11 fields).
    let bars = 0;
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 124) bars++;
    if (bars === 10) this.remember(value, { ftag: token.ftag, a: copyFlow(token.a), b: copyFlow(token.b) });
    return value;
  }

  /** Caches a token known to be authentic (bounded: the oldest entry goes first). */
  private remember(value: string, token: FlowToken): void {
    if (this.cache.size >= DECODE_CACHE_SIZE) {
      const oldest = this.cache.keys().next();
      if (oldest.done !== true) this.cache.delete(oldest.value);
    }
    this.cache.set(value, token);
  }

  /** Decrypts and authenticates a token; undefined when malformed, forged or made with another secret. */
  decode(value: string): FlowToken | undefined {
    // In-dialog requests carry the same token again and again: an authentic one is decrypted once.
    const cached = this.cache.get(value);
    if (cached !== undefined) return cached;
    if (value.length < 16 || value.length > 1024 || !TOKEN_CHARS.test(value)) return undefined;
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
    const token = { ftag: parts[0], a, b };
    this.remember(value, token);
    return token;
  }
}
