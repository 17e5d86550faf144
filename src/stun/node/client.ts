/**
 * `node:dgram` adapter of the STUN Binding client: resolves the server, sends the request on the
 * RFC 8489 §6.2.1 schedule computed by {@link retransmitSchedule}, and feeds every received
 * datagram to {@link judgeBindingResponse}. All timers go through an injected {@link Clock}.
 *
 * Used for public-address discovery (`publicAddress.discover: [stun]`): the mapped address of a
 * Binding request is the NAT's public address for the socket it was sent from.
 */
import dgram from 'node:dgram';
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { SystemClock, type Clock, type TimerHandle } from '../../lib/clock.js';
import {
  createBindingRequest,
  judgeBindingResponse,
  retransmitSchedule,
  type RetransmitOptions,
  type StunBindingResult,
} from '../client.js';

/** Resolves a host name to one address of the wanted family (0 = any). */
export type StunLookup = (host: string, family: 0 | 4 | 6) => Promise<{ address: string; family: number }>;

/** Options of {@link stunBinding}; unset retransmission fields take `DISCOVERY_RETRANSMIT`. */
export interface StunBindingOptions extends RetransmitOptions {
  /**
   * Socket to send from and listen on, e.g. a SIP socket whose public mapping is wanted. It is
   * neither bound nor closed here; other traffic on it is left alone (a `message` listener is added
   * for the transaction and removed after). Without it, a fresh socket is bound and closed.
   */
  socket?: dgram.Socket;
  /** Local address to bind the fresh socket to (ignored with `socket`); its family picks udp4/udp6. */
  localAddress?: string;
  /** Local port for the fresh socket; default 0 (ephemeral). */
  localPort?: number;
  /** SOFTWARE attribute text of the request. */
  software?: string;
  /** Add FINGERPRINT to the request (default true). */
  fingerprint?: boolean;
  /** Time source for the retransmission timers (default: a {@link SystemClock}). */
  clock?: Clock;
  /** Name resolution (default: `dns.promises.lookup`). */
  lookup?: StunLookup;
}

const defaultLookup: StunLookup = async (host, family) => dnsLookup(host, { family });

function socketFamily(socket: dgram.Socket): 4 | 6 | undefined {
  try {
    return socket.address().family === 'IPv6' ? 6 : 4;
  } catch {
    return undefined; // not bound yet; send() will bind it
  }
}

function bindFresh(type: 'udp4' | 'udp6', port: number, address: string | undefined): Promise<dgram.Socket | Error> {
  return new Promise((resolve) => {
    let sock: dgram.Socket;
    try {
      sock = dgram.createSocket(type);
    } catch (err) {
      resolve(err as Error);
      return;
    }
    const onError = (err: Error) => {
      sock.close();
      resolve(err);
    };
    sock.once('error', onError);
    try {
      // exclusive: in a node:cluster worker a non-exclusive bind would share one socket (and its replies) between workers.
      sock.bind({ port, address, exclusive: true }, () => {
        sock.off('error', onError);
        resolve(sock);
      });
    } catch (err) {
      sock.off('error', onError);
      resolve(err as Error);
    }
  });
}

/**
 * Runs one STUN Binding transaction against `server` (RFC 8489 §6.1–§6.3) and reports our mapped
 * address. Never rejects: failures are `{ ok: false, code }` with `code` one of `TIMEOUT`,
 * `BAD_RESPONSE`, `ERROR_RESPONSE`, `DNS`, `SOCKET`.
 *
 * The name is resolved to one address of the sending socket's family (IPv4 when that is not
 * known yet). Responses are matched by transaction id only.
 */
export async function stunBinding(server: { host: string; port: number }, opts: StunBindingOptions = {}): Promise<StunBindingResult> {
  const clock = opts.clock ?? new SystemClock();
  let host = server.host.trim();
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (!Number.isInteger(server.port) || server.port < 1 || server.port > 0xffff) {
    return { ok: false, code: 'SOCKET', detail: `bad server port ${server.port}` };
  }

  const wantFamily: 4 | 6 =
    (opts.socket && socketFamily(opts.socket)) || (opts.localAddress && isIP(opts.localAddress) === 6 ? 6 : 4);
  let address: string;
  if (isIP(host) !== 0) {
    address = host;
  } else {
    try {
      address = (await (opts.lookup ?? defaultLookup)(host, wantFamily)).address;
    } catch (err) {
      return { ok: false, code: 'DNS', detail: `${host}: ${(err as Error).message}` };
    }
  }

  let socket = opts.socket;
  const own = !socket;
  if (!socket) {
    const bound = await bindFresh(isIP(address) === 6 ? 'udp6' : 'udp4', opts.localPort ?? 0, opts.localAddress);
    if (bound instanceof Error) return { ok: false, code: 'SOCKET', detail: bound.message };
    socket = bound;
  }
  const sock = socket;

  const { transactionId, packet } = createBindingRequest({ software: opts.software, fingerprint: opts.fingerprint });
  const schedule = retransmitSchedule(opts);

  return new Promise<StunBindingResult>((resolve) => {
    const timers: TimerHandle[] = [];
    const startedAt = clock.now();
    let transmissions = 0;
    let done = false;

    const finish = (result: StunBindingResult) => {
      if (done) return;
      done = true;
      for (const t of timers) clock.clearTimer(t);
      sock.off('message', onMessage);
      if (own) {
        sock.off('error', onSocketError);
        try {
          sock.close();
        } catch {
          // already closed
        }
      }
      resolve(result);
    };

    function onMessage(msg: Buffer): void {
      const verdict = judgeBindingResponse(msg, transactionId);
      if (verdict.kind === 'ignore') return;
      if (verdict.kind === 'success') {
        finish({ ok: true, mapped: verdict.mapped, rttMs: clock.now() - startedAt, transmissions, server: { address, port: server.port } });
      } else {
        const { kind: _kind, ...failure } = verdict;
        finish({ ok: false, ...failure });
      }
    }

    function onSocketError(err: Error): void {
      finish({ ok: false, code: 'SOCKET', detail: err.message });
    }

    const transmit = () => {
      if (done) return;
      transmissions++;
      try {
        sock.send(packet, server.port, address, (err) => {
          if (err) finish({ ok: false, code: 'SOCKET', detail: err.message });
        });
      } catch (err) {
        finish({ ok: false, code: 'SOCKET', detail: (err as Error).message });
      }
    };

    sock.on('message', onMessage);
    if (own) sock.on('error', onSocketError);
    for (const at of schedule.sendAt.slice(1)) timers.push(clock.setTimer(at, transmit));
    timers.push(
      clock.setTimer(schedule.giveUpAt, () =>
        finish({ ok: false, code: 'TIMEOUT', detail: `no response from ${address}:${server.port} after ${transmissions} request(s) in ${schedule.giveUpAt} ms` }),
      ),
    );
    transmit();
  });
}
