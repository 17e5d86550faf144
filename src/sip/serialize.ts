/**
 * Message serialization (RFC 3261 §7). Header lines are written as `name: value` with the
 * wire name kept; the Content-Length is always rewritten to the real body length.
 */
import type { SipMessage } from './message.js';

/**
 * The start line without CRLF: `METHOD uri SIP/2.0` or `SIP/2.0 status reason`
 * (RFC 3261 §7.1, §7.2).
 */
export function formatStartLine(msg: SipMessage): string {
  return msg.type === 'request'
    ? msg.method + ' ' + msg.uri + ' ' + (msg.version || 'SIP/2.0')
    : (msg.version || 'SIP/2.0') + ' ' + msg.status + ' ' + msg.reason;
}

/**
 * Serializes a message: start line, each header as `name: value\r\n` in order (wire name
 * kept, e.g. `v`), the first Content-Length line (any spelling, e.g. `l`) set to
 * `body.length` and further Content-Length lines dropped (`Content-Length` appended when
 * absent, RFC 3261 §20.14), an empty line, then the body.
 * Text is encoded as UTF-8. Does not modify `msg`.
 * @returns a new Buffer with the wire bytes
 */
export function serializeMessage(msg: SipMessage): Buffer {
  const body = msg.body;
  const bodyLen = body === undefined ? 0 : body.length;
  let head = formatStartLine(msg) + '\r\n';
  let haveCl = false;
  const hs = msg.headers;
  for (let i = 0; i < hs.length; i++) {
    const h = hs[i];
    if (h.key === 'content-length') {
      if (haveCl) continue;
      haveCl = true;
      head += h.name + ': ' + bodyLen + '\r\n';
    } else head += h.name + ': ' + h.value + '\r\n';
  }
  if (!haveCl) head += 'Content-Length: ' + bodyLen + '\r\n';
  head += '\r\n';
  const headLen = Buffer.byteLength(head, 'utf8');
  const out = Buffer.allocUnsafe(headLen + bodyLen);
  out.write(head, 0, headLen, 'utf8');
  if (bodyLen > 0) body.copy(out, headLen);
  return out;
}
