import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  decideSource,
  destinationOf,
  isPrivateAddress,
  signalChange,
  trustSignalled,
  SOURCE_ACCEPT,
  SOURCE_DROP,
  SOURCE_FOREIGN,
  SOURCE_LATCH,
  type DestinationState,
} from '../../src/media/latch.js';

function state(p: Partial<DestinationState> = {}): DestinationState {
  return { latchedAddress: undefined, latchedPort: 0, learnUntil: 0, latchConfirmed: false, signalledAddress: undefined, signalledPort: 0, signalTrusted: true, hold: false, ...p };
}

describe('latching decisions', () => {
  it('the first packet latches, whatever the time', () => {
    assert.equal(decideSource(state(), '198.51.100.7', 40000, 1e9, true), SOURCE_LATCH);
  });

  it('the latched source is accepted; others re-latch within the window, are dropped after it (strict)', () => {
    const s = state({ latchedAddress: '198.51.100.7', latchedPort: 40000, learnUntil: 3000 });
    assert.equal(decideSource(s, '198.51.100.7', 40000, 5000, true), SOURCE_ACCEPT);
    assert.equal(decideSource(s, '198.51.100.7', 40002, 2999, true), SOURCE_LATCH);
    assert.equal(decideSource(s, '198.51.100.7', 40002, 3000, true), SOURCE_DROP);
    assert.equal(decideSource(s, '192.0.2.66', 40000, 3000, true), SOURCE_DROP);
    assert.equal(decideSource(s, '192.0.2.66', 40000, 3000, false), SOURCE_FOREIGN, 'non-strict relays without re-latching');
  });

  it('a latch on the signalled address itself is confirmed: no re-latching within the window', () => {
    const s = state({ latchedAddress: '198.51.100.7', latchedPort: 40000, learnUntil: 3000, latchConfirmed: true });
    assert.equal(decideSource(s, '192.0.2.66', 40000, 100, true), SOURCE_DROP);
    assert.equal(decideSource(s, '198.51.100.7', 40000, 100, true), SOURCE_ACCEPT);
  });

  it('never latches to an unspecified source', () => {
    assert.equal(decideSource(state(), '0.0.0.0', 4000, 0, true), SOURCE_DROP);
    assert.equal(decideSource(state(), '198.51.100.7', 0, 0, true), SOURCE_DROP);
  });

  it('destination: latched, else trusted signalled, else none; nothing on hold', () => {
    assert.equal(destinationOf(state()), undefined);
    assert.deepEqual(destinationOf(state({ signalledAddress: '198.51.100.7', signalledPort: 4000 })), { address: '198.51.100.7', port: 4000 });
    assert.equal(destinationOf(state({ signalledAddress: '192.168.1.5', signalledPort: 4000, signalTrusted: false })), undefined);
    assert.deepEqual(destinationOf(state({ signalledAddress: '192.168.1.5', signalledPort: 4000, latchedAddress: '203.0.113.9', latchedPort: 5000 })), {
      address: '203.0.113.9',
      port: 5000,
    });
    assert.equal(destinationOf(state({ hold: true, latchedAddress: '203.0.113.9', latchedPort: 5000 })), undefined);
  });

  it('trusts a private SDP address only when signalling came from it (no RTP to a private address of another network)', () => {
    assert.equal(trustSignalled('192.168.1.5', undefined), true);
    assert.equal(trustSignalled('192.168.1.5', { address: '192.168.1.5', port: 5060 }), true);
    assert.equal(trustSignalled('192.168.1.5', { address: '198.51.100.7', port: 5060 }), false);
    assert.equal(trustSignalled('198.51.100.8', { address: '198.51.100.7', port: 5060 }), true);
  });

  it('isPrivateAddress', () => {
    for (const a of ['10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.0.1', '100.64.0.1', '169.254.1.1', 'fd00::1', 'fe80::1', '::ffff:10.0.0.1']) assert.equal(isPrivateAddress(a), true, a);
    for (const a of ['172.32.0.1', '8.8.8.8', '203.0.113.1', '127.0.0.1', '2001:db8::1', 'example.org']) assert.equal(isPrivateAddress(a), false, a);
  });

  it('signalChange: a new real address drops the latch; hold periods do not count as a change', () => {
    assert.deepEqual(signalChange(undefined, '198.51.100.7', 4000, false), { hold: false, clearLatch: false });
    assert.deepEqual(signalChange({ address: '198.51.100.7', port: 4000 }, '198.51.100.7', 4000, false), { hold: false, clearLatch: false });
    assert.deepEqual(signalChange({ address: '198.51.100.7', port: 4000 }, '198.51.100.7', 4002, false), { hold: false, clearLatch: true });
    assert.deepEqual(signalChange({ address: '198.51.100.7', port: 4000 }, '0.0.0.0', 4000, true), { hold: true, clearLatch: false });
    assert.deepEqual(signalChange({ address: '198.51.100.7', port: 4000 }, '198.51.100.7', 0, false), { hold: true, clearLatch: false });
  });
});
