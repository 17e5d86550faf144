/**
 * Test-side handle on lab/tools/netagent.mjs running inside a lab namespace: lets a test in the root
 * namespace open UDP sockets, send, receive and echo, and make TCP probes, from any lab host.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import readline from 'node:readline';
import type { HostName } from './topology.js';

/** Path of the agent script (run it with `node` inside a namespace). */
export const NETAGENT_SCRIPT = fileURLToPath(new URL('./tools/netagent.mjs', import.meta.url));

export interface UdpMessage {
  /** source address as seen by the receiving host */
  from: string;
  port: number;
  data: string;
  size: number;
  /** Date.now() when the test process got it */
  at: number;
}

export interface TcpConn {
  from: string;
  port: number;
  at: number;
}

/** Minimal lab surface the agent needs (avoids a circular import of Lab). */
interface Spawner {
  spawn(host: HostName, argv: string[]): ChildProcess;
}

type Json = Record<string, unknown>;

class Queue<T> {
  readonly all: T[] = [];
  private pending: T[] = [];
  private waiters: Array<(v: T) => void> = [];

  push(v: T): void {
    this.all.push(v);
    const w = this.waiters.shift();
    if (w) w(v);
    else this.pending.push(v);
  }

  /** next unconsumed item, or null after timeoutMs */
  next(timeoutMs: number): Promise<T | null> {
    const v = this.pending.shift();
    if (v !== undefined) return Promise.resolve(v);
    return new Promise((resolve) => {
      const w = (x: T) => {
        clearTimeout(timer);
        resolve(x);
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((f) => f !== w);
        resolve(null);
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** drop unconsumed items */
  drain(): T[] {
    const p = this.pending;
    this.pending = [];
    return p;
  }
}

export class UdpSocket {
  private readonly q = new Queue<UdpMessage>();
  constructor(
    private readonly agent: NetAgent,
    readonly id: string,
    readonly address: string,
    readonly port: number,
  ) {}

  /** every datagram received so far */
  get received(): readonly UdpMessage[] {
    return this.q.all;
  }

  /** @internal */
  deliver(m: UdpMessage): void {
    this.q.push(m);
  }

  send(data: string, port: number, host: string): Promise<void> {
    return this.agent.request({ op: 'udp.send', id: this.id, host, port, data }).then(() => undefined);
  }

  /** next unconsumed datagram, or null if none arrives within timeoutMs */
  recv(timeoutMs = 2000): Promise<UdpMessage | null> {
    return this.q.next(timeoutMs);
  }

  /** discard datagrams received but not yet consumed by recv() */
  drain(): UdpMessage[] {
    return this.q.drain();
  }

  close(): Promise<void> {
    return this.agent.request({ op: 'udp.close', id: this.id }).then(() => undefined);
  }
}

export class TcpListener {
  private readonly q = new Queue<TcpConn>();
  constructor(
    private readonly agent: NetAgent,
    readonly id: string,
    readonly address: string,
    readonly port: number,
  ) {}

  get connections(): readonly TcpConn[] {
    return this.q.all;
  }

  /** @internal */
  deliver(c: TcpConn): void {
    this.q.push(c);
  }

  accept(timeoutMs = 2000): Promise<TcpConn | null> {
    return this.q.next(timeoutMs);
  }

  close(): Promise<void> {
    return this.agent.request({ op: 'tcp.close', id: this.id }).then(() => undefined);
  }
}

export class NetAgent {
  private seq = 0;
  private ids = 0;
  private readonly pending = new Map<number, { resolve: (v: Json) => void; reject: (e: Error) => void }>();
  private readonly udp = new Map<string, UdpSocket>();
  private readonly tcp = new Map<string, TcpListener>();
  private stderr = '';
  private exited = false;

  private constructor(
    readonly host: HostName,
    readonly child: ChildProcess,
  ) {}

  static async start(lab: Spawner, host: HostName): Promise<NetAgent> {
    const child = lab.spawn(host, [process.execPath, NETAGENT_SCRIPT]);
    const agent = new NetAgent(host, child);
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (d: string) => {
      agent.stderr += d;
    });
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`netagent in ${host} did not start: ${agent.stderr}`)), 10_000);
      agent.onReady = () => {
        clearTimeout(timer);
        resolve();
      };
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`netagent in ${host} exited (${code}): ${agent.stderr}`));
      });
    });
    child.once('exit', () => {
      agent.exited = true;
      for (const p of agent.pending.values()) p.reject(new Error(`netagent in ${host} exited: ${agent.stderr}`));
      agent.pending.clear();
    });
    const rl = readline.createInterface({ input: child.stdout! });
    rl.on('line', (line) => agent.onLine(line));
    await ready;
    return agent;
  }

  private onReady: () => void = () => {};

  private onLine(line: string): void {
    let m: Json;
    try {
      m = JSON.parse(line) as Json;
    } catch {
      return;
    }
    switch (m.ev) {
      case 'ready':
        this.onReady();
        return;
      case 'ok':
      case 'error': {
        const p = this.pending.get(m.req as number);
        if (!p) return;
        this.pending.delete(m.req as number);
        if (m.ev === 'ok') p.resolve(m);
        else p.reject(new Error(`netagent ${this.host}: ${String(m.message)}`));
        return;
      }
      case 'udp.msg':
        this.udp.get(m.id as string)?.deliver({
          from: m.from as string,
          port: m.port as number,
          data: m.data as string,
          size: m.size as number,
          at: Date.now(),
        });
        return;
      case 'tcp.conn':
        this.tcp.get(m.id as string)?.deliver({ from: m.from as string, port: m.port as number, at: Date.now() });
        return;
    }
  }

  /** @internal send one request and wait for its answer */
  request(msg: Json): Promise<Json> {
    if (this.exited) return Promise.reject(new Error(`netagent in ${this.host} has exited`));
    const req = ++this.seq;
    return new Promise((resolve, reject) => {
      this.pending.set(req, { resolve, reject });
      this.child.stdin!.write(JSON.stringify({ ...msg, req }) + '\n');
    });
  }

  /** Bind a UDP socket (port 0 = any). With echo, every datagram is answered "ECHO ip:port data". */
  async udpBind(port = 0, opts: { address?: string; echo?: boolean } = {}): Promise<UdpSocket> {
    const id = `u${++this.ids}`;
    // register before binding so no datagram is missed
    const placeholder: UdpMessage[] = [];
    this.udp.set(id, { deliver: (m: UdpMessage) => placeholder.push(m) } as unknown as UdpSocket);
    try {
      const r = await this.request({ op: 'udp.bind', id, port, address: opts.address ?? '0.0.0.0', echo: !!opts.echo });
      const s = new UdpSocket(this, id, r.address as string, r.port as number);
      for (const m of placeholder) s.deliver(m);
      this.udp.set(id, s);
      return s;
    } catch (e) {
      this.udp.delete(id);
      throw e;
    }
  }

  /** Listen on TCP; every connection gets "FROM ip:port\n" and is closed. */
  async tcpListen(port = 0, opts: { address?: string } = {}): Promise<TcpListener> {
    const id = `t${++this.ids}`;
    const placeholder: TcpConn[] = [];
    this.tcp.set(id, { deliver: (c: TcpConn) => placeholder.push(c) } as unknown as TcpListener);
    try {
      const r = await this.request({ op: 'tcp.listen', id, port, address: opts.address ?? '0.0.0.0' });
      const l = new TcpListener(this, id, r.address as string, r.port as number);
      for (const c of placeholder) l.deliver(c);
      this.tcp.set(id, l);
      return l;
    } catch (e) {
      this.tcp.delete(id);
      throw e;
    }
  }

  /** Connect over TCP and return everything the peer sent before closing. */
  async tcpProbe(host: string, port: number, opts: { localPort?: number; localAddress?: string; timeoutMs?: number } = {}): Promise<string> {
    const r = await this.request({ op: 'tcp.probe', host, port, ...opts });
    return r.data as string;
  }

  /** Stop the agent process. */
  async close(): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin?.end();
    const t = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    await done;
    clearTimeout(t);
  }
}
