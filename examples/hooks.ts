/**
 * sipedge with hooks passed programmatically (typed): `startEdge(config, { hooks })`.
 *
 *   node --import tsx examples/hooks.ts        # from the repository root; Ctrl-C stops it
 *
 * The hooks below do, per transaction, what OpenSIPS scripts do with set_advertised_address()
 * and force_send_socket(): calls to the `carrier.example` domain leave from the second socket
 * and carry the interconnect address in our Via and Record-Route; a request that sets the
 * (made-up) header `X-Advertise: HOST` gets that address for its transaction.
 */
import { pathToFileURL } from 'node:url';
import { parseConfigText } from '../src/config/index.js';
import { startEdge } from '../src/edge.js';
import { defineHooks } from '../src/hooks/index.js';
import { createLogger } from '../src/lib/log.js';

/** The hooks of this example (exported for the tests). */
export const hooks = defineHooks({
  onRequest(ctx) {
    const adv = ctx.request.header('x-advertise');
    if (adv) ctx.setAdvertisedAddress(adv);
  },
  beforeForward(ctx) {
    if (/@carrier\.example(?:[:;>]|$)/i.test(ctx.target.uri)) {
      const carrierSide = ctx.sockets[1];
      if (carrierSide) ctx.forceSendSocket(carrierSide.id);
      ctx.setAdvertisedAddress('192.0.2.10');
    }
  },
});

/** The example's config: two loopback sockets, an open proxy (no users), memory store. */
export const CONFIG = `
listen: [udp:127.0.0.1:5060, udp:127.0.0.1:5070]
store: "memory:"
api: { enabled: false }
`;

async function main(): Promise<void> {
  const parsed = parseConfigText(CONFIG);
  if (!parsed.ok) throw new Error(parsed.errors.map((e) => `${e.path}: ${e.message}`).join('\n'));
  const edge = await startEdge(parsed.config, { logger: createLogger('info'), hooks });
  const stop = (): void => void edge.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) void main();
