import { benchCalls, benchRegistrations } from '/work/main/bench/signalling.ts';
const opts = { quick: true, stepS: Number(process.env.STEP ?? 5), budgetS: Number(process.env.BUD ?? 40), users: 1000, callStart: Number(process.env.CS ?? 200), regStart: 400, holdMs: 100, kamailioChildren: 4 };
const which = process.argv[2];
if (which === 'sc') console.log(JSON.stringify(await benchCalls({ label: 'sipedge', kind: 'sipedge', store: 'memory' }, opts), null, 1).slice(0, 3000));
if (which === 'kc') console.log(JSON.stringify(await benchCalls({ label: 'kamailio', kind: 'kamailio' }, opts), null, 1).slice(0, 3000));
if (which === 'sr') console.log(JSON.stringify(await benchRegistrations({ label: 'sipedge', kind: 'sipedge', store: 'memory' }, opts), null, 1).slice(0, 3000));
if (which === 'kr') console.log(JSON.stringify(await benchRegistrations({ label: 'kamailio', kind: 'kamailio' }, opts), null, 1).slice(0, 3000));
