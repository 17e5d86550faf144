/** Raw UDP exchanges with the edge, for messages SIPp cannot send (RFC 4475 torture messages). */
import dgram from 'node:dgram';
import { HOST } from './edge.js';

export interface UdpExchange {
  /** Every datagram received, in order. */
  responses: Buffer[];
  /** Status codes of the datagrams that are SIP responses, in order. */
  statuses: number[];
  /** First status >= 200, if any. */
  final?: number;
}

/** The status code of a SIP response datagram, or undefined. */
export function statusOf(datagram: Buffer): number | undefined {
  const m = /^SIP\/2\.0 (\d{3}) /.exec(datagram.subarray(0, 64).toString('latin1'));
  return m ? Number(m[1]) : undefined;
}

/**
 * Sends `payload` from a fresh socket on 127.0.0.1 to host:port and collects what comes back for
 * `waitMs`, or until a final response arrives when `untilFinal` is set.
 */
export function exchange(payload: Buffer, port: number, opts: { host?: string; waitMs?: number; untilFinal?: boolean } = {}): Promise<UdpExchange> {
  const host = opts.host ?? HOST;
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    const result: UdpExchange = { responses: [], statuses: [] };
    let timer: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(timer);
      sock.close();
      resolve(result);
    };
    sock.on('message', (msg) => {
      result.responses.push(msg);
      const st = statusOf(msg);
      if (st !== undefined) {
        result.statuses.push(st);
        if (st >= 200 && result.final === undefined) {
          result.final = st;
          if (opts.untilFinal) done();
        }
      }
    });
    sock.once('error', (err) => {
      clearTimeout(timer);
      sock.close();
      reject(err);
    });
    sock.bind(0, HOST, () => {
      sock.send(payload, port, host, (err) => {
        if (err) {
          sock.close();
          reject(err);
          return;
        }
        timer = setTimeout(done, opts.waitMs ?? 1000);
      });
    });
  });
}
