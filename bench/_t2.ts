import { benchMedia } from './media.js';
const r = await benchMedia({ quick: true, callCounts: [Number(process.env.N ?? 50)], stepMs: 3000, budgetS: 40, startPps: 20000, rtpengineThreads: 2 });
console.log(JSON.stringify(r.relays.map((x) => ({ relay: x.relay, best: x.bestPps, gen: x.generatorLimited, cpu: x.cpuUsPerPacket, rss: x.rssBytes })), null, 1));
