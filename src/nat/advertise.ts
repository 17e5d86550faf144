/**
 * The inside/outside decision: which address represents us in a message sent from one of our
 * sockets to a given destination (Via sent-by, Record-Route, Contact, SDP). Asterisk calls the
 * pieces `externip` and `localnet`; OpenSIPS `listen … as …` and `advertised_address`.
 *
 * Rule ({@link isInsideFor}): a destination is *inside* when it is
 *  - loopback, or
 *  - inside a `localnet` range, or
 *  - on the socket's own private network: the subnet of the interface that carries a private
 *    bind address (RFC 1918, RFC 6598 CGN, link-local, IPv6 ULA) — a neighbour on the edge's
 *    own LAN never needs `localnet` to see the address it can actually reach.
 *
 * An inside destination sees the socket's own address; any other destination sees the
 * advertised address (the socket's `as`, else the public address), when one is known.
 *
 * Every place that writes our address calls this module: the proxy (Via, Record-Route, double
 * Record-Route per RFC 5658), keepalive OPTIONS (via `Proxy.localAddressFor`), BYEs the edge
 * originates, and the media unit (SDP `c=`).
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

/** A parsed address and its ipaddr.js range name, shared read-only between callers. */
interface ParsedIp {
  ip: ipaddr.IPv4 | ipaddr.IPv6;
  range: string;
  /** Normalised text: IPv4-mapped IPv6 as IPv4, IPv6 compressed and lower-case. */
  text: string;
}

/** Most addresses {@link parseIpCached} remembers before starting over. */
const IP_CACHE_MAX = 4096;
const ipCache = new Map<string, ParsedIp | null>();

/**
 * {@link parseIp} plus the range name, remembered per address text: these checks run several
 * times per SIP message (advertising, NAT detection) for the same few peers, and ipaddr.js
 * parsing is the costly part. Bounded: the cache is emptied when it holds {@link IP_CACHE_MAX}.
 */
function parseIpCached(address: string): ParsedIp | undefined {
  let v = ipCache.get(address);
  if (v === undefined) {
    const ip = parseIp(address);
    v = ip === undefined ? null : { ip, range: ip.range(), text: ip.toString() };
    if (ipCache.size >= IP_CACHE_MAX) ipCache.clear();
    ipCache.set(address, v);
  }
  return v ?? undefined;
}

/**
 * The normalised text of an IP address (IPv4-mapped IPv6 → IPv4, IPv6 compressed, lower-case),
 * for comparing addresses written differently; undefined when `address` is not an IP (no brackets).
 */
export function normalizedIp(address: string): string | undefined {
  return parseIpCached(address)?.text;
}

/** Parses an address, turning IPv4-mapped IPv6 (`::ffff:10.0.0.1`) into IPv4; undefined when not an IP. */
function parseIp(address: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  if (!ipaddr.isValid(address)) return undefined;
  const a = ipaddr.parse(address);
  if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) return (a as ipaddr.IPv6).toIPv4Address();
  return a;
}

/** Whether `address` (IPv4 or IPv6 text) falls inside any of `ranges`. Unparsable addresses are outside. */
export function inRanges(address: string, ranges: Cidr[]): boolean {
  if (ranges.length === 0) return false;
  const a = parseIpCached(address)?.ip;
  if (!a) return false;
  for (const [net, bits] of ranges) {
    if (net.kind() === a.kind() && a.match(net, bits)) return true;
  }
  return false;
}

/** Whether an address is loopback (127/8, ::1). */
export function isLoopback(address: string): boolean {
  return parseIpCached(address)?.range === 'loopback';
}

/** ipaddr.js ranges of addresses that are not reachable from the internet (a NAT's inside). */
const PRIVATE_RANGES: ReadonlySet<string> = new Set(['private', 'carrierGradeNat', 'linkLocal', 'uniqueLocal']);

/** Whether an address is private: RFC 1918, RFC 6598 (100.64/10), link-local, or IPv6 ULA (fc00::/7). */
export function isPrivateAddress(address: string): boolean {
  const r = parseIpCached(address)?.range;
  return r !== undefined && PRIVATE_RANGES.has(r);
}

/** A socket as the advertising logic sees it: bound address/port and optional `as` address. */
export interface AdvertiseSocket {
  id: string;
  transport: ListenSpec['transport'];
  address: string;
  port: number;
  advertised?: { host: string; port: number };
}

/** The host's interface table, as `os.networkInterfaces()` returns it. */
export type InterfaceTable = NodeJS.Dict<os.NetworkInterfaceInfo[]>;

/** Inputs of the inside/outside decision. */
export interface AdvertiseContext {
  /** Public address for sockets without `as` (externip / discovered), if any. */
  publicAddress?: string;
  localnet: Cidr[];
  /** The interface table (default: the host's, re-read at most once a second). Tests inject one. */
  interfaces?: InterfaceTable;
}

/** One non-internal interface address with its subnet. */
interface IfNet {
  address: string;
  net: Cidr;
  v6: boolean;
  private: boolean;
}

const IF_CACHE_MS = 1000;
let ifCache: { at: number; nets: IfNet[] } | undefined;

function parseInterfaces(table: InterfaceTable): IfNet[] {
  const out: IfNet[] = [];
  for (const list of Object.values(table)) {
    for (const i of list ?? []) {
      if (i.internal || !i.cidr) continue;
      try {
        const net = ipaddr.parseCIDR(i.cidr);
        out.push({ address: i.address.toLowerCase(), net, v6: i.family === 'IPv6', private: isPrivateAddress(i.address) });
      } catch {
        /* an address node cannot describe: skipped */
      }
    }
  }
  return out;
}

/** The interface subnets: the injected table, or the host's (cached for a second: this runs per message). */
function interfaceNets(ctx?: { interfaces?: InterfaceTable }): IfNet[] {
  if (ctx?.interfaces) return parseInterfaces(ctx.interfaces);
  const now = performance.now();
  if (!ifCache || now - ifCache.at > IF_CACHE_MS) ifCache = { at: now, nets: parseInterfaces(os.networkInterfaces()) };
  return ifCache.nets;
}

function isWildcard(address: string): boolean {
  return address === '0.0.0.0' || address === '::';
}

/**
 * Whether `destination` is on the private network of a socket bound to `bound`: the subnet of
 * the interface carrying that (private) address; for a wildcard bind, the subnet of any
 * interface with a private address.
 */
export function onOwnPrivateNetwork(bound: string, destination: string, ctx?: { interfaces?: InterfaceTable }): boolean {
  const d = parseIpCached(destination)?.ip;
  if (!d) return false;
  const wildcard = isWildcard(bound);
  if (!wildcard && !isPrivateAddress(bound)) return false;
  const b = bound.toLowerCase();
  for (const n of interfaceNets(ctx)) {
    if (!n.private) continue;
    if (!wildcard && n.address !== b) continue;
    if (n.net[0].kind() === d.kind() && d.match(n.net[0], n.net[1])) return true;
  }
  return false;
}

/**
 * Whether `destination` is inside (sees the socket's own address): loopback, `localnet`, or the
 * socket's own private network (see the module comment). Without a socket only the first two count.
 */
export function isInsideFor(socket: Pick<AdvertiseSocket, 'address'> | undefined, destination: string, ctx: AdvertiseContext): boolean {
  if (isLoopback(destination) || inRanges(destination, ctx.localnet)) return true;
  return socket !== undefined && onOwnPrivateNetwork(socket.address, destination, ctx);
}

/**
 * Picks a concrete local address for a socket bound to a wildcard (0.0.0.0 / ::): loopback
 * towards loopback, else the address of the interface whose subnet holds the destination, else
 * the first non-internal address of the family.
 */
export function concreteAddress(bound: string, towards: string, ctx?: { interfaces?: InterfaceTable }): string {
  if (!isWildcard(bound)) return bound;
  const v6 = bound === '::';
  if (isLoopback(towards)) return v6 ? '::1' : '127.0.0.1';
  const nets = interfaceNets(ctx).filter((n) => n.v6 === v6);
  const d = parseIp(towards);
  if (d) {
    const onLink = nets.find((n) => n.net[0].kind() === d.kind() && d.match(n.net[0], n.net[1]));
    if (onLink) return onLink.address;
  }
  if (nets.length > 0) return nets[0].address;
  return v6 ? '::1' : '127.0.0.1';
}

/**
 * The host and port that represent `socket` to `destination` (RFC 3261 §18.2.1 sent-by,
 * RFC 3261 §16.6 step 4 Record-Route, Contact of requests we originate).
 * @returns `{host, port}` to write; IPv6 without brackets.
 */
export function advertisedFor(socket: AdvertiseSocket, destination: string, ctx: AdvertiseContext): { host: string; port: number } {
  if (!isInsideFor(socket, destination, ctx)) {
    if (socket.advertised) return socket.advertised;
    if (ctx.publicAddress) return { host: ctx.publicAddress, port: socket.port };
  }
  return { host: concreteAddress(socket.address, destination, ctx), port: socket.port };
}
