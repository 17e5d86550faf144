/**
 * The stateful proxy core (RFC 3261 §16) and the dispatcher of every request the edge
 * receives: REGISTER to the registrar, OPTIONS to us answered locally, everything else
 * validated (§16.3), authenticated (§22.3), routed (§16.4–16.5) and forwarded (§16.6) on
 * client transactions, with responses collected and the best one returned (§16.7).
 *
 * The proxy is the transaction user of {@link TransactionLayer}. It owns Timer C per branch.
 */
import dns from 'node:dns';
import type { Clock, TimerHandle } from '../lib/clock.js';
import { silentLogger, type Logger } from '../lib/log.js';
import { hash64Hex } from '../lib/hash.js';
import type { SipRequest, SipResponse } from '../sip/message.js';
import {
  cloneMessage,
  getHeader,
  getHeaderValues,
  prependHeader,
  removeFirstHeaderValue,
  removeHeader,
  setHeader,
  appendHeader,
} from '../sip/headers.js';
import { parseUri, parseUriShared, formatHostPort, type SipUri } from '../sip/uri.js';
import { parseViaShared, type Via } from '../sip/via.js';
import { parseNameAddr, parseNameAddrShared, tagParam } from '../sip/nameaddr.js';
import { parseCSeq } from '../sip/cseq.js';
import { createResponse } from '../sip/response.js';
import { generateTag } from '../sip/ids.js';
import { serializeMessage } from '../sip/serialize.js';
import type { TransactionLayer } from '../transaction/layer.js';
import type { ClientTransaction, ServerTransaction, TransactionUser } from '../transaction/types.js';
import type { Destination, Flow, Inbound, SendResult, TransportProto, ListenSpec } from '../transport/types.js';
import type { Registrar } from '../registrar/registrar.js';
import { aorFromUri } from '../registrar/aor.js';
import { parseDigestParams, type DigestAuth, type DigestResult } from '../registrar/digest.js';
import type { Binding } from '../store/types.js';
import { advertisedFor, type AdvertiseContext, type AdvertiseSocket } from '../nat/advertise.js';
import { detectNat, type NatDecision } from '../nat/detect.js';
import { fixRequestContact, fixResponseContact } from '../nat/contact_rewrite.js';
import { SelfMatcher } from './self.js';
import { FlowTokenCodec, type FlowToken, type TokenFlow } from './flowtoken.js';
import { checkProxyRequire, selectBestResponse } from './select.js';
import type { ProxyHooks } from './hooks.js';
import type { HookRunner } from '../hooks/runner.js';
import type { OverloadState } from '../lib/overload.js';

/** What the proxy needs from the transport layer besides the transaction layer. */
export interface ProxyTransport {
  sockets(): Array<ListenSpec & { boundPort: number }>;
  sendRequest(req: SipRequest, dest: Destination): SendResult;
  sendRaw(data: Buffer, dest: Destination): SendResult;
  connectionOpen(connectionId: number): boolean;
}

/** Settings of the proxy (from `sipedge.yaml`). */
export interface ProxySettings {
  /** Domains served; empty = only requests addressed to our own addresses are local. */
  domains: string[];
  aliases: string[];
  /** Insert Record-Route into dialog-creating requests (RFC 3261 §16.6 step 4). */
  recordRoute: boolean;
  /** `nat.clients`. */
  natClients: 'auto' | 'force' | 'off';
  /** `nat.rewriteContact`: rewrite NATed UAs' Contacts to their received address (nat/contact_rewrite.ts). */
  rewriteContact?: boolean;
  /** Timer C, ms (RFC 3261 §16.6 step 11: "MUST be set to be greater than 3 minutes"). */
  timerCMs: number;
}

/** Constructor options of {@link Proxy}. */
export interface ProxyOptions {
  clock: Clock;
  transport: ProxyTransport;
  registrar: Registrar;
  /** Digest authenticator for Proxy-Authorization; undefined = open proxy (no users configured). */
  auth?: DigestAuth;
  /** Usernames of the configured accounts (404 for unknown users, 480 for known but unregistered). */
  users: ReadonlySet<string>;
  settings: ProxySettings;
  advertise: AdvertiseContext;
  flowTokens?: FlowTokenCodec;
  logger?: Logger;
  /** Load shedding (config `overload`); absent = never shed. See {@link sheddable}. */
  overload?: { state: OverloadState; retryAfter: number };
}

/** Counters exposed for metrics and `show` commands. */
export interface ProxyStats {
  requests: number;
  forwarded: number;
  /** Final responses sent upstream by class, e.g. `2xx`. */
  finals: Record<string, number>;
  /** Locally generated rejections by status. */
  rejected: Record<string, number>;
  statelessAcks: number;
  strayResponses: number;
  /** Calls ended by the edge because media stopped (media.timeout). */
  mediaTimeouts: number;
  /** Requests answered 503 + Retry-After because the edge was overloaded (also counted in `rejected['503']`). */
  overloadRejected: number;
}

const DIALOG_CREATING = new Set(['INVITE', 'SUBSCRIBE', 'REFER', 'NOTIFY']);
/** Methods never challenged: ACK and CANCEL cannot be (RFC 3261 §22.1); REGISTER is the registrar's. */
const NO_AUTH_METHODS = new Set(['ACK', 'CANCEL', 'REGISTER']);
const SUPPORTED_OPTIONS: ReadonlySet<string> = new Set(['path', 'outbound']);
/**
 * Never shed: they finish work already admitted (ACK, CANCEL, BYE: RFC 3261 §21.5.4's 503 is for
 * new work), or cost no more than the 503 itself and keep NAT bindings and qualify alive (OPTIONS).
 */
const NEVER_SHED = new Set(['ACK', 'CANCEL', 'BYE', 'OPTIONS']);

/**
 * Whether an overloaded edge answers this request 503 instead of processing it: every new
 * out-of-dialog request (no To tag) except {@link NEVER_SHED}, and every REGISTER (a registration
 * is never part of a dialog). In-dialog requests (To tag present: re-INVITE, UPDATE, PRACK,
 * INFO, NOTIFY …) belong to calls already admitted and are processed.
 */
export function sheddable(req: SipRequest): boolean {
  if (req.method === 'REGISTER') return true;
  if (NEVER_SHED.has(req.method)) return false;
  return tagParam(getHeader(req, 'to')) === undefined;
}

/** One forwarding target (RFC 3261 §16.5). */
interface Target {
  /** Request-URI of the branch. */
  uri: string;
  dest: Destination;
  /** Binding the target came from, when it came from the location service. */
  binding?: Binding;
  /** Advertised address for this branch, set by a user hook (OpenSIPS set_advertised_address). */
  advertised?: { host: string; port?: number };
}

interface BranchState {
  target: Target;
  request: SipRequest;
  tx?: ClientTransaction;
  provisional: boolean;
  cancelOnProvisional: boolean;
  cancelled: boolean;
  done: boolean;
  timerC?: TimerHandle;
}

/** The response context of one proxied request (RFC 3261 §16.7). */
interface ResponseContext {
  tx: ServerTransaction;
  request: SipRequest;
  isInvite: boolean;
  branches: BranchState[];
  /** Serial groups (by q-value) not yet tried. */
  pending: Target[][];
  finals: SipResponse[];
  finalSent: boolean;
  got2xx: boolean;
  cancelled: boolean;
  got6xx: boolean;
}


function uriTransport(u: SipUri): TransportProto {
  const t = u.params.transport?.toLowerCase();
  if (u.scheme === 'sips') return 'tls';
  if (t === 'tcp' || t === 'tls' || t === 'ws' || t === 'wss') return t;
  return 'udp';
}

function isIp(host: string): boolean {
  return /^[0-9.]+$/.test(host) || host.includes(':');
}

function tokenFlowOf(flow: Flow): TokenFlow {
  return {
    transport: flow.transport,
    address: flow.remote.address,
    port: flow.remote.port,
    socketId: flow.local.socketId,
    connectionId: flow.connectionId,
  };
}

function destOfTokenFlow(f: TokenFlow): Destination {
  return { transport: f.transport, address: f.address, port: f.port, socketId: f.socketId, connectionId: f.connectionId };
}

/**
 * The edge's request dispatcher and stateful proxy. Create it, then {@link Proxy.attach} the
 * transaction layer (which needs the proxy as its TU).
 */
export class Proxy implements TransactionUser {
  readonly stats: ProxyStats = { requests: 0, forwarded: 0, finals: {}, rejected: {}, statelessAcks: 0, strayResponses: 0, mediaTimeouts: 0, overloadRejected: 0 };
  private layer!: TransactionLayer;
  private readonly clock: Clock;
  private readonly transport: ProxyTransport;
  private readonly registrar: Registrar;
  private readonly auth?: DigestAuth;
  private readonly users: ReadonlySet<string>;
  private readonly settings: ProxySettings;
  private advertise: AdvertiseContext;
  private readonly tokens: FlowTokenCodec;
  private readonly log: Logger;
  private readonly domains: Set<string>;
  private self!: SelfMatcher;
  private sockets: AdvertiseSocket[] = [];
  private readonly contexts = new Map<ServerTransaction, ResponseContext>();
  private readonly overload?: { state: OverloadState; retryAfter: number };

  constructor(opts: ProxyOptions) {
    this.clock = opts.clock;
    this.transport = opts.transport;
    this.registrar = opts.registrar;
    this.auth = opts.auth;
    this.users = opts.users;
    this.settings = opts.settings;
    this.advertise = opts.advertise;
    this.tokens = opts.flowTokens ?? new FlowTokenCodec();
    this.log = opts.logger ?? silentLogger;
    this.overload = opts.overload;
    this.domains = new Set(opts.settings.domains.map((d) => d.toLowerCase()));
  }

  /** Connects the transaction layer and reads the bound sockets (call after the transport started). */
  attach(layer: TransactionLayer): void {
    this.layer = layer;
    this.refreshSockets();
  }

  /** Re-reads bound sockets and the advertising context (after start or reload). */
  refreshSockets(advertise?: AdvertiseContext): void {
    if (advertise) this.advertise = advertise;
    this.sockets = this.transport.sockets().map((s) => ({ id: s.id, transport: s.transport, address: s.address, port: s.boundPort, advertised: s.advertised }));
    // The previous matcher is passed on: addresses we advertised before (public address before a
    // change, hook addresses) stay ours for dialogs that recorded them.
    this.self = new SelfMatcher(this.sockets, this.settings.aliases, this.advertise.publicAddress, this.self);
  }

  /** Called for each request answered 503 because of overload (metrics). */
  onOverloadRejected?: () => void;

  /** Called after a REGISTER was answered 2xx, with the AOR (keepalive bookkeeping). */
  onRegistered?: (aor: string) => void;

  /** Extension hooks (media sessions and dialog tracking, see hooks.ts). */
  hooks?: ProxyHooks;

  /** User hooks (src/hooks: onRequest / beforeForward; per-transaction advertised address and send socket). */
  userHooks?: HookRunner;

  /**
   * The address that represents socket `socketId` towards `destination` (the inside/outside
   * decision of nat/advertise.ts), for requests the edge originates (keepalive OPTIONS).
   */
  localAddressFor(socketId: string, destination: string): { host: string; port: number } | undefined {
    const s = this.sockets.find((x) => x.id === socketId);
    return s ? advertisedFor(s, destination, this.advertise) : undefined;
  }

  /** Number of requests with an open response context (active proxy transactions). */
  get activeContexts(): number {
    return this.contexts.size;
  }

  // ---------------------------------------------------------------- TU entry points

  onRequest(tx: ServerTransaction): void {
    this.stats.requests++;
    this.dispatch(tx).catch((err: unknown) => {
      this.log.error({ err, method: tx.request.method }, 'request handling failed');
      if (!tx.lastResponse || tx.lastResponse.status < 200) this.reject(tx, 500, 'Server Internal Error');
    });
  }

  onStrayAck(inbound: Inbound): void {
    // RFC 3261 §16.11 / RFC 6026: an ACK for a 2xx is forwarded statelessly along the route set.
    const ack = inbound.message as SipRequest;
    // RFC 3261 §16.3 step 3: "If the Max-Forwards value is zero, the element MUST NOT forward
    // the request." An ACK gets no response, so it is dropped.
    const mf = getHeader(ack, 'max-forwards');
    if (mf !== undefined && !(Number(mf) > 0)) return;
    const route = this.preprocessRoutes(ack);
    // Only ACKs that follow our Record-Route (an authenticated flow token) are relayed: anything
    // else would make the edge an open relay for ACKs.
    if (!route.ok || !route.token) return;
    void this.nextHop(ack, route.token).then((target) => {
      if (!target) return;
      // An ACK whose next hop is this edge (Request-URI naming us, no Route, no flow token)
      // would come straight back as another stray ACK: drop it rather than loop.
      if (this.self.isSelfHost(target.dest.address, target.dest.port)) return;
      const fwd = this.prepareForward(ack, target, inbound, this.statelessBranch(ack), false);
      if (!fwd) return;
      this.stats.statelessAcks++;
      // The ACK may carry the answer to an offer in the 2xx (late offer): hooks rewrite it first.
      const hooked = this.hooks?.ack?.(fwd, inbound, target.dest);
      if (hooked) void hooked.then(() => this.transport.sendRequest(fwd, target.dest));
      else this.transport.sendRequest(fwd, target.dest);
    });
  }

  onStrayResponse(inbound: Inbound): void {
    // RFC 3261 §16.7 step 3 / RFC 6026 §8.4: a 2xx retransmission after the client transaction
    // is gone is forwarded statelessly: remove our Via, send per the next Via.
    const res = cloneMessage(this.settings.rewriteContact ? fixResponseContact(inbound.message as SipResponse, inbound.flow, this.settings.natClients) : (inbound.message as SipResponse));
    const top = getHeader(res, 'via');
    if (!top) return;
    const v = parseViaShared(top);
    if (v === undefined || !this.self.isSelfHost(v.host, v.port)) return;
    removeFirstHeaderValue(res, 'via');
    const next = getHeader(res, 'via');
    if (!next) return;
    const nv = parseViaShared(next);
    if (nv === undefined) return;
    const dest = this.viaDestination(nv);
    this.stats.strayResponses++;
    this.hooks?.strayResponse?.(res);
    this.transport.sendRaw(serializeMessage(res), dest);
  }

  onServerTransactionError(tx: ServerTransaction, reason: 'timeout' | 'transport'): void {
    this.log.debug({ method: tx.request.method, reason }, 'server transaction error');
  }

  // ---------------------------------------------------------------- dispatch

  private async dispatch(tx: ServerTransaction): Promise<void> {
    const req = tx.request;
    if (req.method === 'CANCEL') return this.handleCancel(tx);
    // RFC 3261 §21.5.4: "The server is temporarily unable to process the request due to a
    // temporary overloading … The server MAY indicate when the client should retry the request
    // in a Retry-After header field." Checked first: no parse, auth or store work for shed requests.
    if (this.overload?.state.overloaded === true && sheddable(req)) return this.shed(tx, this.overload.retryAfter);

    // RFC 3261 §16.3 step 2: URI scheme. "If the Request-URI has a URI whose scheme is not
    // understood by the proxy, the proxy SHOULD reject the request with a 416".
    const ruri = parseUriShared(req.uri);
    if (ruri === undefined) return this.reject(tx, 400, 'Bad Request-URI');
    if (ruri.scheme !== 'sip' && ruri.scheme !== 'sips') return this.reject(tx, 416, 'Unsupported URI Scheme');

    // §16.3 step 3: Max-Forwards.
    const mfText = getHeader(req, 'max-forwards');
    const mf = mfText === undefined ? 70 : Number(mfText);
    const toSelf = this.self.isSelf(ruri) && ruri.user === undefined && getHeader(req, 'route') === undefined;
    if (mf <= 0 && !(req.method === 'OPTIONS' && toSelf)) return this.reject(tx, 483, 'Too Many Hops');

    // §16.3 step 4: loop detection.
    if (this.isLoop(req)) return this.reject(tx, 482, 'Loop Detected');

    // §16.3 step 5: Proxy-Require.
    const pr = checkProxyRequire(req, SUPPORTED_OPTIONS);
    if (pr) return this.reject(tx, pr.status, undefined, pr.headers);

    // User hooks (src/hooks): may reject, or set the advertised address / send socket for this transaction.
    const ur = this.userHooks ? await this.userHooks.onRequest(tx, this.sockets) : undefined;
    if (ur) return this.reject(tx, ur.status, ur.reason);

    // §16.4: Route information preprocessing.
    const route = this.preprocessRoutes(req);
    if (!route.ok) return this.reject(tx, 400, 'Bad Route');
    const uri = route.ruri;
    const hasRoute = getHeader(req, 'route') !== undefined;
    const inDialog = tagParam(getHeader(req, 'to')) !== undefined;
    const local = !hasRoute && !route.token && this.isLocalDomain(uri);

    // A REGISTER is never relayed: the registrar answers it (404 for a domain it does not serve).
    if (req.method === 'REGISTER' && !hasRoute) {
      // Lazily: the registrar runs the NAT tests only for a REGISTER that passed authentication.
      const nat = (): NatDecision => detectNat(req, tx.inbound.flow.remote, this.settings.natClients, { raw: tx.inbound.raw, log: this.log });
      const res = await this.registrar.handleRegister(req, tx.inbound.flow, nat);
      this.respond(tx, res);
      if (res.status >= 200 && res.status < 300 && this.onRegistered) {
        const to = parseNameAddr(getHeader(req, 'to') ?? '');
        const aor = to.ok ? aorFromUri(to.value.uri) : undefined;
        if (aor) this.onRegistered(aor);
      }
      return;
    }
    if (local && uri.user === undefined) return this.handleLocal(tx);

    // §22.3: only known accounts place calls: out-of-dialog requests need Proxy-Authorization.
    // "In dialog" counts only when the request follows our Record-Route (an authenticated flow
    // token): a To tag alone is the sender's word and would make the edge an open relay.
    const ourDialog = inDialog && route.token !== undefined;
    // An OPTIONS to one of our users (qualify between phones) is not a relay; elsewhere it is.
    const exempt = NO_AUTH_METHODS.has(req.method) || (req.method === 'OPTIONS' && local);
    if (this.auth && !ourDialog && !exempt) {
      const r = this.auth.verify(req, 'proxy-authorization');
      if (!r.ok) return this.challenge(tx, r);
      const fromUser = this.fromUser(req);
      if (fromUser !== r.username) return this.reject(tx, 403, 'Forbidden - From does not match credentials');
      // Kamailio consume_credentials: the credentials for our realm were for us (hop by hop,
      // RFC 3261 §22.3); they are not revealed to the callee. Other realms' pass through.
      this.consumeCredentials(req);
    }

    // nat.rewriteContact (Kamailio fix_nated_contact): a NATed sender's Contact becomes its flow.
    if (this.settings.rewriteContact) fixRequestContact(req, tx.inbound.flow, this.settings.natClients, { raw: tx.inbound.raw, log: this.log });

    const targets = await this.targets(tx, uri, route.token, local);
    if (!targets) return; // already answered
    // RFC 3261 §16.10: "A proxy MUST cancel any pending client transactions associated with a
    // response context when it receives a matching CANCEL request." A CANCEL processed while
    // the targets were looked up (DNS, store) found no context yet and answered 487 itself:
    // starting client transactions now would ring a phone that nobody will ever CANCEL.
    if (tx.lastResponse !== undefined && tx.lastResponse.status >= 200) return;
    // User hooks per branch: advertised address and send socket (before the media hooks pick SDP addresses).
    const fr = this.userHooks ? await this.userHooks.beforeForward(tx, targets.flat(), this.sockets) : undefined;
    if (fr) return this.reject(tx, fr.status, fr.reason);
    if (tx.lastResponse !== undefined && tx.lastResponse.status >= 200) return;
    // Media sessions and dialogs (hooks.ts): SDP offers are made here; 503 (no media ports) / 488.
    const hooked = this.hooks?.request ? await this.hooks.request(tx, targets.flat()) : true;
    if (hooked !== true) return hooked === false ? undefined : this.reject(tx, hooked.status, hooked.reason);
    this.proxy(tx, targets);
  }

  /** Removes Proxy-Authorization values whose realm is ours (after a successful check). */
  private consumeCredentials(req: SipRequest): void {
    const realm = this.auth?.realm;
    const values = getHeaderValues(req, 'proxy-authorization');
    if (!realm || values.length === 0) return;
    // One value and verify() succeeded: it was ours (verify uses only our realm's credentials).
    if (values.length === 1) {
      removeHeader(req, 'proxy-authorization');
      return;
    }
    const keep = values.filter((v) => parseDigestParams(v)?.realm !== realm);
    if (keep.length === values.length) return;
    removeHeader(req, 'proxy-authorization');
    for (const v of keep) appendHeader(req, 'Proxy-Authorization', v);
  }

  /** Requests addressed to the edge itself (no user part): OPTIONS keepalives and probes. */
  private handleLocal(tx: ServerTransaction): void {
    const req = tx.request;
    if (req.method === 'OPTIONS') {
      // RFC 3261 §11.2: 200 with Allow / Accept / Supported.
      return this.respond(
        tx,
        createResponse(req, 200, 'OK', {
          toTag: generateTag(),
          headers: [
            ['Allow', 'INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, UPDATE, INFO, REFER, MESSAGE, NOTIFY, SUBSCRIBE, PRACK'],
            ['Accept', 'application/sdp'],
            ['Supported', 'path, outbound'],
          ],
        }),
      );
    }
    if (req.method === 'ACK') return;
    this.reject(tx, 404, 'Not Found');
  }

  private fromUser(req: SipRequest): string | undefined {
    const f = getHeader(req, 'from');
    if (!f) return undefined;
    return parseNameAddrShared(f)?.uri.user;
  }

  /** Whether a Request-URI is for a domain we serve (or one of our own addresses). */
  private isLocalDomain(uri: SipUri): boolean {
    if (this.self.isSelf(uri)) return true;
    return this.domains.has(uri.host.toLowerCase());
  }

  // ---------------------------------------------------------------- routing (§16.4, §16.5)

  /**
   * RFC 3261 §16.4 Route preprocessing, in place: strict-router compatibility (a Request-URI
   * we placed in a Record-Route is replaced by the last Route value) and removal of every
   * leading Route value that names us; flow tokens from removed values are decoded.
   */
  private preprocessRoutes(req: SipRequest): { ok: true; ruri: SipUri; token?: FlowToken } | { ok: false } {
    let token: FlowToken | undefined;
    let ruri = parseUriShared(req.uri);
    if (ruri === undefined) return { ok: false };
    // "If the Request-URI contains a value this proxy previously placed into a Record-Route
    // header field, the proxy MUST replace the Request-URI in the request with the last value
    // from the Route header field, and remove that value from the Route header field."
    if (this.self.isSelf(ruri) && ruri.user && ruri.params.lr === undefined) {
      const t = this.tokens.decode(ruri.user);
      const routes = getHeaderValues(req, 'route');
      if (t && routes.length > 0) {
        token = t;
        const last = routes[routes.length - 1];
        removeHeader(req, 'route');
        for (const r of routes.slice(0, -1)) appendHeader(req, 'Route', r);
        req.uri = formatUriText(last);
        ruri = parseUriShared(req.uri);
        if (ruri === undefined) return { ok: false };
      }
    }
    // "If the first value in the Route header field indicates this proxy, the proxy MUST remove
    // that value from the request."  (Repeated: with double Record-Route both entries are ours.)
    for (let i = 0; i < 4; i++) {
      const first = getHeader(req, 'route');
      if (!first) break;
      const na = parseNameAddrShared(first);
      if (na === undefined) return { ok: false };
      if (!this.self.isSelf(na.uri)) break;
      removeFirstHeaderValue(req, 'route');
      if (!token && na.uri.user) token = this.tokens.decode(na.uri.user);
    }
    return { ok: true, ruri, token };
  }

  /**
   * Next hop for a request that is not resolved through the location service: the first
   * Route value, the flow named by our flow token, or the Request-URI (RFC 3261 §16.5, §16.6 step 6–7).
   */
  private async nextHop(req: SipRequest, token: FlowToken | undefined): Promise<Target | undefined> {
    const routes = getHeaderValues(req, 'route');
    if (routes.length > 0) {
      const na = parseNameAddrShared(routes[0]);
      if (na === undefined) return undefined;
      const dest = await this.resolve(na.uri);
      return dest ? { uri: req.uri, dest } : undefined;
    }
    if (token) {
      const flow = this.tokenFlow(req, token);
      // A flow that is gone is never replaced by a new connection to the Request-URI (a NATed
      // UA's private Contact, or its NAT that lets no connection in): see tokenFlowFailed().
      return this.tokenFlowFailed(req, token) ? undefined : { uri: req.uri, dest: destOfTokenFlow(flow) };
    }
    const ruri = parseUriShared(req.uri);
    if (ruri === undefined) return undefined;
    const dest = await this.resolve(ruri);
    return dest ? { uri: req.uri, dest } : undefined;
  }

  /** The flow of `token` this request goes to: the callee's when it comes from the caller (RFC 3261 §12.2.1.1: the caller keeps the initial From tag). */
  private tokenFlow(req: SipRequest, token: FlowToken): TokenFlow {
    return tagParam(getHeader(req, 'from')) === token.ftag ? token.b : token.a;
  }

  /** Whether the request must go over its flow token's connection and that connection is gone (no Route left to follow). */
  private tokenFlowFailed(req: SipRequest, token: FlowToken): boolean {
    if (getHeaderValues(req, 'route').length > 0) return false;
    const flow = this.tokenFlow(req, token);
    return flow.connectionId !== undefined && !this.transport.connectionOpen(flow.connectionId);
  }

  /** Targets for a request (RFC 3261 §16.5); answers the request itself when there are none. */
  private async targets(tx: ServerTransaction, uri: SipUri, token: FlowToken | undefined, local: boolean): Promise<Target[][] | undefined> {
    const req = tx.request;
    if (local && uri.user !== undefined) {
      // "If the domain of the Request-URI indicates a domain this element is responsible for,
      // the Request-URI MUST be placed into the target set" … via the location service.
      const aor = aorFromUri(uri);
      const bindings = aor ? await this.registrar.lookup(aor) : [];
      if (bindings.length === 0) {
        if (this.users.has(uri.user)) this.reject(tx, 480, 'Temporarily Unavailable');
        else this.reject(tx, 404, 'Not Found');
        return undefined;
      }
      const groups: Target[][] = [];
      let lastQ = -1;
      // RFC 5626 §7: "The proxy MUST NOT populate the target set with more than one contact with
      // the same AOR and instance-id at a time." The most recent usable flow of an instance wins.
      const instances = new Set<string>();
      for (const b of bindings) {
        const t = this.bindingTarget(b);
        if (!t) continue;
        if (b.instanceId !== undefined && b.regId !== undefined) {
          if (instances.has(b.instanceId)) continue;
          instances.add(b.instanceId);
        }
        if (b.q !== lastQ) {
          groups.push([]);
          lastQ = b.q;
        }
        groups[groups.length - 1].push(t);
      }
      if (groups.length === 0) {
        this.reject(tx, 480, 'Temporarily Unavailable');
        return undefined;
      }
      return groups;
    }
    // RFC 5626 §5.3.1: "If the flow no longer exists, the proxy SHOULD send a 430 (Flow Failed)
    // response to the request."
    if (token && this.tokenFlowFailed(req, token)) {
      this.reject(tx, 430, 'Flow Failed');
      return undefined;
    }
    const hop = await this.nextHop(req, token);
    if (!hop) {
      this.reject(tx, 404, 'Not Found');
      return undefined;
    }
    return [[hop]];
  }

  /**
   * How to reach a binding: its received flow when NATed or registered with RFC 5626 outbound
   * (reg-id), else its Contact. A flow over a connection that is gone makes the binding
   * unusable: never a new connection to a NATed address (the NAT would not let it in; the
   * request ends as 480 when no binding is left) nor to an outbound UA (RFC 5626 §5.3).
   */
  private bindingTarget(b: Binding): Target | undefined {
    if (b.nat || b.regId !== undefined) {
      const r = b.received;
      if (r.connectionId !== undefined && !this.transport.connectionOpen(r.connectionId)) return undefined;
      return { uri: b.contact, binding: b, dest: { transport: r.transport, address: r.address, port: r.port, socketId: r.socketId, connectionId: r.connectionId } };
    }
    const u = parseUri(b.contact);
    if (!u.ok || !isIp(u.value.host)) {
      const r = b.received;
      return { uri: b.contact, binding: b, dest: { transport: r.transport, address: r.address, port: r.port, socketId: r.socketId, connectionId: r.connectionId } };
    }
    const transport = uriTransport(u.value);
    const dest: Destination = { transport, address: u.value.host, port: u.value.port ?? (transport === 'tls' ? 5061 : 5060) };
    if (transport === b.received.transport) {
      dest.socketId = b.received.socketId;
      if (b.received.address === dest.address && b.received.port === dest.port) dest.connectionId = b.received.connectionId;
    }
    return { uri: b.contact, binding: b, dest };
  }

  /** RFC 3263-lite: IP literals as they are, names by an A/AAAA lookup. */
  private async resolve(u: SipUri): Promise<Destination | undefined> {
    const transport = uriTransport(u);
    const host = u.params.maddr ?? u.host;
    const port = u.port ?? (transport === 'tls' ? 5061 : 5060);
    if (isIp(host)) return { transport, address: host, port };
    try {
      const r = await dns.promises.lookup(host);
      return { transport, address: r.address, port };
    } catch {
      return undefined;
    }
  }

  private viaDestination(v: Via): Destination {
    const transport = (v.transport.toLowerCase() as TransportProto) ?? 'udp';
    const address = v.params.received ?? v.host;
    const rport = v.params.rport;
    const port = rport ? Number(rport) : (v.port ?? 5060);
    return { transport, address, port };
  }

  // ---------------------------------------------------------------- forwarding (§16.6)

  private chooseSocket(dest: Destination): AdvertiseSocket | undefined {
    if (dest.socketId) {
      const s = this.sockets.find((x) => x.id === dest.socketId);
      if (s) return s;
    }
    const v6 = dest.address.includes(':');
    return (
      this.sockets.find((s) => s.transport === dest.transport && s.address.includes(':') === v6 && s.address !== '0.0.0.0' && s.address !== '::') ??
      this.sockets.find((s) => s.transport === dest.transport && s.address.includes(':') === v6)
    );
  }

  /**
   * Loop-detection part of our branch (RFC 3261 §16.6 step 8): a hash of what routing used —
   * Request-URI, From/To tags, Call-ID, CSeq number, Route and Proxy-Require values. §16.6 lets
   * it be any function of those; a 40-bit non-cryptographic hash is enough to tell a loop from a
   * spiral.
   */
  private loopHash(req: SipRequest): string {
    const cs = parseCSeq(getHeader(req, 'cseq') ?? '');
    let text = req.uri + '|' + (tagParam(getHeader(req, 'from')) ?? '') + '|' + (tagParam(getHeader(req, 'to')) ?? '') + '|' + (getHeader(req, 'call-id') ?? '') + '|' + (cs.ok ? cs.value.seq : '') + '|';
    let route = false;
    let proxyRequire = false;
    const hs = req.headers;
    for (let i = 0; i < hs.length; i++) {
      const k = hs[i].key;
      if (k === 'route') route = true;
      else if (k === 'proxy-require') proxyRequire = true;
    }
    // Values split and comma-joined, so that re-folding by another hop does not change the hash.
    if (route) text += getHeaderValues(req, 'route').join(',');
    text += '|';
    if (proxyRequire) text += getHeaderValues(req, 'proxy-require').join(',');
    return hash64Hex(text).slice(0, 10);
  }

  /** RFC 3261 §16.3 step 4: a Via of ours whose branch carries this request's loop hash. */
  private isLoop(req: SipRequest): boolean {
    let hash: string | undefined;
    for (const v of getHeaderValues(req, 'via')) {
      // Only our branches carry the loop hash: skip the parse of every other Via.
      if (v.indexOf('z9hG4bK-se') < 0) continue;
      const p = parseViaShared(v);
      if (p === undefined || !this.self.isSelfHost(p.host, p.port)) continue;
      const b = p.params.branch ?? '';
      if (!b.startsWith('z9hG4bK-se')) continue;
      hash ??= this.loopHash(req);
      if (b.slice(10, 20) === hash) return true;
    }
    return false;
  }

  private branchId(loopHash: string, n: number): string {
    return `z9hG4bK-se${loopHash}.${generateTag()}${n}`;
  }

  /** §16.11: a stateless proxy's branch is a function of the incoming branch, so retransmissions match. */
  private statelessBranch(req: SipRequest): string {
    const v = getHeader(req, 'via') ?? '';
    const p = parseViaShared(v);
    const b = p !== undefined ? (p.params.branch ?? v) : v;
    return 'z9hG4bK-sl' + hash64Hex(b + '|' + req.method);
  }

  /**
   * Builds the request to forward to one target (RFC 3261 §16.6 steps 1–8): copy, new
   * Request-URI, Max-Forwards decremented, Record-Route (double when the two sides use
   * different addresses, RFC 5658), our Via on top.
   * @returns undefined when no socket can reach the destination
   */
  private prepareForward(req: SipRequest, target: Target, inbound: Inbound, branch: string, recordRoute: boolean): SipRequest | undefined {
    const out = this.chooseSocket(target.dest);
    if (!out) return undefined;
    target.dest.socketId = out.id;
    const fwd = cloneMessage(req);
    fwd.uri = target.uri;
    const mf = getHeader(fwd, 'max-forwards');
    setHeader(fwd, 'Max-Forwards', String(mf === undefined ? 69 : Math.max(0, Number(mf) - 1)));
    const decided = advertisedFor(out, target.dest.address, this.advertise);
    // A hook's per-transaction address (set_advertised_address) replaces the decision; we learn it as ours.
    const outAddr = target.advertised ? { host: target.advertised.host, port: target.advertised.port ?? decided.port } : decided;
    if (target.advertised) this.self.learn(outAddr.host, outAddr.port);
    if (recordRoute) {
      const inSock = this.sockets.find((s) => s.id === inbound.flow.local.socketId) ?? out;
      const inAddr = advertisedFor(inSock, inbound.flow.remote.address, this.advertise);
      const token = this.tokens.encode({
        ftag: tagParam(getHeader(req, 'from')) ?? '',
        a: tokenFlowOf(inbound.flow),
        b: { transport: target.dest.transport, address: target.dest.address, port: target.dest.port, socketId: out.id, connectionId: target.dest.connectionId },
      });
      const rr = (addr: { host: string; port: number }, t: TransportProto): string =>
        `<sip:${token}@${formatHostPort(addr.host, addr.port)}${t === 'udp' ? '' : ';transport=' + t};lr>`;
      if (inSock.id !== out.id || inAddr.host !== outAddr.host || inAddr.port !== outAddr.port) {
        prependHeader(fwd, 'Record-Route', rr(inAddr, inSock.transport));
      }
      prependHeader(fwd, 'Record-Route', rr(outAddr, out.transport));
    }
    prependHeader(fwd, 'Via', `SIP/2.0/${out.transport.toUpperCase()} ${formatHostPort(outAddr.host, outAddr.port)};branch=${branch};rport`);
    return fwd;
  }

  /** Starts forwarding to the target groups (serial by q, parallel within a group). */
  private proxy(tx: ServerTransaction, groups: Target[][]): void {
    const req = tx.request;
    const isInvite = req.method === 'INVITE';
    // RFC 3261 §16.2: "a stateful proxy … MUST … send a 100 (Trying)" for INVITE (§16.7 says
    // the 100 may be generated by the proxy itself).
    if (isInvite) tx.respond(createResponse(req, 100, 'Trying'));
    const ctx: ResponseContext = {
      tx,
      request: req,
      isInvite,
      branches: [],
      pending: groups.slice(1),
      finals: [],
      finalSent: false,
      got2xx: false,
      cancelled: false,
      got6xx: false,
    };
    this.contexts.set(tx, ctx);
    this.startGroup(ctx, groups[0]);
  }

  private startGroup(ctx: ResponseContext, group: Target[]): void {
    const inDialog = tagParam(getHeader(ctx.request, 'to')) !== undefined;
    const rr = this.settings.recordRoute && !inDialog && DIALOG_CREATING.has(ctx.request.method);
    const loopHash = this.loopHash(ctx.request);
    for (const target of group) {
      const branchId = this.branchId(loopHash, ctx.branches.length);
      const fwd = this.prepareForward(ctx.request, target, ctx.tx.inbound, branchId, rr);
      const br: BranchState = { target, request: fwd ?? ctx.request, provisional: false, cancelOnProvisional: false, cancelled: false, done: false };
      ctx.branches.push(br);
      if (!fwd) {
        this.branchFinal(ctx, br, finalResponse(ctx.request, 503, 'Service Unavailable - no socket for destination'));
        continue;
      }
      this.stats.forwarded++;
      this.hooks?.forward?.(ctx.tx, fwd, target.dest);
      try {
        br.tx = this.layer.sendRequest(fwd, target.dest, {
          onResponse: (res, inbound) =>
            this.hookedBranchResponse(ctx, br, this.settings.rewriteContact ? fixResponseContact(res, inbound.flow, this.settings.natClients, br.target.binding?.nat === true) : res),
          onTimeout: () => this.branchFinal(ctx, br, finalResponse(ctx.request, 408, 'Request Timeout')),
          onTransportError: () => this.branchFinal(ctx, br, finalResponse(ctx.request, 503, 'Service Unavailable')),
        });
      } catch (err) {
        this.log.warn({ err }, 'could not start client transaction');
        this.branchFinal(ctx, br, finalResponse(ctx.request, 500, 'Server Internal Error'));
        continue;
      }
      if (ctx.isInvite) this.armTimerC(ctx, br);
    }
  }

  private armTimerC(ctx: ResponseContext, br: BranchState): void {
    this.clock.clearTimer(br.timerC);
    br.timerC = this.clock.setTimer(this.settings.timerCMs, () => {
      // RFC 3261 §16.8: "If timer C should fire, the proxy MUST either reset the timer with
      // any value it chooses, or terminate the client transaction." We CANCEL if it was
      // ringing, else treat the branch as timed out.
      if (br.done) return;
      if (br.provisional) this.cancelBranch(br);
      this.branchFinal(ctx, br, finalResponse(ctx.request, 408, 'Request Timeout'));
    });
  }

  // ---------------------------------------------------------------- responses (§16.7)

  /** A branch response, first through the response hook (SDP rewrite; keeps the order of a call's responses). */
  private hookedBranchResponse(ctx: ResponseContext, br: BranchState, res: SipResponse): void {
    const hooked = this.hooks?.response?.(ctx.tx, br.request, br.target.dest, res);
    if (!hooked) return this.onBranchResponse(ctx, br, res);
    hooked.then((r) => this.onBranchResponse(ctx, br, r)).catch((err: unknown) => this.log.error({ err }, 'response handling failed'));
  }

  private onBranchResponse(ctx: ResponseContext, br: BranchState, inRes: SipResponse): void {
    const res = cloneMessage(inRes);
    // §16.7 step 3: "The proxy removes the topmost Via header field value from the response."
    removeFirstHeaderValue(res, 'via');
    if (!getHeader(res, 'via')) return; // it was addressed to us; nothing to forward
    if (res.status < 200) {
      // RFC 3261 §9.1: a CANCEL waits for "a provisional response" — 100 (Trying) included.
      br.provisional = true;
      if (res.status !== 100 && ctx.isInvite) this.armTimerC(ctx, br); // §16.7 step 2: reset Timer C on 101–199
      if (br.cancelOnProvisional) {
        this.cancelBranch(br);
        return;
      }
      if (res.status === 100) return; // §16.7 step 5: 100 is not forwarded
      if (!ctx.finalSent) ctx.tx.respond(res);
      return;
    }
    if (res.status < 300) {
      // "Any 2xx … MUST be forwarded immediately" (§16.7 step 5), including further 2xx for INVITE.
      if (!br.done) {
        br.done = true;
        this.clock.clearTimer(br.timerC);
      }
      ctx.got2xx = true;
      ctx.finalSent = true;
      this.count(res.status);
      ctx.tx.respond(res);
      // §16.7 step 10: cancel all other pending branches.
      if (ctx.isInvite) for (const other of ctx.branches) if (other !== br && !other.done) this.cancelBranch(other);
      this.maybeFinish(ctx);
      return;
    }
    this.branchFinal(ctx, br, res);
  }

  /** Records a branch's final non-2xx response (real or synthesised) and completes the context when due. */
  private branchFinal(ctx: ResponseContext, br: BranchState, res: SipResponse): void {
    if (br.done) return;
    br.done = true;
    this.clock.clearTimer(br.timerC);
    ctx.finals.push(res);
    if (res.status >= 600) {
      ctx.got6xx = true;
      // §16.7 step 5: "If a 6xx response is received … the proxy SHOULD cancel all client pending transactions".
      for (const other of ctx.branches) if (!other.done) this.cancelBranch(other);
    }
    this.maybeFinish(ctx);
  }

  private maybeFinish(ctx: ResponseContext): void {
    if (ctx.branches.some((b) => !b.done)) return;
    if (!ctx.finalSent && !ctx.cancelled && !ctx.got6xx && ctx.pending.length > 0) {
      // Serial forking: try the next q-group when this one failed without a 6xx.
      this.startGroup(ctx, ctx.pending.shift()!);
      return;
    }
    if (!ctx.finalSent) {
      ctx.finalSent = true;
      const best = selectBestResponse(ctx.finals) ?? finalResponse(ctx.request, 408, 'Request Timeout');
      const res = ctx.cancelled && ctx.isInvite && best.status < 400 ? finalResponse(ctx.request, 487, 'Request Terminated') : best;
      this.count(res.status);
      if (ctx.isInvite) this.hooks?.inviteFinal?.(ctx.tx, res);
      ctx.tx.respond(res);
    }
    this.contexts.delete(ctx.tx);
  }

  private count(status: number): void {
    const k = `${Math.floor(status / 100)}xx`;
    this.stats.finals[k] = (this.stats.finals[k] ?? 0) + 1;
  }

  // ---------------------------------------------------------------- CANCEL (§16.10)

  private handleCancel(tx: ServerTransaction): void {
    const invite = this.layer.findInviteServerTransaction(tx.request);
    // RFC 3261 §16.10: "If a response context is found, the element MUST immediately return a
    // 200 (OK) response to the CANCEL request." Otherwise it is forwarded statelessly; a CANCEL
    // for a transaction unknown to us gets 481.
    if (!invite) return this.reject(tx, 481, 'Call/Transaction Does Not Exist');
    this.respond(tx, finalResponse(tx.request, 200, 'OK'));
    const ctx = this.contexts.get(invite);
    if (!ctx) {
      if (!invite.lastResponse || invite.lastResponse.status < 200) invite.respond(finalResponse(invite.request, 487, 'Request Terminated'));
      return;
    }
    ctx.cancelled = true;
    for (const br of ctx.branches) if (!br.done) this.cancelBranch(br);
    ctx.pending = [];
  }

  /**
   * Sends CANCEL for one branch (RFC 3261 §9.1): same Request-URI, Call-ID, To, From, CSeq
   * number and top Via (branch) as the request; CANCEL waits for a provisional response.
   */
  private cancelBranch(br: BranchState): void {
    if (br.cancelled || br.done || !br.tx) return;
    if (!br.provisional) {
      // §9.1: "If no provisional response has been received, the CANCEL request MUST NOT be sent".
      br.cancelOnProvisional = true;
      return;
    }
    br.cancelled = true;
    const r = br.request;
    const cancel: SipRequest = { type: 'request', method: 'CANCEL', uri: r.uri, version: 'SIP/2.0', headers: [], body: Buffer.alloc(0) };
    appendHeader(cancel, 'Via', getHeader(r, 'via') ?? '');
    for (const rt of getHeaderValues(r, 'route')) appendHeader(cancel, 'Route', rt);
    appendHeader(cancel, 'Max-Forwards', '70');
    appendHeader(cancel, 'From', getHeader(r, 'from') ?? '');
    appendHeader(cancel, 'To', getHeader(r, 'to') ?? '');
    appendHeader(cancel, 'Call-ID', getHeader(r, 'call-id') ?? '');
    const cs = parseCSeq(getHeader(r, 'cseq') ?? '');
    appendHeader(cancel, 'CSeq', `${cs.ok ? cs.value.seq : 1} CANCEL`);
    appendHeader(cancel, 'Content-Length', '0');
    try {
      this.layer.sendRequest(cancel, br.target.dest, {
        onResponse: () => undefined,
        onTimeout: () => undefined,
        onTransportError: () => undefined,
      });
    } catch (err) {
      this.log.debug({ err }, 'CANCEL not sent');
    }
  }

  // ---------------------------------------------------------------- answering

  private respond(tx: ServerTransaction, res: SipResponse): void {
    tx.respond(res);
  }

  private reject(tx: ServerTransaction, status: number, reason?: string, headers?: Array<[string, string]>): void {
    if (tx.request.method === 'ACK') return;
    this.stats.rejected[status] = (this.stats.rejected[status] ?? 0) + 1;
    tx.respond(createResponse(tx.request, status, reason, { toTag: status > 100 ? generateTag() : undefined, headers }));
  }

  /** 503 + Retry-After (RFC 3261 §20.33: delta-seconds) for a request shed under overload. */
  private shed(tx: ServerTransaction, retryAfter: number): void {
    this.stats.overloadRejected++;
    this.onOverloadRejected?.();
    this.reject(tx, 503, 'Service Unavailable', [['Retry-After', String(retryAfter)]]);
  }

  private challenge(tx: ServerTransaction, r: DigestResult & { ok: false }): void {
    // RFC 3261 §22.3: 407 with Proxy-Authenticate; a stale nonce gets stale=true.
    if (r.reason === 'unknown-user' || r.reason === 'bad-credentials' || r.reason === 'missing' || r.reason === 'stale' || r.reason === 'replay') {
      const headers = this.auth!.challenge(r.reason === 'stale').map((v): [string, string] => ['Proxy-Authenticate', v]);
      return this.reject(tx, 407, 'Proxy Authentication Required', headers);
    }
    this.reject(tx, 400, 'Bad Proxy-Authorization');
  }

  /** Drops every response context (shutdown). */
  close(): void {
    for (const ctx of this.contexts.values()) for (const br of ctx.branches) this.clock.clearTimer(br.timerC);
    this.contexts.clear();
  }
}

/**
 * A final response generated by the proxy itself. RFC 3261 §8.2.6.2: "if the To header field
 * in the request did not contain a tag, … the UAS MUST add a tag to the To header field in the
 * response"; §16.3: a proxy rejecting a request "MUST behave as a user agent server".
 */
function finalResponse(req: SipRequest, status: number, reason: string): SipResponse {
  return createResponse(req, status, reason, { toTag: generateTag() });
}

/** The URI text inside a Route value (`<sip:…;lr>` → `sip:…;lr`). */
function formatUriText(routeValue: string): string {
  const s = routeValue.trim();
  const lt = s.indexOf('<');
  const gt = s.lastIndexOf('>');
  return lt >= 0 && gt > lt ? s.slice(lt + 1, gt) : s;
}

