// sipedge hooks module — per-transaction control (see README "Hooks" and src/hooks/types.ts).
//
// Loaded by `hooks:` in sipedge.yaml, e.g. examples/hooks.yaml:
//
//   hooks:
//     module: ./examples/hooks.mjs        # relative to the directory sipedge is started from
//     options: { routes: [...], scannerAgents: [...] }
//
// What it does:
//  - onRequest: answers 403 to requests whose User-Agent looks like a SIP scanner
//    (friendly-scanner, sipvicious, ...) before any routing or authentication work.
//  - beforeForward: for each branch whose Request-URI matches a rule, sends it from the rule's
//    socket (OpenSIPS force_send_socket) and writes the rule's address into our Via and
//    Record-Route (OpenSIPS set_advertised_address). Typical use: calls to a carrier leave
//    from the socket on the carrier's private interconnect and advertise the address the
//    carrier knows us by; everything else follows the normal inside/outside decision.
//
// Rule fields: match (regular expression tested against the branch's Request-URI),
// destination (optional regular expression tested against "ADDRESS:PORT" of the next hop),
// socket (a socket id from `listen:`, as `sipedge show settings` lists it), advertise (host),
// advertisePort (optional; default: the socket's port).

/** @typedef {import('../src/hooks/types.js').EdgeHooks} EdgeHooks */

const DEFAULT_SCANNERS = ['friendly-scanner', 'sipvicious', 'sipcli', 'sip-scan', 'pplsip'];

/**
 * @param {{ routes?: Array<{ match?: string, destination?: string, socket?: string, advertise?: string, advertisePort?: number }>, scannerAgents?: string[] }} options
 * @returns {EdgeHooks}
 */
export default function hooks(options = {}) {
  const scanners = (options.scannerAgents ?? DEFAULT_SCANNERS).map((s) => String(s).toLowerCase());
  const routes = (options.routes ?? []).map((r) => ({
    ...r,
    uriRe: new RegExp(r.match ?? '.'),
    destRe: r.destination ? new RegExp(r.destination) : undefined,
  }));

  return {
    onRequest(ctx) {
      const agent = (ctx.request.header('user-agent') ?? '').toLowerCase();
      if (agent && scanners.some((s) => agent.includes(s))) {
        ctx.log.info({ source: `${ctx.source.address}:${ctx.source.port}`, agent }, 'hooks: scanner rejected');
        ctx.reject(403, 'Forbidden');
      }
    },

    beforeForward(ctx) {
      const dest = `${ctx.target.destination.address}:${ctx.target.destination.port}`;
      for (const r of routes) {
        if (!r.uriRe.test(ctx.target.uri)) continue;
        if (r.destRe && !r.destRe.test(dest)) continue;
        if (r.socket) ctx.forceSendSocket(r.socket);
        if (r.advertise) ctx.setAdvertisedAddress(r.advertise, r.advertisePort);
        ctx.log.debug({ rule: r.match, uri: ctx.target.uri, socket: r.socket, advertise: r.advertise }, 'hooks: route rule applied');
        return;
      }
    },
  };
}
