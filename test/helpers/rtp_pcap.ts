/**
 * Writes pcap files of G.711 RTP for SIPp's `<exec play_pcap_audio="FILE"/>`.
 *
 * Debian's sip-tester does not always ship `g711a.pcap`, and its packet count is not a round
 * number; a generated capture has an exact, known number of packets (so delivery can be counted
 * to the packet) and a chosen size (so a test can tell two streams apart by packet length with an
 * iptables `-m length` match).
 *
 * Format: classic pcap (magic a1b2c3d4, microsecond timestamps, link type 1 = Ethernet), each
 * record Ethernet II / IPv4 (no options, valid header checksum) / UDP (checksum 0 = none) / RTP
 * (RFC 3550: version 2, no padding/extension/CSRC, marker on the first packet, one SSRC,
 * sequence numbers and timestamps increasing by 1 and `samplesPerPacket`) / payload.
 *
 * SIPp replays only the UDP part: it rewrites the source to its media ip:port (`-mi`/`-mp`,
 * the port the SDP it sent announced) and the destination to the address and port of the SDP it
 * received, keeps the pcap's inter-packet gaps, and sends the first packet at once. Every packet
 * here goes to the same UDP port, so all of them go to the negotiated RTP port.
 */
import fs from 'node:fs';

export interface RtpPcapOptions {
  /** Number of RTP packets. */
  packets: number;
  /** RTP payload bytes per packet; default 160 (20 ms of G.711 at 8 kHz). */
  payloadBytes?: number;
  /** Gap between packets, ms; default 20. */
  intervalMs?: number;
  /** RTP payload type; default 8 (PCMA). 0 = PCMU. */
  payloadType?: number;
  /** RTP timestamp increment per packet; default payloadBytes (one G.711 sample per byte). */
  samplesPerPacket?: number;
  /** Payload byte; default 0xd5 (PCMA silence; use 0xff for PCMU). */
  fill?: number;
  /** RTP SSRC; default 0x5e1ed9e0. */
  ssrc?: number;
  /** First RTP sequence number; default 1000. */
  firstSeq?: number;
  /** Capture start, Unix seconds; default 1 700 000 000. */
  startSec?: number;
}

/** IPv4 total length of each packet (what an iptables `-m length --length N` match sees). */
export function rtpIpLength(payloadBytes = 160): number {
  return 20 + 8 + 12 + payloadBytes;
}

function ipChecksum(header: Buffer): number {
  let sum = 0;
  for (let i = 0; i < header.length; i += 2) sum += header.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** The bytes of a pcap file holding `opts.packets` RTP packets. */
export function rtpPcap(opts: RtpPcapOptions): Buffer {
  const n = opts.packets;
  if (!Number.isInteger(n) || n < 1) throw new Error(`rtpPcap: packets must be a positive integer, got ${n}`);
  const payloadBytes = opts.payloadBytes ?? 160;
  const intervalUs = Math.round((opts.intervalMs ?? 20) * 1000);
  const pt = opts.payloadType ?? 8;
  const step = opts.samplesPerPacket ?? payloadBytes;
  const fill = opts.fill ?? (pt === 0 ? 0xff : 0xd5);
  const ssrc = (opts.ssrc ?? 0x5e1ed9e0) >>> 0;
  const seq0 = opts.firstSeq ?? 1000;
  const start = opts.startSec ?? 1_700_000_000;

  const rtpLen = 12 + payloadBytes;
  const udpLen = 8 + rtpLen;
  const ipLen = 20 + udpLen;
  const frameLen = 14 + ipLen;
  if (ipLen > 1500) throw new Error(`rtpPcap: ${ipLen}-byte packets exceed an Ethernet MTU`);

  const out = Buffer.alloc(24 + n * (16 + frameLen));
  // Global header (written little-endian: readers detect the byte order from the magic).
  out.writeUInt32LE(0xa1b2c3d4, 0);
  out.writeUInt16LE(2, 4); // version 2.4
  out.writeUInt16LE(4, 6);
  out.writeInt32LE(0, 8); // thiszone
  out.writeUInt32LE(0, 12); // sigfigs
  out.writeUInt32LE(65535, 16); // snaplen
  out.writeUInt32LE(1, 20); // LINKTYPE_ETHERNET

  let off = 24;
  for (let i = 0; i < n; i++) {
    const tUs = i * intervalUs;
    out.writeUInt32LE(start + Math.floor(tUs / 1_000_000), off);
    out.writeUInt32LE(tUs % 1_000_000, off + 4);
    out.writeUInt32LE(frameLen, off + 8); // incl_len
    out.writeUInt32LE(frameLen, off + 12); // orig_len (= incl_len: SIPp refuses truncated packets)
    off += 16;

    // Ethernet II: locally administered MACs, EtherType IPv4.
    Buffer.from([0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00]).copy(out, off);
    off += 14;

    // IPv4: 192.0.2.1 -> 192.0.2.2 (RFC 5737; SIPp replaces both).
    const ip = out.subarray(off, off + 20);
    ip[0] = 0x45;
    ip[1] = 0xb8; // DSCP EF, as phones mark voice
    ip.writeUInt16BE(ipLen, 2);
    ip.writeUInt16BE(i & 0xffff, 4);
    ip.writeUInt16BE(0x4000, 6); // DF
    ip[8] = 64;
    ip[9] = 17; // UDP
    Buffer.from([192, 0, 2, 1]).copy(ip, 12);
    Buffer.from([192, 0, 2, 2]).copy(ip, 16);
    ip.writeUInt16BE(ipChecksum(ip), 10);
    off += 20;

    // UDP: 10000 -> 20000 for every packet (SIPp: destination = negotiated port + (dport - lowest dport) = the RTP port).
    out.writeUInt16BE(10000, off);
    out.writeUInt16BE(20000, off + 2);
    out.writeUInt16BE(udpLen, off + 4);
    out.writeUInt16BE(0, off + 6);
    off += 8;

    // RTP (RFC 3550 §5.1).
    out[off] = 0x80;
    out[off + 1] = (i === 0 ? 0x80 : 0) | (pt & 0x7f);
    out.writeUInt16BE((seq0 + i) & 0xffff, off + 2);
    out.writeUInt32BE((i * step) >>> 0, off + 4);
    out.writeUInt32BE(ssrc, off + 8);
    out.fill(fill, off + 12, off + rtpLen);
    off += rtpLen;
  }
  return out;
}

/** Writes {@link rtpPcap} to `file`; returns the file name. */
export function writeRtpPcap(file: string, opts: RtpPcapOptions): string {
  fs.writeFileSync(file, rtpPcap(opts));
  return file;
}
