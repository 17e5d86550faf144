/**
 * Prometheus metrics of sipedge (prom-client). One {@link SipedgeMetrics} object is created by
 * the entry point and handed to every unit that counts something; GET /metrics serves its
 * registry. Each `createMetrics()` call has its own registry, so tests never share counters.
 *
 * Label values must come from small closed sets (never from the wire verbatim: a method or a
 * header value chosen by a peer would make the label cardinality unbounded).
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/** Metric handles plus the registry that exports them. */
export interface SipedgeMetrics {
  registry: Registry;
  /**
   * `sip_messages_received_total{kind}`: well-formed SIP messages received.
   * `kind`: a method from a closed list (`REGISTER`, `INVITE`, `ACK`, `BYE`, `CANCEL`, `OPTIONS`,
   * `NOTIFY`, `SUBSCRIBE`, `INFO`, `UPDATE`, `REFER`, `MESSAGE`, `PRACK`, `PUBLISH`), `other` for
   * any other method, or `response`. Use {@link messageKind}.
   */
  sipMessagesReceived: Counter<'kind'>;
  /** `sip_parse_errors_total{code}`: malformed messages; `code` is the parser's stable error code. */
  sipParseErrors: Counter<'code'>;
  /** `sip_responses_sent_total{status_class}`: responses sent; `status_class` is `1xx`…`6xx` ({@link statusClass}). */
  sipResponsesSent: Counter<'status_class'>;
  /**
   * `registrar_registrations_total{result}`: REGISTER outcomes. Suggested `result` values:
   * `ok`, `unregistered`, `challenged`, `forbidden`, `interval_too_brief`, `too_many_contacts`, `error`.
   */
  registrarRegistrations: Counter<'result'>;
  /** `registrar_bindings`: current number of bindings (all AORs). */
  registrarBindings: Gauge;
  /**
   * `proxy_calls_total{result}`: INVITE transactions by outcome. Suggested `result` values:
   * `answered` (2xx), `failed` (3xx–6xx final), `cancelled`, `timeout`, `not_found`.
   */
  proxyCalls: Counter<'result'>;
  /** `proxy_active_transactions`: server + client transactions currently alive. */
  proxyActiveTransactions: Gauge;
  /** `sip_overload_rejected_total`: requests answered 503 + Retry-After because the edge was overloaded (config `overload`). */
  sipOverloadRejected: Counter;
}

/** Options of {@link createMetrics}. */
export interface MetricsOptions {
  /** Also export Node process metrics (`process_cpu_seconds_total`, heap, event loop lag …). Default true. */
  defaultMetrics?: boolean;
}

/** Creates a fresh registry holding the sipedge metrics. */
export function createMetrics(opts: MetricsOptions = {}): SipedgeMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    sipMessagesReceived: new Counter({
      name: 'sip_messages_received_total',
      help: 'Well-formed SIP messages received, by request method (closed list) or "response".',
      labelNames: ['kind'] as const,
      registers,
    }),
    sipParseErrors: new Counter({
      name: 'sip_parse_errors_total',
      help: 'Malformed SIP messages received, by parser error code.',
      labelNames: ['code'] as const,
      registers,
    }),
    sipResponsesSent: new Counter({
      name: 'sip_responses_sent_total',
      help: 'SIP responses sent, by status class (1xx..6xx).',
      labelNames: ['status_class'] as const,
      registers,
    }),
    registrarRegistrations: new Counter({
      name: 'registrar_registrations_total',
      help: 'REGISTER requests handled by the registrar, by result.',
      labelNames: ['result'] as const,
      registers,
    }),
    registrarBindings: new Gauge({
      name: 'registrar_bindings',
      help: 'Current number of registered bindings.',
      registers,
    }),
    proxyCalls: new Counter({
      name: 'proxy_calls_total',
      help: 'INVITE transactions proxied, by result.',
      labelNames: ['result'] as const,
      registers,
    }),
    proxyActiveTransactions: new Gauge({
      name: 'proxy_active_transactions',
      help: 'SIP transactions currently alive.',
      registers,
    }),
    sipOverloadRejected: new Counter({
      name: 'sip_overload_rejected_total',
      help: 'Requests answered 503 Service Unavailable + Retry-After because the event loop lagged (overload.maxLoopDelay).',
      registers,
    }),
  };
}

const KNOWN_METHODS: ReadonlySet<string> = new Set([
  'REGISTER', 'INVITE', 'ACK', 'BYE', 'CANCEL', 'OPTIONS', 'NOTIFY', 'SUBSCRIBE', 'INFO', 'UPDATE', 'REFER', 'MESSAGE', 'PRACK', 'PUBLISH',
]);

/** The `kind` label for a received message: its method if well known, `other`, or `response` when `method` is undefined. */
export function messageKind(method: string | undefined): string {
  if (method === undefined) return 'response';
  return KNOWN_METHODS.has(method) ? method : 'other';
}

/** The `status_class` label for a status code: `1xx` … `6xx` (`other` outside 100..699). */
export function statusClass(status: number): string {
  return status >= 100 && status <= 699 ? `${Math.floor(status / 100)}xx` : 'other';
}
