/**
 * A minimal scripted SIP user agent for the proxy integration tests: one node:dgram socket on
 * 127.0.0.1 that sends raw SIP text and hands back what arrives, parsed with the project's own
 * parser. No transaction layer, no retransmissions: every test says exactly what goes on the wire.
 *
 * - {@link Ua.send} sends text (LF line ends are turned into CRLF and Content-Length is filled in).
 * - {@link Ua.next} resolves the first queued or future message matching a predicate (messages
 *   that arrive before anyone asks are kept in an inbox, so there are no races).
 * - {@link Ua.none} asserts that nothing matching arrives within a time window.
 * - {@link digestAuthorization} answers a Digest challenge (RFC 2617 / RFC 7616, MD5, qop=auth).
 */
import { createHash, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { parseMessage } from '../../src/sip/parse.js';
import { getHeader, getHeaderValues } from '../../src/sip/headers.js';
import type { SipMessage, SipRequest, SipResponse } from '../../src/sip/message.js';

export const HOST = '127.0.0.1';

/** A received message with where it came from. */
export interface Received<T extends SipMessage = SipMessage> {
  msg: T;
  raw: string;
  from: { address: string; port: number };
}

type Waiter = { pred: (m: SipMessage) => boolean; resolve: (r: Received) => void; timer: NodeJS.Timeout };

/** Random token for tags, branches and Call-IDs. */
export function rand(n = 8): string {
  return randomBytes(n).toString('hex');
}

/** A fresh RFC 3261 branch (magic cookie `z9hG4bK`). */
export function branch(): string {
  return 'z9hG4bK' + rand(6);
}

/** Normalises a test message: CRLF line ends, exactly one empty line, Content-Length set. */
export function wire(text: string, body = ''): Buffer {
  const head = text
    .replace(/\r\n/g, '\n')
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l.length > 0)
    .filter((l) => !/^content-length\s*:/i.test(l));
  head.push(`Content-Length: ${Buffer.byteLength(body)}`);
  return Buffer.from(head.join('\r\n') + '\r\n\r\n' + body);
}

export class Ua {
  readonly socket: dgram.Socket;
  readonly port: number;
  readonly inbox: Received[] = [];
  private waiters: Waiter[] = [];
  /** Every message received, in order (also those already taken by next()). */
  readonly log: Received[] = [];

  private constructor(socket: dgram.Socket, readonly name: string) {
    this.socket = socket;
    this.port = socket.address().port;
    socket.on('message', (data, rinfo) => this.onMessage(data, rinfo));
  }

  /** Opens a UA socket on 127.0.0.1 with a kernel-chosen port. */
  static open(name = 'ua'): Promise<Ua> {
    return new Promise((resolve, reject) => {
      const s = dgram.createSocket('udp4');
      s.once('error', reject);
      s.bind(0, HOST, () => {
        s.off('error', reject);
        s.on('error', () => undefined);
        resolve(new Ua(s, name));
      });
    });
  }

  /** `127.0.0.1:port`. */
  get hostport(): string {
    return `${HOST}:${this.port}`;
  }

  /** A Via value sent by this UA, with a fresh branch unless one is given. */
  via(br = branch()): string {
    return `SIP/2.0/UDP ${this.hostport};branch=${br};rport`;
  }

  /** Contact URI of this UA for a user. */
  contact(user: string): string {
    return `sip:${user}@${this.hostport}`;
  }

  private onMessage(data: Buffer, rinfo: dgram.RemoteInfo): void {
    // CRLF keep-alives and other non-SIP datagrams are ignored.
    const r = parseMessage(data);
    if (!r.ok) return;
    const rec: Received = { msg: r.message, raw: data.toString('utf8'), from: { address: rinfo.address, port: rinfo.port } };
    this.log.push(rec);
    const i = this.waiters.findIndex((w) => w.pred(rec.msg));
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      clearTimeout(w.timer);
      w.resolve(rec);
      return;
    }
    this.inbox.push(rec);
  }

  /** Sends a message (text is normalised by {@link wire}) to host:port. */
  send(text: string | Buffer, port: number, host = HOST, body = ''): void {
    const data = typeof text === 'string' ? wire(text, body) : text;
    this.socket.send(data, port, host);
  }

  /** The first message (queued or future) matching `pred`; rejects after `timeoutMs`. */
  next<T extends SipMessage = SipMessage>(pred: (m: SipMessage) => boolean, timeoutMs = 2000, what = 'message'): Promise<Received<T>> {
    const i = this.inbox.findIndex((r) => pred(r.msg));
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0] as Received<T>);
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        pred,
        resolve: resolve as (r: Received) => void,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          const seen = this.log.map((r) => startLine(r.msg)).join(' | ');
          reject(new Error(`${this.name}: no ${what} within ${timeoutMs} ms (received so far: ${seen || 'nothing'})`));
        }, timeoutMs),
      };
      this.waiters.push(w);
    });
  }

  /** The next request with this method. */
  nextRequest(method: string, timeoutMs = 2000): Promise<Received<SipRequest>> {
    return this.next<SipRequest>((m) => m.type === 'request' && m.method === method, timeoutMs, `${method} request`);
  }

  /** The next response (optionally with this status) to a request with this CSeq method. */
  nextResponse(method: string, status?: number | ((s: number) => boolean), timeoutMs = 2000): Promise<Received<SipResponse>> {
    const ok = (s: number): boolean => (status === undefined ? true : typeof status === 'number' ? s === status : status(s));
    return this.next<SipResponse>(
      (m) => m.type === 'response' && cseqMethod(m) === method && ok(m.status),
      timeoutMs,
      `${status === undefined ? '' : typeof status === 'number' ? status + ' ' : ''}response to ${method}`,
    );
  }

  /** The next final (>= 200) response to a request with this CSeq method. */
  nextFinal(method: string, timeoutMs = 2000): Promise<Received<SipResponse>> {
    return this.nextResponse(method, (s) => s >= 200, timeoutMs);
  }

  /** Resolves when nothing matching `pred` arrived (or was queued) for `ms`; rejects otherwise. */
  async none(pred: (m: SipMessage) => boolean, ms: number, what = 'message'): Promise<void> {
    const queued = this.inbox.find((r) => pred(r.msg));
    if (queued) throw new Error(`${this.name}: unexpected ${what}: ${startLine(queued.msg)}`);
    let got: Received | undefined;
    try {
      got = await this.next(pred, ms, what);
    } catch {
      return;
    }
    throw new Error(`${this.name}: unexpected ${what}: ${startLine(got.msg)}`);
  }

  /** Drops everything queued. */
  clear(): void {
    this.inbox.length = 0;
  }

  close(): Promise<void> {
    for (const w of this.waiters) clearTimeout(w.timer);
    this.waiters = [];
    return new Promise((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }

  /**
   * Answers a received request (RFC 3261 §8.2.6): every Via, From, To (with `toTag` added when
   * To has none), Call-ID, CSeq and Record-Route copied; a Contact for `user` when given. Sent
   * to where the request came from (for the edge that is its listening socket, i.e. the top Via).
   */
  reply(req: Received<SipRequest>, status: number, reason: string, opts: { toTag?: string; contactUser?: string; headers?: string[] } = {}): void {
    const m = req.msg;
    const lines = [`SIP/2.0 ${status} ${reason}`];
    for (const v of getHeaderValues(m, 'via')) lines.push(`Via: ${v}`);
    lines.push(`From: ${getHeader(m, 'from')}`);
    const to = getHeader(m, 'to') ?? '';
    lines.push(`To: ${opts.toTag && !/;\s*tag=/i.test(to) ? `${to};tag=${opts.toTag}` : to}`);
    lines.push(`Call-ID: ${getHeader(m, 'call-id')}`);
    lines.push(`CSeq: ${getHeader(m, 'cseq')}`);
    if (status > 100 && status < 300) for (const rr of getHeaderValues(m, 'record-route')) lines.push(`Record-Route: ${rr}`);
    if (opts.contactUser && status < 300) lines.push(`Contact: <${this.contact(opts.contactUser)}>`);
    for (const h of opts.headers ?? []) lines.push(h);
    this.send(lines.join('\n'), req.from.port, req.from.address);
  }
}

/** The method of a message's CSeq. */
export function cseqMethod(m: SipMessage): string | undefined {
  const c = getHeader(m, 'cseq');
  return c?.trim().split(/\s+/)[1];
}

/** Start line for error messages. */
export function startLine(m: SipMessage): string {
  return m.type === 'request' ? `${m.method} ${m.uri}` : `${m.status} ${m.reason} (${cseqMethod(m)})`;
}

/** Value of a `;name=value` parameter in a header value (undefined if absent, '' if flag). */
export function param(value: string, name: string): string | undefined {
  const re = new RegExp(`;\\s*${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?:\\s*=\\s*("[^"]*"|[^;,>\\s]*))?`, 'i');
  const m = re.exec(value);
  if (!m) return undefined;
  const v = m[1] ?? '';
  return v.startsWith('"') ? v.slice(1, -1) : v;
}

/** The tag of a From/To value. */
export function tagOf(value: string | undefined): string | undefined {
  return value === undefined ? undefined : param(value, 'tag');
}

/** `<uri>` → `uri`. */
export function uriOf(nameAddr: string): string {
  const lt = nameAddr.indexOf('<');
  const gt = nameAddr.indexOf('>');
  return lt >= 0 && gt > lt ? nameAddr.slice(lt + 1, gt) : nameAddr.split(';')[0].trim();
}

// ------------------------------------------------------------------ digest (RFC 2617 / RFC 7616)

/** Parameters of a `Digest k=v, k="v"` challenge. */
export function parseChallenge(value: string): Record<string, string> {
  const out: Record<string, string> = {};
  const s = value.replace(/^\s*Digest\s+/i, '');
  const re = /([A-Za-z0-9_-]+)\s*=\s*("((?:[^"\\]|\\.)*)"|[^,\s]*)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) out[m[1].toLowerCase()] = m[3] !== undefined ? m[3].replace(/\\(.)/g, '$1') : m[2];
  return out;
}

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');

/**
 * The credentials answering an MD5 Digest challenge:
 * HA1 = MD5(username:realm:password), HA2 = MD5(method:digest-uri),
 * response = MD5(HA1:nonce:nc:cnonce:qop:HA2) with qop=auth (RFC 7616 §3.4.1), or
 * MD5(HA1:nonce:HA2) when the challenge offers no qop (RFC 2069).
 * @param challenges the WWW-Authenticate / Proxy-Authenticate values; the MD5 one is used
 */
export function digestAuthorization(opts: {
  challenges: string[];
  method: string;
  uri: string;
  username: string;
  password: string;
  nc?: number;
}): string {
  const values = opts.challenges.map(parseChallenge);
  const ch = values.find((c) => (c.algorithm ?? 'MD5').toUpperCase() === 'MD5');
  if (!ch) throw new Error(`no MD5 challenge in ${JSON.stringify(opts.challenges)}`);
  const realm = ch.realm ?? '';
  const nonce = ch.nonce ?? '';
  const ha1 = md5(`${opts.username}:${realm}:${opts.password}`);
  const ha2 = md5(`${opts.method}:${opts.uri}`);
  const qops = (ch.qop ?? '').split(',').map((q) => q.trim());
  const parts = [`username="${opts.username}"`, `realm="${realm}"`, `nonce="${nonce}"`, `uri="${opts.uri}"`, 'algorithm=MD5'];
  if (qops.includes('auth')) {
    const nc = (opts.nc ?? 1).toString(16).padStart(8, '0');
    const cnonce = rand(8);
    parts.push(`response="${md5(`${ha1}:${nonce}:${nc}:${cnonce}:auth:${ha2}`)}"`, `cnonce="${cnonce}"`, 'qop=auth', `nc=${nc}`);
  } else {
    parts.push(`response="${md5(`${ha1}:${nonce}:${ha2}`)}"`);
  }
  if (ch.opaque !== undefined) parts.push(`opaque="${ch.opaque}"`);
  return 'Digest ' + parts.join(', ');
}
