import { auditServer } from 'graphql-http';
const results = await auditServer({ url: process.env.CHANNELBOARD_URL ?? 'http://127.0.0.1:8000/graphql' });
for (const r of results) {
  if (r.status !== 'ok') console.log(r.status, r.id, r.name, '::', r.reason);
}
console.log('total', results.length, 'ok', results.filter(r => r.status === 'ok').length,
  'warn', results.filter(r => r.status === 'warn').length, 'error', results.filter(r => r.status === 'error').length);
process.exitCode = results.some((r) => r.status === 'error') ? 1 : 0;
