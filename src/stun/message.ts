/**
 * STUN message codec — RFC 8489 (Session Traversal Utilities for NAT).
 *
 * Pure syntax, no I/O and no knowledge of SIP (pjnath layering): a datagram goes in, a
 * {@link StunMessage} (or an error value with a stable code) comes out, and back.
 *
 * Wire format (RFC 8489 §5):
 *
 * ```
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |0 0|     STUN Message Type     |         Message Length        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                         Magic Cookie                          |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                     Transaction ID (96 bits)                  |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ```
 *
 * followed by TLV attributes, each value padded to a multiple of 4 octets (RFC 8489 §14).
 *
 * Decoding never throws: every failure is a {@link StunDecodeError} with a {@link StunDecodeErrorCode}.
 * Encoding throws `RangeError` only for programmer errors (a 13-bit method, an 11-byte transaction
 * id, an oversized attribute), never because of anything received from the network.
 */
import { createHmac, randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import * as zlib from 'node:zlib';
import { addressToBytes, bytesToAddress, type StunAddress, type StunFamily } from './address.js';

export type { StunAddress, StunFamily } from './address.js';

/** The fixed magic cookie, 0x2112A442 (RFC 8489 §5). */
export const MAGIC_COOKIE = 0x2112a442;
/** Size of the STUN header in octets (RFC 8489 §5). */
export const STUN_HEADER_LENGTH = 20;
/** The value XORed into the CRC-32 of FINGERPRINT: ASCII "STUN" (RFC 8489 §14.7). */
export const FINGERPRINT_XOR = 0x5354554e;

/** STUN methods (IANA "STUN Methods"; RFC 8489 §18.2). Only Binding is used by sipedge. */
export const StunMethod = {
  Binding: 0x001,
} as const;

/** Message class, from the C1/C0 bits of the message type (RFC 8489 §5). */
export type StunClass = 'request' | 'indication' | 'success' | 'error';

/** Attribute types (RFC 8489 §18.3; ICE's PRIORITY etc. are not listed: to us they are unknown). */
export const StunAttr = {
  MAPPED_ADDRESS: 0x0001,
  USERNAME: 0x0006,
  MESSAGE_INTEGRITY: 0x0008,
  ERROR_CODE: 0x0009,
  UNKNOWN_ATTRIBUTES: 0x000a,
  REALM: 0x0014,
  NONCE: 0x0015,
  MESSAGE_INTEGRITY_SHA256: 0x001c,
  PASSWORD_ALGORITHM: 0x001d,
  USERHASH: 0x001e,
  XOR_MAPPED_ADDRESS: 0x0020,
  PASSWORD_ALGORITHMS: 0x8002,
  ALTERNATE_DOMAIN: 0x8003,
  SOFTWARE: 0x8022,
  ALTERNATE_SERVER: 0x8023,
  FINGERPRINT: 0x8028,
} as const;

/**
 * The comprehension-required attributes (type < 0x8000, RFC 8489 §14) defined by RFC 8489 itself.
 * A plain RFC 8489 agent "understands" exactly these; see {@link unknownComprehensionRequired}.
 */
export const RFC8489_COMPREHENSION_REQUIRED: ReadonlySet<number> = new Set([
  StunAttr.MAPPED_ADDRESS,
  StunAttr.USERNAME,
  StunAttr.MESSAGE_INTEGRITY,
  StunAttr.ERROR_CODE,
  StunAttr.UNKNOWN_ATTRIBUTES,
  StunAttr.REALM,
  StunAttr.NONCE,
  StunAttr.MESSAGE_INTEGRITY_SHA256,
  StunAttr.PASSWORD_ALGORITHM,
  StunAttr.USERHASH,
  StunAttr.XOR_MAPPED_ADDRESS,
]);

/** One attribute as found on the wire: its type and its value without padding (RFC 8489 §14). */
export interface StunAttribute {
  readonly type: number;
  readonly value: Buffer;
}

/** A STUN message: header fields plus attributes in wire order. */
export interface StunMessage {
  /** 12-bit method (RFC 8489 §5), e.g. {@link StunMethod.Binding}. */
  method: number;
  class: StunClass;
  /** 96-bit transaction id, 12 octets (RFC 8489 §5). */
  transactionId: Buffer;
  /**
   * Attributes in wire order. {@link decodeStun} includes MESSAGE-INTEGRITY,
   * MESSAGE-INTEGRITY-SHA256 and FINGERPRINT here (so they can be inspected); {@link encodeStun}
   * skips those three and recomputes them from its options.
   */
  attributes: StunAttribute[];
}

/** What {@link decodeStun} returns on success: the message plus where the integrity attributes sit. */
export interface DecodedStunMessage extends StunMessage {
  /** The exact datagram decoded (a view, not a copy); needed to verify integrity and fingerprint. */
  raw: Buffer;
  /** Offset in `raw` of the MESSAGE-INTEGRITY attribute header, if present. */
  integrityOffset?: number;
  /** Offset in `raw` of the MESSAGE-INTEGRITY-SHA256 attribute header, if present. */
  integritySha256Offset?: number;
  /** Offset in `raw` of the FINGERPRINT attribute header, if present. */
  fingerprintOffset?: number;
  /** Attributes that followed MESSAGE-INTEGRITY(-SHA256) and were ignored (RFC 8489 §14.5, §14.6). */
  ignoredAfterIntegrity: number;
}

/** Stable codes of {@link decodeStun} failures. */
export type StunDecodeErrorCode =
  /** Fewer than 20 octets (RFC 8489 §5). */
  | 'TOO_SHORT'
  /** The two most significant bits are not zero (RFC 8489 §5, RFC 7983 first-byte demux). */
  | 'NOT_STUN'
  /** The magic cookie is not 0x2112A442 (RFC 8489 §5; RFC 3489 messages are not accepted). */
  | 'BAD_COOKIE'
  /** Message Length is not a multiple of 4 (RFC 8489 §5). */
  | 'BAD_LENGTH'
  /** Message Length disagrees with the datagram size. */
  | 'LENGTH_MISMATCH'
  /** An attribute (with its padding) runs past the end of the message (RFC 8489 §14). */
  | 'ATTRIBUTE_TRUNCATED'
  /** MESSAGE-INTEGRITY is not 20 octets, or MESSAGE-INTEGRITY-SHA256 not 16..32 in steps of 4 (RFC 8489 §14.5, §14.6). */
  | 'BAD_INTEGRITY'
  /** FINGERPRINT is not 4 octets, or is not the last attribute (RFC 8489 §14.7). */
  | 'BAD_FINGERPRINT';

/** A decode failure: a stable code, the octet offset where it was detected, and a human detail. */
export interface StunDecodeError {
  ok: false;
  code: StunDecodeErrorCode;
  offset: number;
  detail: string;
}

/** Result of {@link decodeStun}. */
export type StunDecodeResult = { ok: true; message: DecodedStunMessage } | StunDecodeError;

/** Stable codes of attribute readers (`read*`) and checks (`verify*`). */
export type StunAttributeErrorCode =
  /** The attribute is absent. */
  | 'ATTRIBUTE_MISSING'
  /** The attribute is present but its value does not follow its syntax. */
  | 'ATTRIBUTE_MALFORMED'
  /** The packet itself does not decode (see `detail`). */
  | 'NOT_STUN'
  /** MESSAGE-INTEGRITY(-SHA256) or FINGERPRINT does not match the message. */
  | 'MISMATCH';

/** Result of attribute readers and checks. */
export type StunResult<T> = { ok: true; value: T } | { ok: false; code: StunAttributeErrorCode; detail: string };

// ---------------------------------------------------------------------------------------------
// Header
// ---------------------------------------------------------------------------------------------

const CLASS_BITS: Record<StunClass, number> = { request: 0x000, indication: 0x010, success: 0x100, error: 0x110 };

/**
 * The 14-bit message type for a method and class: method bits M0–M11 interleaved with class bits
 * C0 (bit 4) and C1 (bit 8) (RFC 8489 §5, Figure 3).
 */
export function encodeMessageType(method: number, cls: StunClass): number {
  return (method & 0x00f) | ((method & 0x070) << 1) | ((method & 0xf80) << 2) | CLASS_BITS[cls];
}

/** Splits a message type into method and class (inverse of {@link encodeMessageType}). */
export function decodeMessageType(type: number): { method: number; class: StunClass } {
  const method = (type & 0x000f) | ((type & 0x00e0) >> 1) | ((type & 0x3e00) >> 2);
  const c = type & 0x0110;
  const cls: StunClass = c === 0x000 ? 'request' : c === 0x010 ? 'indication' : c === 0x100 ? 'success' : 'error';
  return { method, class: cls };
}

/**
 * Fast demultiplexing test: could this datagram be STUN (rather than SIP, RTP, DTLS or a CRLF
 * keepalive on the same port)? True when the first byte is 0–3 (RFC 7983 §7 / RFC 5764 §5.1.2:
 * the two leading zero bits of the message type), the datagram holds at least a header, and the
 * magic cookie is present (RFC 8489 §5). A true result still needs {@link decodeStun}.
 */
export function isStunPacket(buf: Uint8Array): boolean {
  return (
    buf.length >= STUN_HEADER_LENGTH &&
    buf[0] <= 3 &&
    buf[4] === 0x21 &&
    buf[5] === 0x12 &&
    buf[6] === 0xa4 &&
    buf[7] === 0x42
  );
}

/** A fresh cryptographically random 96-bit transaction id (RFC 8489 §5). */
export function newTransactionId(): Buffer {
  return randomBytes(12);
}

// ---------------------------------------------------------------------------------------------
// Decode
// ---------------------------------------------------------------------------------------------

function fail(code: StunDecodeErrorCode, offset: number, detail: string): StunDecodeError {
  return { ok: false, code, offset, detail };
}

/**
 * Decodes one STUN message from a datagram (RFC 8489 §5, §6.3, §14). Never throws.
 *
 * Checks: header size, leading zero bits, magic cookie, Message Length a multiple of 4 and equal to
 * the octets that follow the header, every attribute inside the message. Per RFC 8489 §14.5 and
 * §14.6, attributes after MESSAGE-INTEGRITY other than MESSAGE-INTEGRITY-SHA256 and FINGERPRINT are
 * ignored (counted in `ignoredAfterIntegrity`); FINGERPRINT must be last (§14.7). Padding octets
 * are ignored whatever their value (§14). Integrity and fingerprint values are *not* checked here:
 * see {@link verifyIntegrity} and {@link verifyFingerprint}.
 *
 * The returned attribute values are views into `buf`; copy them if `buf` will be reused.
 */
export function decodeStun(buf: Buffer): StunDecodeResult {
  if (buf.length < STUN_HEADER_LENGTH) return fail('TOO_SHORT', 0, `${buf.length} octets, a STUN header is 20`);
  if ((buf[0] & 0xc0) !== 0) return fail('NOT_STUN', 0, 'the two most significant bits must be zero');
  if (buf.readUInt32BE(4) !== MAGIC_COOKIE) return fail('BAD_COOKIE', 4, 'magic cookie is not 0x2112A442');
  const length = buf.readUInt16BE(2);
  if (length % 4 !== 0) return fail('BAD_LENGTH', 2, `message length ${length} is not a multiple of 4`);
  if (STUN_HEADER_LENGTH + length !== buf.length) {
    return fail('LENGTH_MISMATCH', 2, `message length ${length} but ${buf.length - STUN_HEADER_LENGTH} octets follow the header`);
  }
  const { method, class: cls } = decodeMessageType(buf.readUInt16BE(0));
  const message: DecodedStunMessage = {
    method,
    class: cls,
    transactionId: buf.subarray(8, 20),
    attributes: [],
    raw: buf,
    ignoredAfterIntegrity: 0,
  };
  let off = STUN_HEADER_LENGTH;
  while (off < buf.length) {
    if (buf.length - off < 4) return fail('ATTRIBUTE_TRUNCATED', off, 'attribute header truncated');
    const type = buf.readUInt16BE(off);
    const len = buf.readUInt16BE(off + 2);
    const padded = (len + 3) & ~3;
    if (off + 4 + padded > buf.length) {
      return fail('ATTRIBUTE_TRUNCATED', off, `attribute 0x${hex4(type)} of length ${len} runs past the end of the message`);
    }
    if (message.fingerprintOffset !== undefined) {
      return fail('BAD_FINGERPRINT', off, 'FINGERPRINT is not the last attribute');
    }
    const value = buf.subarray(off + 4, off + 4 + len);
    const afterIntegrity = message.integrityOffset !== undefined || message.integritySha256Offset !== undefined;
    if (type === StunAttr.FINGERPRINT) {
      if (len !== 4) return fail('BAD_FINGERPRINT', off, `FINGERPRINT length ${len}, must be 4`);
      message.fingerprintOffset = off;
      message.attributes.push({ type, value });
    } else if (type === StunAttr.MESSAGE_INTEGRITY_SHA256) {
      if (message.integritySha256Offset !== undefined) {
        message.ignoredAfterIntegrity++;
      } else {
        if (len < 16 || len > 32 || len % 4 !== 0) {
          return fail('BAD_INTEGRITY', off, `MESSAGE-INTEGRITY-SHA256 length ${len}, must be 16..32 and a multiple of 4`);
        }
        message.integritySha256Offset = off;
        message.attributes.push({ type, value });
      }
    } else if (afterIntegrity) {
      // RFC 8489 §14.5: "agents MUST ignore all other attributes that follow MESSAGE-INTEGRITY, with
      // the exception of the MESSAGE-INTEGRITY-SHA256 and FINGERPRINT attributes."
      message.ignoredAfterIntegrity++;
    } else if (type === StunAttr.MESSAGE_INTEGRITY) {
      if (len !== 20) return fail('BAD_INTEGRITY', off, `MESSAGE-INTEGRITY length ${len}, must be 20`);
      message.integrityOffset = off;
      message.attributes.push({ type, value });
    } else {
      message.attributes.push({ type, value });
    }
    off += 4 + padded;
  }
  return { ok: true, message };
}

function hex4(n: number): string {
  return n.toString(16).padStart(4, '0');
}

// ---------------------------------------------------------------------------------------------
// Encode
// ---------------------------------------------------------------------------------------------

/** Options of {@link encodeStun}. */
export interface StunEncodeOptions {
  /**
   * Key for MESSAGE-INTEGRITY / MESSAGE-INTEGRITY-SHA256. Short-term credential: the password
   * (RFC 8489 §9.1.1); long-term: see {@link longTermKey}.
   */
  integrityKey?: Buffer;
  /** Which integrity attribute(s) to add when `integrityKey` is set. Default `sha1` (MESSAGE-INTEGRITY). */
  integrity?: 'sha1' | 'sha256' | 'both';
  /** Append FINGERPRINT (RFC 8489 §14.7), last. */
  fingerprint?: boolean;
  /**
   * Octet used for attribute padding. RFC 8489 §14 says padding "MUST be set to zero on sending";
   * RFC 5389 allowed any value and the RFC 5769 vectors pad with 0x20, so tests reproducing them
   * byte for byte set this. Default 0.
   */
  paddingByte?: number;
}

const RECOMPUTED: ReadonlySet<number> = new Set([
  StunAttr.MESSAGE_INTEGRITY,
  StunAttr.MESSAGE_INTEGRITY_SHA256,
  StunAttr.FINGERPRINT,
]);

/**
 * Encodes a STUN message (RFC 8489 §5, §14), appending MESSAGE-INTEGRITY (HMAC-SHA1, §14.5),
 * MESSAGE-INTEGRITY-SHA256 (§14.6) and FINGERPRINT (CRC-32 XOR 0x5354554E, §14.7) as `opts` asks,
 * in that order. Integrity or fingerprint attributes present in `msg.attributes` are skipped (they
 * are always recomputed), so a decoded message re-encodes with the same options to the same octets.
 *
 * @throws RangeError for programmer errors only: method over 12 bits, transaction id not 12
 * octets, an attribute value over 65535 octets or a message over 65535 octets.
 */
export function encodeStun(msg: StunMessage, opts: StunEncodeOptions = {}): Buffer {
  if (!Number.isInteger(msg.method) || msg.method < 0 || msg.method > 0xfff) throw new RangeError(`STUN method ${msg.method} out of range`);
  if (msg.transactionId.length !== 12) throw new RangeError(`STUN transaction id must be 12 octets, got ${msg.transactionId.length}`);
  const attrs = msg.attributes.filter((a) => !RECOMPUTED.has(a.type));
  const mode = opts.integrityKey ? (opts.integrity ?? 'sha1') : undefined;
  const sha1 = mode === 'sha1' || mode === 'both';
  const sha256 = mode === 'sha256' || mode === 'both';
  let bodyLen = 0;
  for (const a of attrs) {
    if (a.value.length > 0xffff) throw new RangeError(`STUN attribute 0x${hex4(a.type)} value over 65535 octets`);
    bodyLen += 4 + ((a.value.length + 3) & ~3);
  }
  const total = STUN_HEADER_LENGTH + bodyLen + (sha1 ? 24 : 0) + (sha256 ? 36 : 0) + (opts.fingerprint ? 8 : 0);
  if (total - STUN_HEADER_LENGTH > 0xffff) throw new RangeError('STUN message over 65535 octets');
  const out = Buffer.alloc(total, opts.paddingByte ?? 0);
  out.writeUInt16BE(encodeMessageType(msg.method, msg.class), 0);
  out.writeUInt32BE(MAGIC_COOKIE, 4);
  msg.transactionId.copy(out, 8);
  let off = STUN_HEADER_LENGTH;
  for (const a of attrs) {
    out.writeUInt16BE(a.type & 0xffff, off);
    out.writeUInt16BE(a.value.length, off + 2);
    a.value.copy(out, off + 4);
    off += 4 + ((a.value.length + 3) & ~3);
  }
  if (sha1 && opts.integrityKey) {
    // RFC 8489 §14.5: the HMAC covers the message up to the attribute preceding MESSAGE-INTEGRITY,
    // with the header length already counting MESSAGE-INTEGRITY (but not what follows it).
    out.writeUInt16BE(off + 24 - STUN_HEADER_LENGTH, 2);
    out.writeUInt16BE(StunAttr.MESSAGE_INTEGRITY, off);
    out.writeUInt16BE(20, off + 2);
    hmac('sha1', opts.integrityKey, out.subarray(0, off)).copy(out, off + 4);
    off += 24;
  }
  if (sha256 && opts.integrityKey) {
    // RFC 8489 §14.6: same rule, length counting MESSAGE-INTEGRITY-SHA256 (32 octets, untruncated).
    out.writeUInt16BE(off + 36 - STUN_HEADER_LENGTH, 2);
    out.writeUInt16BE(StunAttr.MESSAGE_INTEGRITY_SHA256, off);
    out.writeUInt16BE(32, off + 2);
    hmac('sha256', opts.integrityKey, out.subarray(0, off)).copy(out, off + 4);
    off += 36;
  }
  out.writeUInt16BE(total - STUN_HEADER_LENGTH, 2);
  if (opts.fingerprint) {
    // RFC 8489 §14.7: CRC-32 of the message up to (not including) FINGERPRINT, XOR 0x5354554e,
    // with the header length already including FINGERPRINT.
    out.writeUInt16BE(StunAttr.FINGERPRINT, off);
    out.writeUInt16BE(4, off + 2);
    out.writeUInt32BE((crc32(out.subarray(0, off)) ^ FINGERPRINT_XOR) >>> 0, off + 4);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Integrity and fingerprint
// ---------------------------------------------------------------------------------------------

function hmac(alg: 'sha1' | 'sha256', key: Buffer, data: Buffer): Buffer {
  return createHmac(alg, key).update(data).digest();
}

let crcTable: Uint32Array | undefined;

/** Table-driven IEEE 802.3 CRC-32, for runtimes without `zlib.crc32` (Node < 20.15). */
export function crc32Portable(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = crcTable[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

const nativeCrc32 = (zlib as { crc32?: (d: Uint8Array) => number }).crc32;

/**
 * IEEE 802.3 CRC-32, the one FINGERPRINT uses (RFC 8489 §14.7 via ITU-T V.42): `zlib.crc32` when
 * the runtime has it (Node ≥ 20.15 / 22.2), else {@link crc32Portable}.
 */
export function crc32(data: Uint8Array): number {
  return typeof nativeCrc32 === 'function' ? nativeCrc32(data) >>> 0 : crc32Portable(data);
}

/**
 * The long-term credential key for MESSAGE-INTEGRITY: MD5(username ":" realm ":" password)
 * (RFC 8489 §9.2.2, RFC 5389 §15.4). The caller applies OpaqueString / SASLprep to the password
 * beforehand; this function does no string preparation.
 */
export function longTermKey(username: string, realm: string, password: string): Buffer {
  return createHash('md5').update(`${username}:${realm}:${password}`, 'utf8').digest();
}

function asDecoded(packet: Buffer | DecodedStunMessage): { ok: true; message: DecodedStunMessage } | { ok: false; code: 'NOT_STUN'; detail: string } {
  if (Buffer.isBuffer(packet)) {
    const r = decodeStun(packet);
    return r.ok ? r : { ok: false, code: 'NOT_STUN', detail: `${r.code}: ${r.detail}` };
  }
  return { ok: true, message: packet };
}

/**
 * Checks MESSAGE-INTEGRITY (HMAC-SHA1, RFC 8489 §14.5) or MESSAGE-INTEGRITY-SHA256 (§14.6) with
 * `key` (short-term: the password, §9.1; long-term: {@link longTermKey}). `algorithm` `auto`
 * (default) checks MESSAGE-INTEGRITY-SHA256 when present, else MESSAGE-INTEGRITY. The comparison
 * is constant-time. Never throws.
 */
export function verifyIntegrity(
  packet: Buffer | DecodedStunMessage,
  key: Buffer,
  algorithm: 'auto' | 'sha1' | 'sha256' = 'auto',
): StunResult<true> {
  const d = asDecoded(packet);
  if (!d.ok) return d;
  const m = d.message;
  const useSha256 = algorithm === 'sha256' || (algorithm === 'auto' && m.integritySha256Offset !== undefined);
  const at = useSha256 ? m.integritySha256Offset : m.integrityOffset;
  if (at === undefined) {
    return { ok: false, code: 'ATTRIBUTE_MISSING', detail: useSha256 ? 'no MESSAGE-INTEGRITY-SHA256' : 'no MESSAGE-INTEGRITY' };
  }
  const len = m.raw.readUInt16BE(at + 2);
  const covered = Buffer.from(m.raw.subarray(0, at));
  covered.writeUInt16BE(at + 4 + len - STUN_HEADER_LENGTH, 2);
  const expected = hmac(useSha256 ? 'sha256' : 'sha1', key, covered).subarray(0, len);
  const actual = m.raw.subarray(at + 4, at + 4 + len);
  return timingSafeEqual(expected, actual) ? { ok: true, value: true } : { ok: false, code: 'MISMATCH', detail: 'message integrity does not match' };
}

/** Checks FINGERPRINT (RFC 8489 §14.7). `ATTRIBUTE_MISSING` when absent. Never throws. */
export function verifyFingerprint(packet: Buffer | DecodedStunMessage): StunResult<true> {
  const d = asDecoded(packet);
  if (!d.ok) return d;
  const m = d.message;
  const at = m.fingerprintOffset;
  if (at === undefined) return { ok: false, code: 'ATTRIBUTE_MISSING', detail: 'no FINGERPRINT' };
  const expected = (crc32(m.raw.subarray(0, at)) ^ FINGERPRINT_XOR) >>> 0;
  return m.raw.readUInt32BE(at + 4) === expected ? { ok: true, value: true } : { ok: false, code: 'MISMATCH', detail: 'FINGERPRINT does not match' };
}

// ---------------------------------------------------------------------------------------------
// Attributes
// ---------------------------------------------------------------------------------------------

/** The first attribute of `type`, if any (RFC 8489 §14: only the first occurrence is processed). */
export function findAttribute(msg: StunMessage, type: number): StunAttribute | undefined {
  return msg.attributes.find((a) => a.type === type);
}

/**
 * Comprehension-required attribute types (0x0000–0x7FFF, RFC 8489 §14) in `msg` that are not in
 * `understood`, each once, in order of appearance. Non-empty means a request must be answered with
 * 420 (Unknown Attribute) listing them (RFC 8489 §6.3.1), and a response must be discarded.
 */
export function unknownComprehensionRequired(msg: StunMessage, understood: ReadonlySet<number> = RFC8489_COMPREHENSION_REQUIRED): number[] {
  const out: number[] = [];
  for (const a of msg.attributes) {
    if (a.type < 0x8000 && !understood.has(a.type) && !out.includes(a.type)) out.push(a.type);
  }
  return out;
}

const FAMILY_CODE: Record<StunFamily, number> = { IPv4: 0x01, IPv6: 0x02 };

function addressValue(address: string, port: number, transactionId: Buffer | undefined): Buffer {
  const bytes = addressToBytes(address, true);
  if (!bytes) throw new RangeError(`not an IP address: ${address}`);
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new RangeError(`port ${port} out of range`);
  const v = Buffer.alloc(4 + bytes.length);
  v[1] = bytes.length === 4 ? FAMILY_CODE.IPv4 : FAMILY_CODE.IPv6;
  if (transactionId) {
    // RFC 8489 §14.2: X-Port is the port XOR the 16 most significant bits of the magic cookie;
    // X-Address is the address XOR the magic cookie (IPv4) or the cookie followed by the
    // transaction id (IPv6).
    v.writeUInt16BE(port ^ (MAGIC_COOKIE >>> 16), 2);
    const mask = xorMask(transactionId);
    for (let i = 0; i < bytes.length; i++) v[4 + i] = bytes[i] ^ mask[i];
  } else {
    v.writeUInt16BE(port, 2);
    bytes.copy(v, 4);
  }
  return v;
}

function xorMask(transactionId: Buffer): Buffer {
  const mask = Buffer.alloc(16);
  mask.writeUInt32BE(MAGIC_COOKIE, 0);
  transactionId.copy(mask, 4, 0, 12);
  return mask;
}

function readAddress(msg: StunMessage, type: number, xor: boolean): StunResult<StunAddress> {
  const a = findAttribute(msg, type);
  const name = xor ? 'XOR-MAPPED-ADDRESS' : 'MAPPED-ADDRESS';
  if (!a) return { ok: false, code: 'ATTRIBUTE_MISSING', detail: `no ${name}` };
  const v = a.value;
  if (v.length < 4) return { ok: false, code: 'ATTRIBUTE_MALFORMED', detail: `${name} shorter than 4 octets` };
  const fam = v[1];
  const size = fam === 0x01 ? 4 : fam === 0x02 ? 16 : 0;
  if (size === 0) return { ok: false, code: 'ATTRIBUTE_MALFORMED', detail: `${name} family 0x${fam.toString(16)}` };
  if (v.length !== 4 + size) return { ok: false, code: 'ATTRIBUTE_MALFORMED', detail: `${name} length ${v.length} for family 0x0${fam}` };
  const bytes = Buffer.from(v.subarray(4));
  let port = v.readUInt16BE(2);
  if (xor) {
    port ^= MAGIC_COOKIE >>> 16;
    const mask = xorMask(msg.transactionId);
    for (let i = 0; i < size; i++) bytes[i] ^= mask[i];
  }
  return { ok: true, value: { family: size === 4 ? 'IPv4' : 'IPv6', address: bytesToAddress(bytes) ?? '', port } };
}

/**
 * An XOR-MAPPED-ADDRESS attribute (RFC 8489 §14.2) for `addr`, obfuscated with the magic cookie and
 * `transactionId`. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is encoded as IPv4.
 * @throws RangeError when `addr.address` is not an IP literal or the port is out of range.
 */
export function xorMappedAddressAttribute(addr: { address: string; port: number }, transactionId: Buffer): StunAttribute {
  return { type: StunAttr.XOR_MAPPED_ADDRESS, value: addressValue(addr.address, addr.port, transactionId) };
}

/**
 * A MAPPED-ADDRESS attribute (RFC 8489 §14.1; kept for RFC 3489 compatibility, §12).
 * @throws RangeError when `addr.address` is not an IP literal or the port is out of range.
 */
export function mappedAddressAttribute(addr: { address: string; port: number }): StunAttribute {
  return { type: StunAttr.MAPPED_ADDRESS, value: addressValue(addr.address, addr.port, undefined) };
}

/** Reads XOR-MAPPED-ADDRESS (RFC 8489 §14.2). Never throws. */
export function readXorMappedAddress(msg: StunMessage): StunResult<StunAddress> {
  return readAddress(msg, StunAttr.XOR_MAPPED_ADDRESS, true);
}

/** Reads MAPPED-ADDRESS (RFC 8489 §14.1). Never throws. */
export function readMappedAddress(msg: StunMessage): StunResult<StunAddress> {
  return readAddress(msg, StunAttr.MAPPED_ADDRESS, false);
}

/** Truncates UTF-8 text to at most `maxBytes` octets without splitting a character. */
function utf8Limit(text: string, maxBytes: number): Buffer {
  const b = Buffer.from(text, 'utf8');
  if (b.length <= maxBytes) return b;
  let end = maxBytes;
  while (end > 0 && (b[end] & 0xc0) === 0x80) end--;
  return b.subarray(0, end);
}

/**
 * A SOFTWARE attribute (RFC 8489 §14.14): UTF-8 text, "fewer than 128 characters (which can be as
 * long as 509 when encoding them and as long as 763 bytes when decoding them)". Longer text is
 * truncated to 127 characters / 509 octets rather than rejected.
 */
export function softwareAttribute(text: string): StunAttribute {
  return { type: StunAttr.SOFTWARE, value: utf8Limit(Array.from(text).slice(0, 127).join(''), 509) };
}

/**
 * A USERNAME attribute (RFC 8489 §14.3): UTF-8, less than 509 octets.
 * @throws RangeError when the encoded username is 509 octets or longer.
 */
export function usernameAttribute(username: string): StunAttribute {
  const value = Buffer.from(username, 'utf8');
  if (value.length >= 509) throw new RangeError('USERNAME must be less than 509 octets');
  return { type: StunAttr.USERNAME, value };
}

function readText(msg: StunMessage, type: number, name: string, maxBytes: number): StunResult<string> {
  const a = findAttribute(msg, type);
  if (!a) return { ok: false, code: 'ATTRIBUTE_MISSING', detail: `no ${name}` };
  if (a.value.length > maxBytes) return { ok: false, code: 'ATTRIBUTE_MALFORMED', detail: `${name} longer than ${maxBytes} octets` };
  return { ok: true, value: a.value.toString('utf8') };
}

/** Reads SOFTWARE (RFC 8489 §14.14; up to 763 octets accepted on decoding). Never throws. */
export function readSoftware(msg: StunMessage): StunResult<string> {
  return readText(msg, StunAttr.SOFTWARE, 'SOFTWARE', 763);
}

/** Reads USERNAME (RFC 8489 §14.3; less than 509 octets, 513 accepted as RFC 5389 allowed). Never throws. */
export function readUsername(msg: StunMessage): StunResult<string> {
  return readText(msg, StunAttr.USERNAME, 'USERNAME', 513);
}

/** An error code (300–699) and its reason phrase, from ERROR-CODE (RFC 8489 §14.8). */
export interface StunErrorCodeValue {
  code: number;
  reason: string;
}

/** Reason phrases RFC 8489 §14.8 suggests for the codes it defines. */
export const STUN_ERROR_REASONS: Readonly<Record<number, string>> = {
  300: 'Try Alternate',
  400: 'Bad Request',
  401: 'Unauthenticated',
  420: 'Unknown Attribute',
  438: 'Stale Nonce',
  500: 'Server Error',
};

/**
 * An ERROR-CODE attribute (RFC 8489 §14.8): 21 reserved zero bits, the class (hundreds, 3–6) in 3
 * bits, the number (0–99) in 8 bits, then a UTF-8 reason phrase (fewer than 128 characters).
 * `reason` defaults to the RFC's suggested phrase.
 * @throws RangeError when `code` is not an integer in 300..699.
 */
export function errorCodeAttribute(code: number, reason?: string): StunAttribute {
  if (!Number.isInteger(code) || code < 300 || code > 699) throw new RangeError(`STUN error code ${code} out of range 300..699`);
  const text = utf8Limit(Array.from(reason ?? STUN_ERROR_REASONS[code] ?? '').slice(0, 127).join(''), 509);
  const value = Buffer.alloc(4 + text.length);
  value[2] = Math.floor(code / 100);
  value[3] = code % 100;
  text.copy(value, 4);
  return { type: StunAttr.ERROR_CODE, value };
}

/** Reads ERROR-CODE (RFC 8489 §14.8). Never throws. */
export function readErrorCode(msg: StunMessage): StunResult<StunErrorCodeValue> {
  const a = findAttribute(msg, StunAttr.ERROR_CODE);
  if (!a) return { ok: false, code: 'ATTRIBUTE_MISSING', detail: 'no ERROR-CODE' };
  if (a.value.length < 4 || a.value.length > 4 + 763) return { ok: false, code: 'ATTRIBUTE_MALFORMED', detail: `ERROR-CODE length ${a.value.length}` };
  const cls = a.value[2] & 0x07;
  const num = a.value[3];
  if (cls < 3 || cls > 6 || num > 99) return { ok: false, code: 'ATTRIBUTE_MALFORMED', detail: `ERROR-CODE class ${cls} number ${num}` };
  return { ok: true, value: { code: cls * 100 + num, reason: a.value.subarray(4).toString('utf8') } };
}

/**
 * An UNKNOWN-ATTRIBUTES attribute (RFC 8489 §14.9): a list of 16-bit attribute types, padded
 * normally (not by repeating the last type as RFC 3489 did).
 */
export function unknownAttributesAttribute(types: readonly number[]): StunAttribute {
  const value = Buffer.alloc(types.length * 2);
  types.forEach((t, i) => value.writeUInt16BE(t & 0xffff, i * 2));
  return { type: StunAttr.UNKNOWN_ATTRIBUTES, value };
}

/** Reads UNKNOWN-ATTRIBUTES (RFC 8489 §14.9). Never throws. */
export function readUnknownAttributes(msg: StunMessage): StunResult<number[]> {
  const a = findAttribute(msg, StunAttr.UNKNOWN_ATTRIBUTES);
  if (!a) return { ok: false, code: 'ATTRIBUTE_MISSING', detail: 'no UNKNOWN-ATTRIBUTES' };
  if (a.value.length % 2 !== 0) return { ok: false, code: 'ATTRIBUTE_MALFORMED', detail: 'UNKNOWN-ATTRIBUTES length is odd' };
  const out: number[] = [];
  for (let i = 0; i < a.value.length; i += 2) out.push(a.value.readUInt16BE(i));
  return { ok: true, value: out };
}
