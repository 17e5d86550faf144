/**
 * Call-ID dispatch for several SIP worker processes sharing one UDP socket (src/cluster/).
 *
 * The kernel hands each datagram of a shared socket to whichever worker reads first, but a
 * transaction and its dialog live in one worker. So every SIP datagram belongs to an **owner**:
 * `FNV-1a-32(Call-ID octets) mod N`. Every message of a call — requests, retransmissions,
 * responses, CANCEL, ACK, in-dialog requests in both directions — carries the same Call-ID
 * (RFC 3261 §8.1.1.4, §12.2.1.1), so they all reach the same worker whichever one read them.
 * Requests we originate ourselves (keepalive OPTIONS) use a Call-ID this worker owns
 * ({@link ownedCallId}), so their responses come back to it.
 *
 * Pure functions only (no sockets): the Call-ID is found with a byte scan of the header block —
 * no parse — and the forwarding frame is a few octets before the datagram.
 *
 * Forwarding frame (worker → worker over a private 127.0.0.1 UDP socket):
 *
 * | offset | octets | field |
 * |---|---|---|
 * | 0 | 1 | magic `0xE5` |
 * | 1 | 1 | kind: 1 = datagram, 2 = AOR changed |
 * | kind 1: 2 | 2 | source port, big-endian |
 * | 4 | 1 | length A of the source address (ASCII) |
 * | 5 | 1 | length S of the receiving socket id (ASCII, e.g. `udp:0.0.0.0:5060`) |
 * | 6 | A, S | source address, socket id |
 * | 6+A+S | … | the datagram as received |
 * | kind 2: 2 | … | the AOR (UTF-8) |
 */
import { generateCallId } from '../sip/ids.js';

/** First octet of every forwarding frame. */
export const FRAME_MAGIC = 0xe5;
const KIND_DATAGRAM = 1;
const KIND_AOR = 2;

/** Returns true when the datagram was taken (forwarded to its owner) and must not be handled here. */
export type UdpDispatch = (socketId: string, data: Buffer, address: string, port: number) => boolean;

/** A decoded forwarding frame; `data` is a view into the received buffer (no copy). */
export type ForwardFrame =
  | { kind: 'datagram'; socketId: string; address: string; port: number; data: Buffer }
  | { kind: 'aor'; aor: string };

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;
/** `call-id` in lower case. */
const CALL_ID = [0x63, 0x61, 0x6c, 0x6c, 0x2d, 0x69, 0x64];

function isWs(c: number): boolean {
  return c === SP || c === HTAB;
}

/**
 * Offset just past the colon when a header line starting at `i` is `Call-ID` or its compact form
 * `i` (any case, optional whitespace before the colon, RFC 3261 §7.3.1), else -1.
 */
function callIdColon(data: Buffer, i: number, len: number): number {
  let j = i;
  const c0 = data[j] | 0x20;
  if (c0 === 0x69) {
    j++; // compact `i`
  } else if (c0 === 0x63) {
    if (j + CALL_ID.length > len) return -1;
    for (let k = 0; k < CALL_ID.length; k++) if ((data[j + k] | 0x20) !== CALL_ID[k]) return -1;
    j += CALL_ID.length;
  } else {
    return -1;
  }
  while (j < len && isWs(data[j])) j++;
  return j < len && data[j] === COLON ? j + 1 : -1;
}

/**
 * Finds the Call-ID value of a SIP message by scanning header lines (no parse): the first
 * `Call-ID:` / `i:` header of the header block, value trimmed of surrounding whitespace.
 * A folded Call-ID is read up to the end of its first line (still deterministic).
 * @returns `[start, end)` octet offsets of the value, or undefined when there is none
 */
export function callIdRange(data: Buffer): [number, number] | undefined {
  const len = data.length;
  let i = data.indexOf(LF) + 1; // skip the start line
  while (i > 0 && i < len) {
    const c = data[i];
    if (c === CR || c === LF) return undefined; // end of the header block
    const v = callIdColon(data, i, len);
    const eol = data.indexOf(LF, i);
    if (v >= 0) {
      let s = v;
      let e = eol < 0 ? len : eol;
      while (s < e && isWs(data[s])) s++;
      while (e > s && (isWs(data[e - 1]) || data[e - 1] === CR)) e--;
      return s < e ? [s, e] : undefined;
    }
    if (eol < 0) return undefined;
    i = eol + 1;
  }
  return undefined;
}

/** FNV-1a 32-bit hash of `data[start, end)`. */
export function fnv1a(data: Uint8Array, start = 0, end = data.length): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) {
    h ^= data[i];
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Owner (0 … workers−1) of a Call-ID value, e.g. `a84b4c76e66710@pc33.example.com`. */
export function ownerOfCallId(callId: string, workers: number): number {
  return fnv1a(Buffer.from(callId, 'utf8')) % workers;
}

/** Owner (0 … workers−1) of an AOR: the worker that sends its keepalives. */
export function ownerOfAor(aor: string, workers: number): number {
  return fnv1a(Buffer.from(aor, 'utf8')) % workers;
}

/**
 * Datagrams answered by whichever worker receives them, never forwarded: empty ones, STUN and
 * other non-SIP datagrams (first octet 0x00/0x01), CRLF keep-alives (RFC 5626 §4.4.1).
 */
export function isLocalOnly(data: Buffer): boolean {
  if (data.length === 0) return true;
  const b0 = data[0];
  if (b0 === 0x00 || b0 === 0x01) return true;
  if (b0 !== CR && b0 !== LF) return false;
  for (let i = 0; i < data.length; i++) if (data[i] !== CR && data[i] !== LF) return false;
  return true;
}

/**
 * Owner of a received SIP datagram, or -1 when it is handled where it was received
 * ({@link isLocalOnly}, or no Call-ID: the parser answers or drops it).
 */
export function ownerOfDatagram(data: Buffer, workers: number): number {
  if (workers <= 1 || isLocalOnly(data)) return -1;
  const r = callIdRange(data);
  return r === undefined ? -1 : fnv1a(data, r[0], r[1]) % workers;
}

/**
 * A fresh Call-ID (like {@link generateCallId}) that {@link ownerOfCallId} maps to `index`, so
 * the responses to a request we originate come back to this worker. Expected `workers` tries.
 */
export function ownedCallId(index: number, workers: number, host?: string): string {
  let id = generateCallId(host);
  for (let i = 0; workers > 1 && i < 100 * workers && ownerOfCallId(id, workers) !== index; i++) id = generateCallId(host);
  return id;
}

/**
 * The header of a datagram forwarding frame (send it followed by the datagram, e.g. with
 * `socket.send([header, data])`, so the datagram is not copied).
 * @throws RangeError when the address or socket id exceed 255 octets
 */
export function encodeDatagramHeader(socketId: string, address: string, port: number): Buffer {
  const a = Buffer.from(address, 'latin1');
  const s = Buffer.from(socketId, 'latin1');
  if (a.length > 255 || s.length > 255) throw new RangeError('address or socket id too long for a forwarding frame');
  const h = Buffer.allocUnsafe(6 + a.length + s.length);
  h[0] = FRAME_MAGIC;
  h[1] = KIND_DATAGRAM;
  h.writeUInt16BE(port, 2);
  h[4] = a.length;
  h[5] = s.length;
  a.copy(h, 6);
  s.copy(h, 6 + a.length);
  return h;
}

/** An "AOR changed" frame: the receiver re-reads the AOR's bindings for its keepalives. */
export function encodeAorFrame(aor: string): Buffer {
  const a = Buffer.from(aor, 'utf8');
  const h = Buffer.allocUnsafe(2 + a.length);
  h[0] = FRAME_MAGIC;
  h[1] = KIND_AOR;
  a.copy(h, 2);
  return h;
}

/** Decodes a forwarding frame; undefined when it is not one (wrong magic, kind or lengths). */
export function decodeFrame(buf: Buffer): ForwardFrame | undefined {
  if (buf.length < 2 || buf[0] !== FRAME_MAGIC) return undefined;
  if (buf[1] === KIND_AOR) return buf.length > 2 ? { kind: 'aor', aor: buf.toString('utf8', 2) } : undefined;
  if (buf[1] !== KIND_DATAGRAM || buf.length < 6) return undefined;
  const port = buf.readUInt16BE(2);
  const al = buf[4];
  const sl = buf[5];
  const off = 6 + al + sl;
  if (al === 0 || sl === 0 || buf.length < off) return undefined;
  return {
    kind: 'datagram',
    port,
    address: buf.toString('latin1', 6, 6 + al),
    socketId: buf.toString('latin1', 6 + al, off),
    data: buf.subarray(off),
  };
}

/**
 * The slice of `media.ports` worker `index` of `workers` relays on: the even RTP ports are cut
 * into equal consecutive runs (the last worker also takes the remainder), so no two workers bind
 * the same port.
 * @throws RangeError when the range has fewer RTP/RTCP pairs than workers
 */
export function workerPortSlice(range: { low: number; high: number }, index: number, workers: number): { low: number; high: number } {
  if (workers <= 1) return range;
  const low = range.low + (range.low % 2);
  const pairs = Math.floor((range.high - low + 1) / 2);
  const per = Math.floor(pairs / workers);
  if (per < 1) throw new RangeError(`media.ports ${range.low}-${range.high} has ${pairs} RTP/RTCP pairs, fewer than the ${workers} workers`);
  const sliceLow = low + 2 * per * index;
  return { low: sliceLow, high: index === workers - 1 ? range.high : sliceLow + 2 * per - 1 };
}
