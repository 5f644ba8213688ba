// The graphql-ws client against a running channelboard: the token in connectionParams (the
// connection_init payload) authenticates; a bad or missing one closes the socket with 4403.
// The token: the first argument, else as common.mjs finds one for rep@acme.example.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { URL_WS, check, finish, step, tokens, withTimeout } from './common.mjs';

const token = process.argv[2] ?? (await tokens('rep@acme.example'))['rep@acme.example'];

/** One query over a fresh socket: what the client saw (results, then how it ended). */
function run(params) {
  const seen = { next: [], closed: null, error: null, complete: false };
  return withTimeout(new Promise((resolve) => {
    const client = createClient({ url: URL_WS, webSocketImpl: WebSocket, connectionParams: params, retryAttempts: 0,
      on: { closed: (e) => { seen.closed ??= { code: e.code, reason: e.reason }; } } });
    client.subscribe({ query: '{ me { role partner { name } } }' }, {
      next: (v) => seen.next.push(v),
      error: (e) => { seen.error = e?.code ?? String(e); client.dispose(); resolve(seen); },
      complete: () => { seen.complete = true; client.dispose(); resolve(seen); },
    });
  }), 10000, `a query with connectionParams ${JSON.stringify(params)}`);
}

await step('token in connectionParams', async () => {
  const seen = await run({ Authorization: `Bearer ${token}` });
  check('a query with the token in connectionParams: answered (PARTNER_REP of Acme Resellers), then complete',
    seen.complete && seen.next.length === 1 && seen.next[0].data?.me?.role === 'PARTNER_REP'
      && seen.next[0].data.me.partner?.name === 'Acme Resellers', JSON.stringify(seen));
});
for (const [what, params] of [['a bad token', { Authorization: 'Bearer nope' }], ['no token', {}]]) {
  await step(what, async () => {
    const seen = await run(params);
    check(`${what}: closed with 4403 Forbidden, nothing answered`, seen.error === 4403 && seen.next.length === 0,
      JSON.stringify(seen));
  });
}
finish('graphql-ws');
