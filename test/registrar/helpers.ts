/**
 * Test helpers: SipRequest literals built from header lines (no parser dependency), flows and
 * digest answers computed independently with node:crypto (RFC 7616 §3.4.1).
 */
import { createHash } from 'node:crypto';
import { canonicalHeaderKey, getHeader, getHeaderValues } from '../../src/sip/headers.js';
import type { SipRequest, SipResponse } from '../../src/sip/message.js';
import type { Flow } from '../../src/transport/types.js';

/** Builds a request; `headers` are `Name: value` lines. */
export function request(method: string, uri: string, headers: string[], body = ''): SipRequest {
  return {
    type: 'request',
    method,
    uri,
    version: 'SIP/2.0',
    headers: headers.map((line) => {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).trim();
      return { name, key: canonicalHeaderKey(name), value: line.slice(colon + 1).trim() };
    }),
    body: Buffer.from(body),
  };
}

export interface RegisterOpts {
  user?: string;
  domain?: string;
  ruri?: string;
  callId?: string;
  cseq?: number;
  contacts?: string[];
  expires?: number | string;
  extra?: string[];
}

/** A REGISTER from `user` (default 1001) at sip.example.org. */
export function register(o: RegisterOpts = {}): SipRequest {
  const user = o.user ?? '1001';
  const domain = o.domain ?? 'sip.example.org';
  const h = [
    'Via: SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bK' + Math.random().toString(36).slice(2) + ';rport',
    'Max-Forwards: 70',
    `From: <sip:${user}@${domain}>;tag=a73kszlfl`,
    `To: <sip:${user}@${domain}>`,
    `Call-ID: ${o.callId ?? '1j9FpLxk3uxtm8tn@192.168.1.20'}`,
    `CSeq: ${o.cseq ?? 1} REGISTER`,
    'User-Agent: TestPhone/1.0',
  ];
  for (const c of o.contacts ?? []) h.push(`Contact: ${c}`);
  if (o.expires !== undefined) h.push(`Expires: ${o.expires}`);
  h.push(...(o.extra ?? []));
  h.push('Content-Length: 0');
  return request('REGISTER', o.ruri ?? `sip:${domain}`, h);
}

/** A UDP flow from a NATed phone (RFC 5737 addresses). */
export function udpFlow(port = 40112, address = '203.0.113.77'): Flow {
  return { transport: 'udp', local: { address: '10.0.0.10', port: 5060, socketId: 'udp:10.0.0.10:5060' }, remote: { address, port } };
}

/** A TCP flow with a connection id. */
export function tcpFlow(connectionId: number, port = 51000): Flow {
  return {
    transport: 'tcp',
    local: { address: '10.0.0.10', port: 5060, socketId: 'tcp:10.0.0.10:5060' },
    remote: { address: '198.51.100.9', port },
    connectionId,
  };
}

function h(alg: 'MD5' | 'SHA-256', s: string): string {
  return createHash(alg === 'MD5' ? 'md5' : 'sha256').update(s).digest('hex');
}

export interface DigestAnswer {
  username: string;
  password: string;
  realm: string;
  nonce: string;
  uri: string;
  method: string;
  algorithm?: 'MD5' | 'SHA-256';
  /** Omit for RFC 2069 style (no qop). */
  qop?: 'auth' | 'auth-int';
  nc?: string;
  cnonce?: string;
  opaque?: string;
  body?: string;
}

/** response = KD(H(A1), nonce:nc:cnonce:qop:H(A2)) per RFC 7616 §3.4.1 (or H(H(A1):nonce:H(A2)) without qop). */
export function digestResponse(a: DigestAnswer): string {
  const alg = a.algorithm ?? 'MD5';
  const ha1 = h(alg, `${a.username}:${a.realm}:${a.password}`);
  const ha2 = a.qop === 'auth-int' ? h(alg, `${a.method}:${a.uri}:${h(alg, a.body ?? '')}`) : h(alg, `${a.method}:${a.uri}`);
  return a.qop === undefined ? h(alg, `${ha1}:${a.nonce}:${ha2}`) : h(alg, `${ha1}:${a.nonce}:${a.nc}:${a.cnonce}:${a.qop}:${ha2}`);
}

/** An Authorization header value answering with {@link digestResponse}. */
export function authorization(a: DigestAnswer, response = digestResponse(a)): string {
  let v = `Digest username="${a.username}", realm="${a.realm}", nonce="${a.nonce}", uri="${a.uri}", response="${response}"`;
  if (a.algorithm !== undefined) v += `, algorithm=${a.algorithm}`;
  if (a.qop !== undefined) v += `, qop=${a.qop}, nc=${a.nc}, cnonce="${a.cnonce}"`;
  if (a.opaque !== undefined) v += `, opaque="${a.opaque}"`;
  return v;
}

/** Extracts realm/nonce/opaque/algorithm from a challenge value (independent of the code under test). */
export function challengeParams(value: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([a-z]+)=(?:"([^"]*)"|([^,\s]+))/gi;
  for (let m = re.exec(value); m !== null; m = re.exec(value)) out[m[1].toLowerCase()] = m[2] ?? m[3];
  return out;
}

export function header(res: SipResponse, key: string): string | undefined {
  return getHeader(res, key);
}

export function headers(res: SipResponse, key: string): string[] {
  return getHeaderValues(res, key);
}
