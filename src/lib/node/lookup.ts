/**
 * The `lookup` function every node:dgram socket of sipedge uses (SIP transport and media relay).
 */
import type dgram from 'node:dgram';
import dns from 'node:dns';
import { isIP } from 'node:net';

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string, family: number) => void;

function literalLookupImpl(hostname: string, family: unknown, callback: LookupCallback): void {
  const v = isIP(hostname);
  if (v !== 0) {
    callback(null, hostname, v);
    return;
  }
  dns.lookup(hostname, { family: family === 6 ? 6 : 4 }, (err, address, fam) => callback(err, address, fam));
}

/**
 * dgram `lookup` (pass as `dgram.createSocket({ lookup })`): IP literals (every SIP destination
 * the layers above hand over, and everything the relay sends to) are answered synchronously, so a
 * send does not go through `dns.lookup`, which defers every datagram by one `process.nextTick`;
 * names (e.g. an rtpengine host given by name) still go through `dns.lookup`, IPv6 when dgram asks
 * for family 6, else IPv4.
 */
export const literalLookup = literalLookupImpl as unknown as dgram.SocketOptions['lookup'];
