/**
 * The inside/outside decision: which address represents us in a message sent from one of our
 * sockets to a given destination (Via sent-by, Record-Route, Contact, SDP). Asterisk calls the
 * pieces `externip` and `localnet`; OpenSIPS `listen … as …` and `advertised_address`.
 *
 * Rule: a destination inside `localnet` (or loopback, or on the socket's own private network)
 * sees the socket's own address; any other destination sees the advertised address
 * (the socket's `as`, else the public address), when one is known.
 */
import os from 'node:os';
import ipaddr from 'ipaddr.js';
import type { ListenSpec } from '../transport/types.js';

/** A parsed CIDR range. */
export type Cidr = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Parses CIDR strings (`10.0.0.0/8`, `fd00::/8`); invalid entries are skipped (config validation reports them). */
export function parseCidrs(ranges: string[]): Cidr[] {
  const out: Cidr[] = [];
  for (const r of ranges) {
    try {
      out.push(ipaddr.parseCIDR(r));
    } catch {
      /* validated by config */
    }
  }
  return out;
}

/** Whether `address` (IPv4 or IPv6 text) falls inside any of `ranges`. Unparsable addresses are outside. */
export function inRanges(address: string, ranges: Cidr[]): boolean {
  if (ranges.length === 0 || !ipaddr.isValid(address)) return false;
  let a = ipaddr.parse(address);
  if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) a = (a as ipaddr.IPv6).toIPv4Address();
  for (const [net, bits] of ranges) {
    if (net.kind() === a.kind() && a.match(net, bits)) return true;
  }
  return false;
}

/** Whether an address is loopback (127/8, ::1). */
export function isLoopback(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  const r = ipaddr.parse(address).range();
  return r === 'loopback';
}

/** A socket as the advertising logic sees it: bound address/port and optional `as` address. */
export interface AdvertiseSocket {
  id: string;
  transport: ListenSpec['transport'];
  address: string;
  port: number;
  advertised?: { host: string; port: number };
}

/** Inputs of the inside/outside decision. */
export interface AdvertiseContext {
  /** Public address for sockets without `as` (externip / discovered), if any. */
  publicAddress?: string;
  localnet: Cidr[];
}

/** Picks a concrete local address for a socket bound to a wildcard (0.0.0.0 / ::). */
export function concreteAddress(bound: string, towards: string): string {
  if (bound !== '0.0.0.0' && bound !== '::') return bound;
  const v6 = bound === '::';
  if (isLoopback(towards)) return v6 ? '::1' : '127.0.0.1';
  const ifs = os.networkInterfaces();
  for (const list of Object.values(ifs)) {
    for (const i of list ?? []) {
      if (i.internal) continue;
      if ((i.family === 'IPv6') === v6) return i.address;
    }
  }
  return v6 ? '::1' : '127.0.0.1';
}

/**
 * The host and port that represent `socket` to `destination` (RFC 3261 §18.2.1 sent-by,
 * RFC 3261 §16.6 step 4 Record-Route).
 * @returns `{host, port}` to write; IPv6 without brackets.
 */
export function advertisedFor(socket: AdvertiseSocket, destination: string, ctx: AdvertiseContext): { host: string; port: number } {
  const inside = isLoopback(destination) || inRanges(destination, ctx.localnet);
  if (!inside) {
    if (socket.advertised) return socket.advertised;
    if (ctx.publicAddress) return { host: ctx.publicAddress, port: socket.port };
  }
  return { host: concreteAddress(socket.address, destination), port: socket.port };
}
