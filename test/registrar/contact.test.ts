import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalUser } from '../../src/registrar/aor.js';
import { contactUriText, parseDeltaSeconds, parseInstanceId, parseQValue, parseRegId } from '../../src/registrar/contact.js';

describe('contact helpers', () => {
  it('contactUriText returns the URI as sent', () => {
    assert.equal(contactUriText('<sip:a@B.example:5060;transport=TCP>;expires=60'), 'sip:a@B.example:5060;transport=TCP');
    assert.equal(contactUriText('"A <b>, \\"c\\"" <sip:a@b>;q=1'), 'sip:a@b');
    assert.equal(contactUriText('Desk Phone <sip:a@b;ob>;+sip.instance="<urn:uuid:1>"'), 'sip:a@b;ob');
    assert.equal(contactUriText('sip:a@b;+sip.instance="<urn:uuid:1>"'), 'sip:a@b');
    assert.equal(contactUriText('  sip:a@[2001:db8::1]:5060 ;expires=0'), 'sip:a@[2001:db8::1]:5060');
  });

  it('parseDeltaSeconds', () => {
    assert.equal(parseDeltaSeconds('0'), 0);
    assert.equal(parseDeltaSeconds(' 3600 '), 3600);
    assert.equal(parseDeltaSeconds('99999999999999999999'), 4_294_967_295);
    for (const bad of ['', '-1', '1.5', '1e3', 'Thu, 01 Dec 1994 16:00:00 GMT', null, undefined]) assert.equal(parseDeltaSeconds(bad), undefined);
  });

  it('parseQValue follows the qvalue grammar', () => {
    assert.equal(parseQValue('0'), 0);
    assert.equal(parseQValue('1'), 1);
    assert.equal(parseQValue('1.000'), 1);
    assert.equal(parseQValue('0.5'), 0.5);
    assert.equal(parseQValue('0.123'), 0.123);
    assert.equal(parseQValue('0.'), 0);
    for (const bad of ['1.001', '0.1234', '2', '.5', '-0', 'x', '', null]) assert.equal(parseQValue(bad), undefined, String(bad));
  });

  it('parseInstanceId and parseRegId', () => {
    assert.equal(parseInstanceId('"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>"'), 'urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6');
    assert.equal(parseInstanceId('<urn:x>'), 'urn:x');
    assert.equal(parseInstanceId('""'), undefined);
    assert.equal(parseInstanceId(null), undefined);
    assert.equal(parseRegId('1'), 1);
    assert.equal(parseRegId('2147483647'), 2147483647);
    for (const bad of ['0', '2147483648', 'a', '', null]) assert.equal(parseRegId(bad), undefined);
  });

  it('canonicalUser decodes only what may stand unescaped', () => {
    assert.equal(canonicalUser('%41lice'), 'Alice');
    assert.equal(canonicalUser('a%40b%3a'), 'a%40b%3A');
    assert.equal(canonicalUser('100%'), '100%');
  });
});
