/** A tiny in-memory EdgeApi for CLI and API tests. */
import type { CallRow, EdgeApi, PeerRow } from '../../src/edge-api.js';

export const PEERS: PeerRow[] = [
  {
    aor: 'sip:1001@sip.example.org',
    contact: 'sip:1001@192.168.1.20:5060;transport=udp',
    received: '198.51.100.7:40312',
    transport: 'udp',
    socket: 'udp:10.0.0.10:5060',
    nat: true,
    natTests: ['contact-private', 'via-received'],
    expires: 583,
    q: 1,
    reachable: 'yes',
    rttMs: 23.4,
    userAgent: 'Linphone/5.2.0',
  },
  {
    aor: 'sip:1002@sip.example.org',
    contact: 'sip:1002@203.0.113.50:5070;transport=tcp',
    received: '203.0.113.50:5070',
    transport: 'tcp',
    socket: 'tcp:10.0.0.10:5060',
    nat: false,
    natTests: [],
    expires: 3599,
    q: 1,
    reachable: 'unknown',
    userAgent: 'evil\u001b[2Jphone',
  },
];

export const CALLS: CallRow[] = [{ callId: 'a84b4c76e66710@pc33', from: 'sip:1001@sip.example.org', to: 'sip:1002@sip.example.org', state: 'confirmed', age: 3725 }];

export interface FakeEdge extends EdgeApi {
  reloads: number;
  closes: number;
  reloadResult: { ok: boolean; errors?: string[] };
}

export function fakeEdge(overrides: Partial<EdgeApi> = {}): FakeEdge {
  const edge: FakeEdge = {
    reloads: 0,
    closes: 0,
    reloadResult: { ok: true },
    settings: () => ({ sockets: ['udp:10.0.0.10:5060'], publicAddress: '203.0.113.10', localnet: ['10.0.0.0/8'] }),
    peers: async () => PEERS,
    calls: () => CALLS,
    reload: async () => {
      edge.reloads++;
      return edge.reloadResult;
    },
    close: async () => {
      edge.closes++;
    },
    ...overrides,
  };
  return edge;
}
