/**
 * The NAT lab's fixed topology: hosts, addresses, links.
 *
 *   "internet" = namespace <p>wan, bridge br0 (a plain switch; every public host has on-link routes
 *   to all three RFC 5737 /24s, so public traffic crosses br0 exactly once). The wan namespace also
 *   owns the gateway addresses .1 that every public host uses as its default route; it has NO route
 *   to any private range, so a packet to 10.x / 172.16.x / 192.168.x / 100.64.x is dropped there
 *   (and counted, see Lab.privateLeaks()).
 *
 *     203.0.113.10  cloud ──(1:1 DNAT/SNAT)── 10.0.0.0/24: cloud 10.0.0.1 (+169.254.169.254),
 *                                                          edge 10.0.0.10, lan1 10.0.0.20
 *     203.0.113.20  cloud's NAT gateway address for the rest of 10.0.0.0/24 (lan1)
 *     198.51.100.11 home1 ──(MASQUERADE)──────────── 192.168.1.0/24: a1 .10, a2 .11
 *     198.51.100.12 home2 ──(MASQUERADE --random-fully) 192.168.2.0/24: b1 .10, b2 .11
 *     198.51.100.50 pub1, 198.51.100.51 pub2 (no NAT)
 */

export type HostName =
  | 'wan'
  | 'cloud'
  | 'edge'
  | 'lan1'
  | 'home1'
  | 'a1'
  | 'a2'
  | 'home2'
  | 'b1'
  | 'b2'
  | 'pub1'
  | 'pub2';

export type RouterName = 'cloud' | 'home1' | 'home2';

export interface HostInfo {
  /** short host name, e.g. "a1" */
  host: HostName;
  /** namespace name: prefix + host */
  ns: string;
  /** the host's own address (the one its sockets bind to); for routers the LAN-side address */
  ip: string;
  /** prefix length of `ip` */
  prefixLen: number;
  /** the address the public internet sees for this host (after NAT, if any) */
  public: string;
  /** default gateway */
  gateway: string | null;
  /** the NAT router in front of this host, if any */
  router: RouterName | null;
  /** the router's WAN-side address, for routers */
  wanIp?: string;
  /** extra addresses this host owns (e.g. cloud: 169.254.169.254, 203.0.113.20) */
  extra?: string[];
  /** main interface name inside the namespace */
  iface: string;
}

/** Static host table (without the namespace prefix). */
export const HOSTS: Record<HostName, Omit<HostInfo, 'ns'>> = {
  wan: {
    host: 'wan',
    ip: '198.51.100.1',
    prefixLen: 24,
    public: '198.51.100.1',
    gateway: null,
    router: null,
    extra: ['203.0.113.1', '192.0.2.1'],
    iface: 'br0',
  },
  cloud: {
    host: 'cloud',
    ip: '10.0.0.1',
    prefixLen: 24,
    public: '203.0.113.10',
    wanIp: '203.0.113.10',
    gateway: '203.0.113.1',
    router: null,
    extra: ['169.254.169.254', '203.0.113.20'],
    iface: 'br0',
  },
  edge: {
    host: 'edge',
    ip: '10.0.0.10',
    prefixLen: 24,
    public: '203.0.113.10',
    gateway: '10.0.0.1',
    router: 'cloud',
    iface: 'eth0',
  },
  lan1: {
    host: 'lan1',
    ip: '10.0.0.20',
    prefixLen: 24,
    public: '203.0.113.20',
    gateway: '10.0.0.1',
    router: 'cloud',
    iface: 'eth0',
  },
  home1: {
    host: 'home1',
    ip: '192.168.1.1',
    prefixLen: 24,
    public: '198.51.100.11',
    wanIp: '198.51.100.11',
    gateway: '198.51.100.1',
    router: null,
    iface: 'br0',
  },
  a1: {
    host: 'a1',
    ip: '192.168.1.10',
    prefixLen: 24,
    public: '198.51.100.11',
    gateway: '192.168.1.1',
    router: 'home1',
    iface: 'eth0',
  },
  a2: {
    host: 'a2',
    ip: '192.168.1.11',
    prefixLen: 24,
    public: '198.51.100.11',
    gateway: '192.168.1.1',
    router: 'home1',
    iface: 'eth0',
  },
  home2: {
    host: 'home2',
    ip: '192.168.2.1',
    prefixLen: 24,
    public: '198.51.100.12',
    wanIp: '198.51.100.12',
    gateway: '198.51.100.1',
    router: null,
    iface: 'br0',
  },
  b1: {
    host: 'b1',
    ip: '192.168.2.10',
    prefixLen: 24,
    public: '198.51.100.12',
    gateway: '192.168.2.1',
    router: 'home2',
    iface: 'eth0',
  },
  b2: {
    host: 'b2',
    ip: '192.168.2.11',
    prefixLen: 24,
    public: '198.51.100.12',
    gateway: '192.168.2.1',
    router: 'home2',
    iface: 'eth0',
  },
  pub1: {
    host: 'pub1',
    ip: '198.51.100.50',
    prefixLen: 24,
    public: '198.51.100.50',
    gateway: '198.51.100.1',
    router: null,
    iface: 'eth0',
  },
  pub2: {
    host: 'pub2',
    ip: '198.51.100.51',
    prefixLen: 24,
    public: '198.51.100.51',
    gateway: '198.51.100.1',
    router: null,
    iface: 'eth0',
  },
};

export const HOST_NAMES = Object.keys(HOSTS) as HostName[];
export const ROUTERS: RouterName[] = ['cloud', 'home1', 'home2'];
export const HOME_ROUTERS: RouterName[] = ['home1', 'home2'];

/** The three RFC 5737 documentation /24s, all on-link on the wan bridge. */
export const PUBLIC_NETS = ['192.0.2.0/24', '198.51.100.0/24', '203.0.113.0/24'];

/** Private ranges: the internet (wan) has no route to any of them. */
export const PRIVATE_NETS = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'];

/** LAN segments: each lives on a bridge "br0" inside its router's namespace. */
export const LANS: Record<RouterName, { hosts: HostName[]; net: string }> = {
  cloud: { hosts: ['edge', 'lan1'], net: '10.0.0.0/24' },
  home1: { hosts: ['a1', 'a2'], net: '192.168.1.0/24' },
  home2: { hosts: ['b1', 'b2'], net: '192.168.2.0/24' },
};

/** Hosts attached directly to the internet bridge (interface "wan0" for routers, "eth0" otherwise). */
export const WAN_HOSTS: HostName[] = ['cloud', 'home1', 'home2', 'pub1', 'pub2'];

export const CLOUD_PUBLIC = '203.0.113.10';
export const CLOUD_NATGW = '203.0.113.20';
export const EDGE_PRIVATE = '10.0.0.10';
export const IMDS_ADDRESS = '169.254.169.254';
