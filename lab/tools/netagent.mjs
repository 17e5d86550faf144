// NAT lab network agent: run inside a lab namespace (lab.spawn / lab.agent), driven by JSON lines on
// stdin, reporting JSON lines on stdout. Plain JavaScript so it starts fast without a TS loader.
//
// requests  {"req":N,"op":"udp.bind","id":"s1","address":"0.0.0.0","port":5060,"echo":false}
//           {"req":N,"op":"udp.send","id":"s1","host":"198.51.100.50","port":7000,"data":"text"}
//           {"req":N,"op":"udp.close","id":"s1"}
//           {"req":N,"op":"tcp.listen","id":"t1","address":"0.0.0.0","port":5060}
//           {"req":N,"op":"tcp.probe","host":"...","port":N,"localPort":N?,"timeoutMs":N?}
//           {"req":N,"op":"tcp.close","id":"t1"}
// replies   {"ev":"ok","req":N,...} | {"ev":"error","req":N,"message":"..."}
// events    {"ev":"ready","pid":N}
//           {"ev":"udp.msg","id":"s1","from":"ip","port":N,"data":"utf8 text","size":N}
//           {"ev":"tcp.conn","id":"t1","from":"ip","port":N}
// An echo socket answers every datagram with "ECHO <source ip>:<source port> <data>".
// A tcp listener answers every connection with "FROM <ip>:<port>\n" and closes it.
import dgram from 'node:dgram';
import net from 'node:net';
import readline from 'node:readline';

const udp = new Map();
const tcp = new Map();

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

async function handle(m) {
  switch (m.op) {
    case 'udp.bind': {
      if (udp.has(m.id)) throw new Error(`socket ${m.id} exists`);
      const s = dgram.createSocket({ type: 'udp4' });
      s.on('message', (msg, rinfo) => {
        out({ ev: 'udp.msg', id: m.id, from: rinfo.address, port: rinfo.port, data: msg.toString('utf8'), size: msg.length });
        if (m.echo) s.send(`ECHO ${rinfo.address}:${rinfo.port} ${msg.toString('utf8')}`, rinfo.port, rinfo.address);
      });
      await new Promise((resolve, reject) => {
        s.once('error', reject);
        s.bind(m.port ?? 0, m.address ?? '0.0.0.0', () => {
          s.off('error', reject);
          s.on('error', (e) => out({ ev: 'udp.error', id: m.id, message: e.message }));
          resolve();
        });
      });
      udp.set(m.id, s);
      const a = s.address();
      return { address: a.address, port: a.port };
    }
    case 'udp.send': {
      const s = udp.get(m.id);
      if (!s) throw new Error(`no socket ${m.id}`);
      await new Promise((resolve, reject) => s.send(String(m.data), m.port, m.host, (e) => (e ? reject(e) : resolve())));
      return {};
    }
    case 'udp.close': {
      const s = udp.get(m.id);
      if (s) {
        udp.delete(m.id);
        s.close();
      }
      return {};
    }
    case 'tcp.listen': {
      if (tcp.has(m.id)) throw new Error(`listener ${m.id} exists`);
      const srv = net.createServer((c) => {
        out({ ev: 'tcp.conn', id: m.id, from: c.remoteAddress, port: c.remotePort });
        c.on('error', () => {});
        c.end(`FROM ${c.remoteAddress}:${c.remotePort}\n`);
      });
      await new Promise((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(m.port ?? 0, m.address ?? '0.0.0.0', () => {
          srv.off('error', reject);
          resolve();
        });
      });
      tcp.set(m.id, srv);
      const a = srv.address();
      return { address: a.address, port: a.port };
    }
    case 'tcp.close': {
      const srv = tcp.get(m.id);
      if (srv) {
        tcp.delete(m.id);
        srv.close();
      }
      return {};
    }
    case 'tcp.probe': {
      const data = await new Promise((resolve, reject) => {
        const opts = { host: m.host, port: m.port };
        if (m.localPort) opts.localPort = m.localPort;
        if (m.localAddress) opts.localAddress = m.localAddress;
        const c = net.connect(opts);
        let buf = '';
        const timer = setTimeout(() => {
          c.destroy();
          reject(new Error(`tcp ${m.host}:${m.port}: timeout`));
        }, m.timeoutMs ?? 3000);
        c.setEncoding('utf8');
        c.on('data', (d) => (buf += d));
        c.on('end', () => {
          clearTimeout(timer);
          resolve(buf);
        });
        c.on('error', (e) => {
          clearTimeout(timer);
          reject(e);
        });
      });
      return { data };
    }
    default:
      throw new Error(`unknown op ${m.op}`);
  }
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let m;
  try {
    m = JSON.parse(line);
  } catch {
    out({ ev: 'error', req: null, message: 'bad json' });
    return;
  }
  handle(m).then(
    (r) => out({ ev: 'ok', req: m.req, ...r }),
    (e) => out({ ev: 'error', req: m.req, message: String(e && e.message ? e.message : e) }),
  );
});
rl.on('close', () => process.exit(0));
out({ ev: 'ready', pid: process.pid });
