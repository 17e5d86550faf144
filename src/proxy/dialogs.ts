/**
 * Dialog tracking at the proxy (RFC 3261 §12), enough for the edge to end a call by itself:
 * when media stops (`media.timeout`) the edge sends a BYE to both parties, each built as the
 * *other* party would build it (RFC 3261 §15.1.1, §12.2.1.1).
 *
 * A dialog is remembered when a 2xx to an initial INVITE passes through the proxy, updated by
 * the in-dialog requests that pass (their CSeq numbers, target refreshes) and removed on BYE.
 * No I/O here: {@link buildBye} returns the request; the caller sends it through the
 * transaction layer.
 */
import type { SipHeader, SipRequest } from '../sip/message.js';
import { canonicalHeaderKey } from '../sip/headers.js';
import { generateBranch } from '../sip/ids.js';
import { parseNameAddr } from '../sip/nameaddr.js';
import { formatHostPort, formatUri } from '../sip/uri.js';
import type { Destination } from '../transport/types.js';

/** One party of a dialog as the proxy sees it. */
export interface DialogParty {
  /** The party's tag (From tag of the caller, To tag of the callee). */
  tag: string;
  /** Its From/To header value, tag included, exactly as it sent it. */
  nameAddr: string;
  /** Remote target (RFC 3261 §12.1): the URI of the party's Contact. */
  contact: string;
  /** Where requests for this party go: the flow it came from (caller) or the destination used (callee). */
  dest: Destination;
  /** Route set towards this party, without our own Record-Route entries, in sending order. */
  route: string[];
  /** Highest CSeq number seen in requests *from* this party (0 = none yet). */
  cseq: number;
}

/** A confirmed dialog (RFC 3261 §12.1). */
export interface Dialog {
  callId: string;
  caller: DialogParty;
  callee: DialogParty;
  /** Wall-clock creation time (Unix ms): when the 2xx passed. */
  createdAt: number;
}

/** The dialogs the proxy took part in, by Call-ID. */
export class DialogTable {
  private readonly byCall = new Map<string, Dialog[]>();

  /** Adds a dialog, or refreshes the one with the same Call-ID and tags (2xx retransmission). */
  add(d: Dialog): Dialog {
    const list = this.byCall.get(d.callId) ?? [];
    const old = list.find((x) => x.caller.tag === d.caller.tag && x.callee.tag === d.callee.tag);
    if (old) {
      old.callee.contact = d.callee.contact;
      return old;
    }
    list.push(d);
    this.byCall.set(d.callId, list);
    return d;
  }

  /** The dialog with this Call-ID whose two tags are `a` and `b` (in either order). */
  find(callId: string, a: string | undefined, b: string | undefined): Dialog | undefined {
    return this.byCall
      .get(callId)
      ?.find((d) => (d.caller.tag === a && d.callee.tag === b) || (d.caller.tag === b && d.callee.tag === a));
  }

  /** Every dialog of a call (several after a forked INVITE got more than one 2xx). */
  forCall(callId: string): Dialog[] {
    return this.byCall.get(callId) ?? [];
  }

  remove(d: Dialog): void {
    const list = this.byCall.get(d.callId);
    if (!list) return;
    const rest = list.filter((x) => x !== d);
    if (rest.length === 0) this.byCall.delete(d.callId);
    else this.byCall.set(d.callId, rest);
  }

  all(): Dialog[] {
    return [...this.byCall.values()].flat();
  }

  get size(): number {
    let n = 0;
    for (const l of this.byCall.values()) n += l.length;
    return n;
  }

  /**
   * An in-dialog request passed (RFC 3261 §12.2.2): remember the sender's CSeq number, and its
   * new Contact on a target refresh (re-INVITE, UPDATE).
   */
  noteRequest(d: Dialog, fromTag: string | undefined, cseq: number, contact: string | undefined): void {
    const sender = fromTag === d.caller.tag ? d.caller : fromTag === d.callee.tag ? d.callee : undefined;
    if (!sender) return;
    if (cseq > sender.cseq) sender.cseq = cseq;
    if (contact) sender.contact = contact;
  }

  clear(): void {
    this.byCall.clear();
  }
}

/** The URI of a Contact value (`<sip:a@b;transport=tcp>;expires=3` → `sip:a@b;transport=tcp`), URI headers dropped. */
export function contactUri(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const na = parseNameAddr(value);
  if (!na.ok || na.value.wildcard) return undefined;
  return formatUri({ ...na.value.uri, headers: {} });
}

function header(name: string, value: string): SipHeader {
  return { name, key: canonicalHeaderKey(name), value };
}

/** Our side of the flow the BYE leaves on (what `advertisedFor` says represents us there). */
export interface ByeLocal {
  host: string;
  port: number;
  transport: string;
}

/**
 * The BYE the edge sends to `towards` on behalf of the other party (RFC 3261 §15.1.1 built per
 * §12.2.1.1): Request-URI = the recipient's Contact (remote target), Route = its route set,
 * From = the other party's From/To value (its tag), To = the recipient's, the dialog's Call-ID,
 * CSeq = the highest CSeq seen from the other party + 1 (which is then remembered), our Via.
 * @returns the request and where to send it
 */
export function buildBye(d: Dialog, towards: 'caller' | 'callee', local: ByeLocal, reason?: string): { request: SipRequest; dest: Destination } {
  const to = towards === 'caller' ? d.caller : d.callee;
  const from = towards === 'caller' ? d.callee : d.caller;
  from.cseq = Math.max(from.cseq, 0) + 1;
  const transport = local.transport.toUpperCase();
  const headers: SipHeader[] = [header('Via', `SIP/2.0/${transport} ${formatHostPort(local.host, local.port)};branch=${generateBranch()};rport`), header('Max-Forwards', '70')];
  for (const r of to.route) headers.push(header('Route', r));
  headers.push(header('From', from.nameAddr), header('To', to.nameAddr), header('Call-ID', d.callId), header('CSeq', `${from.cseq} BYE`));
  // RFC 3326: why the call ended.
  if (reason) headers.push(header('Reason', reason));
  headers.push(header('Content-Length', '0'));
  return {
    request: { type: 'request', method: 'BYE', uri: to.contact, version: 'SIP/2.0', headers, body: Buffer.alloc(0) },
    dest: { ...to.dest },
  };
}
