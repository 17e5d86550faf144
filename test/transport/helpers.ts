/**
 * Shared helpers for the transport tests: a layer with recording events, loopback UDP/TCP
 * peers, and message builders. Real sockets on 127.0.0.1 / ::1, port 0.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { once } from 'node:events';
import { SystemClock, type Clock } from '../../src/lib/clock.js';
import type { SipParseError } from '../../src/sip/message.js';
import { parseListen } from '../../src/transport/listen.js';
import { TransportLayer, type TransportLimits } from '../../src/transport/layer.js';
import type { Destination, Flow, Inbound, TransportEvents } from '../../src/transport/types.js';

export interface Recorder {
  messages: Inbound[];
  parseErrors: Array<{ error: SipParseError; flow: Flow; raw: Buffer }>;
  closed: Flow[];
  sendFailures: Array<{ dest: Destination; code: string; detail: string }>;
  /** Resolves with the n-th message (1-based count) once it has arrived. */
  message(n?: number): Promise<Inbound>;
  waitFor(pred: () => boolean, what: string, ms?: number): Promise<void>;
}

export async function waitUntil(pred: () => boolean, what: string, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

export function recorder(extra: Partial<TransportEvents> = {}): Recorder & { events: TransportEvents } {
  const rec = {
    messages: [] as Inbound[],
    parseErrors: [] as Recorder['parseErrors'],
    closed: [] as Flow[],
    sendFailures: [] as Recorder['sendFailures'],
    message(n?: number): Promise<Inbound> {
      const want = n ?? rec.messages.length + 1;
      return waitUntil(() => rec.messages.length >= want, `message #${want}`).then(() => rec.messages[want - 1]);
    },
    waitFor: waitUntil,
    events: undefined as unknown as TransportEvents,
  };
  rec.events = {
    onMessage: (m) => rec.messages.push(m),
    onParseError: (error, flow, raw) => rec.parseErrors.push({ error, flow, raw }),
    onConnectionClosed: (flow) => rec.closed.push(flow),
    onSendFailure: (dest, code, detail) => rec.sendFailures.push({ dest, code, detail }),
    ...extra,
  };
  return rec;
}

export async function startLayer(
  listen: string[],
  opts: { events?: Partial<TransportEvents>; limits?: TransportLimits; clock?: Clock } = {},
): Promise<{ layer: TransportLayer; rec: ReturnType<typeof recorder>; port: (id: string) => number }> {
  const rec = recorder(opts.events);
  const specs = listen.map((l) => {
    const r = parseListen(l);
    if (!r.ok) throw new Error(r.reason);
    return r.value;
  });
  const layer = new TransportLayer({ listen: specs, events: rec.events, clock: opts.clock ?? new SystemClock(), limits: opts.limits });
  await layer.start();
  const port = (id: string): number => {
    const s = layer.sockets().find((x) => x.id === id);
    if (!s) throw new Error(`no socket ${id}`);
    return s.boundPort;
  };
  return { layer, rec, port };
}

/** A UDP peer (a phone) on loopback that records what it receives and from where. */
export class UdpPeer {
  readonly socket: dgram.Socket;
  readonly got: Array<{ data: Buffer; port: number; address: string }> = [];

  private constructor(socket: dgram.Socket) {
    this.socket = socket;
    socket.on('message', (data, r) => this.got.push({ data, port: r.port, address: r.address }));
  }

  static async open(address = '127.0.0.1'): Promise<UdpPeer> {
    const s = dgram.createSocket(address.includes(':') ? 'udp6' : 'udp4');
    s.bind(0, address);
    await once(s, 'listening');
    return new UdpPeer(s);
  }

  get port(): number {
    return this.socket.address().port;
  }

  send(data: string | Buffer, port: number, address = '127.0.0.1'): void {
    this.socket.send(typeof data === 'string' ? Buffer.from(data) : data, port, address);
  }

  async next(n?: number): Promise<{ data: Buffer; port: number; address: string }> {
    const want = n ?? this.got.length + 1;
    await waitUntil(() => this.got.length >= want, `datagram #${want}`);
    return this.got[want - 1];
  }

  close(): Promise<void> {
    return new Promise((r) => this.socket.close(() => r()));
  }
}

/** A TCP peer: an outbound connection to the layer, recording received octets. */
export class TcpPeer {
  readonly socket: net.Socket;
  received = Buffer.alloc(0);
  ended = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => (this.received = Buffer.concat([this.received, d])));
    socket.on('close', () => (this.ended = true));
    socket.on('error', () => {});
  }

  static async connect(port: number, host = '127.0.0.1'): Promise<TcpPeer> {
    const s = net.connect({ port, host, noDelay: true });
    await once(s, 'connect');
    return new TcpPeer(s);
  }

  static wrap(socket: net.Socket): TcpPeer {
    return new TcpPeer(socket);
  }

  get localPort(): number {
    return this.socket.localPort as number;
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  text(): string {
    return this.received.toString('latin1');
  }

  async waitText(pred: (s: string) => boolean, what: string): Promise<string> {
    await waitUntil(() => pred(this.text()), what);
    return this.text();
  }

  waitClosed(): Promise<void> {
    return waitUntil(() => this.ended, 'connection close');
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A SIP request as wire text. */
export function request(opts: { method?: string; transport?: string; host?: string; branch?: string; body?: string; callId?: string; extra?: string; noContentLength?: boolean } = {}): string {
  const method = opts.method ?? 'OPTIONS';
  const body = opts.body ?? '';
  return (
    `${method} sip:bob@example.org SIP/2.0\r\n` +
    `Via: SIP/2.0/${opts.transport ?? 'UDP'} ${opts.host ?? '192.168.1.20:5060'};branch=${opts.branch ?? 'z9hG4bK' + Math.random().toString(36).slice(2)}\r\n` +
    'Max-Forwards: 70\r\n' +
    'From: <sip:alice@example.org>;tag=1928301774\r\n' +
    'To: <sip:bob@example.org>\r\n' +
    `Call-ID: ${opts.callId ?? 'a84b4c76e66710'}\r\n` +
    `CSeq: 314159 ${method}\r\n` +
    (opts.extra ?? '') +
    (opts.noContentLength ? '' : `Content-Length: ${Buffer.byteLength(body)}\r\n`) +
    '\r\n' +
    body
  );
}

/** Status code of the first response in `text`, or undefined. */
export function statusOf(text: string): number | undefined {
  const m = /^SIP\/2\.0 (\d{3})/m.exec(text);
  return m ? Number(m[1]) : undefined;
}
