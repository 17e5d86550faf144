/**
 * The NATed phones of the keepalive benchmark: `PORTS` UDP sockets on 127.0.0.1 that answer
 * every request with `200 OK` (Via/From/To/Call-ID/CSeq copied, a To tag added), the way a
 * phone answers a qualify OPTIONS. Prints `{"ports":[…]}` once bound; exits on stdin EOF,
 * on SIGTERM, or after `MAX_S` seconds.
 *
 *   node bench/keepalive/sink.ts PORTS MAX_S
 */
import dgram from 'node:dgram';

const count = Number(process.argv[2] ?? 256);
const maxS = Number(process.argv[3] ?? 300);
const COPY = /^(via|v|from|f|to|t|call-id|i|cseq):/i;
let answered = 0;

function answer(msg: Buffer): Buffer | undefined {
  const text = msg.toString('latin1');
  if (text.startsWith('SIP/2.0')) return undefined;
  const end = text.indexOf('\r\n\r\n');
  const lines = text.slice(0, end < 0 ? text.length : end).split('\r\n');
  const out = ['SIP/2.0 200 OK'];
  for (const l of lines.slice(1)) {
    if (!COPY.test(l)) continue;
    out.push(/^(to|t):/i.test(l) && !/;tag=/i.test(l) ? `${l};tag=sink${answered}` : l);
  }
  out.push('Content-Length: 0', '', '');
  return Buffer.from(out.join('\r\n'), 'latin1');
}

const sockets: dgram.Socket[] = [];
const ports: number[] = [];
for (let i = 0; i < count; i++) {
  const s = dgram.createSocket('udp4');
  s.on('message', (msg, rinfo) => {
    const res = answer(msg);
    if (res) {
      answered++;
      s.send(res, rinfo.port, rinfo.address);
    }
  });
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  sockets.push(s);
  ports.push(s.address().port);
}
process.stdout.write(JSON.stringify({ ports }) + '\n');
const stop = (): void => {
  process.stderr.write(JSON.stringify({ answered }) + '\n');
  for (const s of sockets) s.close();
  process.exit(0);
};
setTimeout(stop, maxS * 1000).unref();
process.on('SIGTERM', stop);
process.stdin.on('end', stop);
process.stdin.resume();
setInterval(() => undefined, 1 << 30);
