/**
 * Test helpers for the transaction layer: a recording fake transport, a recording TU and
 * client handler, and plain-object message builders. Addresses from RFC 5737.
 */
import { FakeClock } from '../../src/lib/clock.js';
import type { SipHeader, SipRequest, SipResponse } from '../../src/sip/message.js';
import type { Destination, Flow, Inbound, SendResult, TransportProto } from '../../src/transport/types.js';
import type {
  ClientTransactionHandler,
  ServerTransaction,
  TimerSettings,
  TransactionTransport,
  TransactionUser,
} from '../../src/transaction/types.js';
import { TransactionLayer } from '../../src/transaction/layer.js';

export const UAC_ADDR = '192.0.2.10';
export const NEXT_HOP = '198.51.100.20';

export interface RequestOptions {
  branch?: string;
  /** Full top Via value; overrides `branch`/`transport`/`sentBy`. */
  via?: string;
  transport?: string;
  sentBy?: string;
  uri?: string;
  cseq?: number;
  cseqMethod?: string;
  fromTag?: string;
  toTag?: string;
  callId?: string;
  routes?: string[];
  extraVia?: string[];
  body?: string;
}

function h(name: string, value: string): SipHeader {
  return { name, key: name.toLowerCase(), value };
}

/** A plain SipRequest object. */
export function makeRequest(method: string, o: RequestOptions = {}): SipRequest {
  const transport = o.transport ?? 'UDP';
  const sentBy = o.sentBy ?? `${UAC_ADDR}:5060`;
  const via = o.via ?? `SIP/2.0/${transport} ${sentBy};branch=${o.branch ?? 'z9hG4bKtest1'};rport`;
  const headers: SipHeader[] = [h('Via', via)];
  for (const v of o.extraVia ?? []) headers.push(h('Via', v));
  for (const r of o.routes ?? []) headers.push(h('Route', r));
  headers.push(h('Max-Forwards', '70'));
  headers.push(h('From', `"Alice" <sip:1001@sip.example.org>;tag=${o.fromTag ?? 'ftag1'}`));
  headers.push(h('To', `<sip:1002@sip.example.org>${o.toTag ? `;tag=${o.toTag}` : ''}`));
  headers.push(h('Call-ID', o.callId ?? 'call-1@192.0.2.10'));
  headers.push(h('CSeq', `${o.cseq ?? 1} ${o.cseqMethod ?? method}`));
  headers.push(h('Contact', `<sip:1001@${UAC_ADDR}:5060>`));
  const body = Buffer.from(o.body ?? '');
  headers.push(h('Content-Length', String(body.length)));
  return { type: 'request', method, uri: o.uri ?? 'sip:1002@sip.example.org', version: 'SIP/2.0', headers, body };
}

/** A response to `req` (Via, From, To, Call-ID, CSeq copied), with an optional To tag. */
export function makeResponse(req: SipRequest, status: number, toTag?: string, reason = 'Reason'): SipResponse {
  const headers: SipHeader[] = [];
  for (const x of req.headers) {
    if (x.key === 'via' || x.key === 'from' || x.key === 'call-id' || x.key === 'cseq') headers.push({ ...x });
    if (x.key === 'to') {
      const hasTag = /;tag=/i.test(x.value);
      headers.push({ ...x, value: toTag && !hasTag ? `${x.value};tag=${toTag}` : x.value });
    }
  }
  headers.push(h('Content-Length', '0'));
  return { type: 'response', status, reason, version: 'SIP/2.0', headers, body: Buffer.alloc(0) };
}

/** Builds the ACK a UAC sends for a non-2xx (same branch, To from the response). */
export function makeAck(invite: SipRequest, response: SipResponse, o: { branch?: string } = {}): SipRequest {
  const ack = structuredClone(invite) as SipRequest;
  ack.method = 'ACK';
  ack.body = Buffer.alloc(0);
  ack.headers = ack.headers.map((x) => {
    if (x.key === 'cseq') return { ...x, value: x.value.replace(/\s+\S+$/, ' ACK') };
    if (x.key === 'to') return { ...response.headers.find((y) => y.key === 'to')! };
    if (x.key === 'via' && o.branch) return { ...x, value: x.value.replace(/branch=[^;]+/, `branch=${o.branch}`) };
    return x;
  });
  return ack;
}

export function makeFlow(transport: TransportProto = 'udp', remotePort = 5060): Flow {
  return {
    transport,
    local: { address: '203.0.113.10', port: 5060, socketId: `${transport}:203.0.113.10:5060` },
    remote: { address: UAC_ADDR, port: remotePort },
    connectionId: transport === 'udp' ? undefined : 7,
  };
}

export function inbound(message: SipRequest | SipResponse, transport: TransportProto = 'udp', remotePort = 5060): Inbound {
  return { message, flow: makeFlow(transport, remotePort), raw: Buffer.alloc(0), receivedAt: 0 };
}

export function dest(transport: TransportProto = 'udp'): Destination {
  return { address: NEXT_HOP, port: 5060, transport };
}

export type Sent =
  | { at: number; kind: 'request'; msg: SipRequest; dest: Destination }
  | { at: number; kind: 'response'; msg: SipResponse; inbound: Inbound };

/** Records every send with the clock time; can be told to fail. */
export class RecordingTransport implements TransactionTransport {
  readonly sent: Sent[] = [];
  /** When set, sends for which it returns true fail with SEND_FAILED. */
  failWhen: ((msg: SipRequest | SipResponse) => boolean) | undefined;

  constructor(private readonly clock: FakeClock) {}

  sendRequest(request: SipRequest, d: Destination): SendResult {
    this.sent.push({ at: this.clock.now(), kind: 'request', msg: request, dest: d });
    return this.result(request, d.transport);
  }

  sendResponse(response: SipResponse, requestInbound: Inbound): SendResult {
    this.sent.push({ at: this.clock.now(), kind: 'response', msg: response, inbound: requestInbound });
    return this.result(response, requestInbound.flow.transport);
  }

  /** Times (ms) of the sends whose start line matches `what` (method name or status). */
  times(what: string | number): number[] {
    return this.sent
      .filter((s) => (s.kind === 'request' ? s.msg.method === what : s.msg.status === what))
      .map((s) => s.at);
  }

  requests(method?: string): SipRequest[] {
    const out: SipRequest[] = [];
    for (const s of this.sent) if (s.kind === 'request' && (method === undefined || s.msg.method === method)) out.push(s.msg);
    return out;
  }

  responses(status?: number): SipResponse[] {
    const out: SipResponse[] = [];
    for (const s of this.sent) if (s.kind === 'response' && (status === undefined || s.msg.status === status)) out.push(s.msg);
    return out;
  }

  private result(msg: SipRequest | SipResponse, transport: TransportProto): SendResult {
    if (this.failWhen?.(msg)) return { ok: false, code: 'SEND_FAILED', detail: 'test failure' };
    return { ok: true, flow: makeFlow(transport) };
  }
}

/** Records every TU callback. */
export class RecordingTU implements TransactionUser {
  readonly requests: ServerTransaction[] = [];
  readonly strayAcks: Inbound[] = [];
  readonly strayResponses: Inbound[] = [];
  readonly errors: Array<{ tx: ServerTransaction; reason: 'timeout' | 'transport' }> = [];
  onRequestHook: ((tx: ServerTransaction) => void) | undefined;

  onRequest(tx: ServerTransaction): void {
    this.requests.push(tx);
    this.onRequestHook?.(tx);
  }
  onStrayAck(i: Inbound): void {
    this.strayAcks.push(i);
  }
  onStrayResponse(i: Inbound): void {
    this.strayResponses.push(i);
  }
  onServerTransactionError(tx: ServerTransaction, reason: 'timeout' | 'transport'): void {
    this.errors.push({ tx, reason });
  }
}

/** Records every client transaction callback in order. */
export class RecordingHandler implements ClientTransactionHandler {
  readonly events: string[] = [];
  readonly responses: SipResponse[] = [];
  readonly results: SendResult[] = [];

  onResponse(response: SipResponse): void {
    this.responses.push(response);
    this.events.push(`response ${response.status}`);
  }
  onTimeout(): void {
    this.events.push('timeout');
  }
  onTransportError(result: SendResult): void {
    this.results.push(result);
    this.events.push('transport-error');
  }
  onTerminated(): void {
    this.events.push('terminated');
  }
}

export interface Harness {
  clock: FakeClock;
  transport: RecordingTransport;
  tu: RecordingTU;
  layer: TransactionLayer;
}

export function harness(o: { autoTryingMs?: number; timers?: Partial<TimerSettings> } = {}): Harness {
  const clock = new FakeClock(0);
  const transport = new RecordingTransport(clock);
  const tu = new RecordingTU();
  const layer = new TransactionLayer({ clock, transport, tu, autoTryingMs: o.autoTryingMs ?? 0, timers: o.timers });
  return { clock, transport, tu, layer };
}

/** Header value helper for assertions. */
export function header(msg: SipRequest | SipResponse, key: string): string[] {
  return msg.headers.filter((x) => x.key === key).map((x) => x.value);
}
