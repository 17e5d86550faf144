/**
 * Minimal pcap reader for lab captures: IPv4 over Ethernet / Linux cooked (SLL, SLL2) / raw IP,
 * with UDP and TCP payloads. Enough to assert on SIP and SDP text seen on the public segment.
 */
import { readFileSync } from 'node:fs';

export interface PcapPacket {
  /** seconds since the epoch (fractional) */
  ts: number;
  src: string;
  dst: string;
  /** 'udp' | 'tcp' | 'icmp' | IP protocol number as a string */
  proto: string;
  sport?: number;
  dport?: number;
  /** transport payload (for other protocols: the IP payload) */
  payload: Buffer;
}

const LINKTYPE_ETHERNET = 1;
const LINKTYPE_RAW = 101;
const LINKTYPE_LINUX_SLL = 113;
const LINKTYPE_LINUX_SLL2 = 276;

function ip4(b: Buffer, o: number): string {
  return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
}

export function parsePcap(buf: Buffer): PcapPacket[] {
  if (buf.length < 24) return [];
  const magicLE = buf.readUInt32LE(0);
  let le: boolean;
  let nano: boolean;
  if (magicLE === 0xa1b2c3d4 || magicLE === 0xa1b23c4d) {
    le = true;
    nano = magicLE === 0xa1b23c4d;
  } else if (buf.readUInt32BE(0) === 0xa1b2c3d4 || buf.readUInt32BE(0) === 0xa1b23c4d) {
    le = false;
    nano = buf.readUInt32BE(0) === 0xa1b23c4d;
  } else {
    throw new Error('not a pcap file (pcapng is not supported)');
  }
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const linktype = u32(20) & 0x0fffffff;
  const out: PcapPacket[] = [];
  let off = 24;
  while (off + 16 <= buf.length) {
    const sec = u32(off);
    const frac = u32(off + 4);
    const incl = u32(off + 8);
    const start = off + 16;
    off = start + incl;
    if (off > buf.length) break; // truncated last record
    const frame = buf.subarray(start, start + incl);
    let ipOff: number;
    let ethertype: number;
    if (linktype === LINKTYPE_ETHERNET) {
      ethertype = frame.readUInt16BE(12);
      ipOff = 14;
      while ((ethertype === 0x8100 || ethertype === 0x88a8) && frame.length >= ipOff + 4) {
        ethertype = frame.readUInt16BE(ipOff + 2);
        ipOff += 4;
      }
    } else if (linktype === LINKTYPE_LINUX_SLL) {
      ethertype = frame.readUInt16BE(14);
      ipOff = 16;
    } else if (linktype === LINKTYPE_LINUX_SLL2) {
      ethertype = frame.readUInt16BE(0);
      ipOff = 20;
    } else if (linktype === LINKTYPE_RAW) {
      ethertype = 0x0800;
      ipOff = 0;
    } else {
      throw new Error(`unsupported pcap link type ${linktype}`);
    }
    if (ethertype !== 0x0800 || frame.length < ipOff + 20) continue;
    const ip = frame.subarray(ipOff);
    if (ip[0] >> 4 !== 4) continue;
    const ihl = (ip[0] & 0x0f) * 4;
    const totalLen = Math.min(ip.readUInt16BE(2), ip.length);
    const fragOff = ip.readUInt16BE(6) & 0x1fff;
    const protoNum = ip[9];
    const src = ip4(ip, 12);
    const dst = ip4(ip, 16);
    const body = ip.subarray(ihl, totalLen);
    const ts = sec + frac / (nano ? 1e9 : 1e6);
    if (fragOff !== 0) {
      out.push({ ts, src, dst, proto: String(protoNum), payload: body });
      continue;
    }
    if (protoNum === 17 && body.length >= 8) {
      out.push({ ts, src, dst, proto: 'udp', sport: body.readUInt16BE(0), dport: body.readUInt16BE(2), payload: body.subarray(8) });
    } else if (protoNum === 6 && body.length >= 20) {
      const doff = (body[12] >> 4) * 4;
      out.push({ ts, src, dst, proto: 'tcp', sport: body.readUInt16BE(0), dport: body.readUInt16BE(2), payload: body.subarray(doff) });
    } else {
      out.push({ ts, src, dst, proto: protoNum === 1 ? 'icmp' : String(protoNum), payload: body });
    }
  }
  return out;
}

export function readPcap(file: string): PcapPacket[] {
  return parsePcap(readFileSync(file));
}

export interface PayloadHit {
  packet: PcapPacket;
  match: string;
  /** the payload line that matched */
  line: string;
}

/**
 * Search transport payloads (as latin1 text) for a pattern, e.g. /\b10\.\d+\.\d+\.\d+\b/ to prove no
 * private address leaks into SIP or SDP on the public segment.
 */
export function grepPayloads(packets: PcapPacket[], re: RegExp): PayloadHit[] {
  const g = new RegExp(re.source, re.flags.includes('g') ? re.flags : re.flags + 'g');
  const hits: PayloadHit[] = [];
  for (const p of packets) {
    if (p.payload.length === 0) continue;
    const text = p.payload.toString('latin1');
    for (const m of text.matchAll(g)) {
      const a = text.lastIndexOf('\n', m.index) + 1;
      const b = text.indexOf('\n', m.index);
      hits.push({ packet: p, match: m[0], line: text.slice(a, b < 0 ? undefined : b).replace(/\r$/, '') });
    }
  }
  return hits;
}
