// The graphql-ws client against a running channelboard: the token in connectionParams (the
// connection_init payload) authenticates; a bad or missing one closes the socket with 4403;
// a refused subscription reads the same whichever path serves it.
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
// A leaderboardChanged refused, through the fan-out's fast path (one field) and through
// strawberry's resolver (a fragment beside it): the client sees the same on both, as
// graphql-ws's own server would tell it (docs/security.md). Refused as it runs (an unknown
// contest): `next` with no data and the field's error (its locations, the alias as its
// path), then `complete`; refused on its variables (a variable of the wrong type): the
// same (graphql-js's subscribe() returns it as a result), the error coded and without a
// path; refused on its document (a field it does not have): `error`, a coded list.
const FAST = 'subscription($id: ID!, $first: Int) { board: leaderboardChanged(contestId: $id, first: $first) { version } }';
const RESOLVER = 'subscription($id: ID!, $first: Int) { board: leaderboardChanged(contestId: $id, first: $first) '
  + '{ version ... on LeaderboardUpdate { version } } }';
const UNKNOWN = Buffer.from('Contest:00000000-0000-7000-8000-000000000000').toString('base64');

function subscribed(query, variables) {
  const seen = { next: [], error: null, complete: false };
  return withTimeout(new Promise((resolve) => {
    const client = createClient({ url: URL_WS, webSocketImpl: WebSocket, retryAttempts: 0,
      connectionParams: { Authorization: `Bearer ${token}` } });
    client.subscribe({ query, variables }, {
      next: (v) => seen.next.push(v),
      error: (e) => { seen.error = Array.isArray(e) ? e : String(e); client.dispose(); resolve(seen); },
      complete: () => { seen.complete = true; client.dispose(); resolve(seen); },
    });
  }), 10000, `a subscription with ${JSON.stringify(variables)}`);
}

const only = (s) => (s.complete && !s.error && s.next.length === 1 && s.next[0].data === null
  && s.next[0].errors?.length === 1 ? s.next[0].errors[0] : null);
for (const [what, variables, expected, fields = 'version'] of [
  ['an unknown contest', { id: UNKNOWN }, (s) => only(s)?.extensions?.code === 'NOT_FOUND'
    && JSON.stringify(only(s).path) === '["board"]'
    && JSON.stringify(only(s).locations) === '[{"line":1,"column":39}]'],
  ['a variable of the wrong type', { id: UNKNOWN, first: 'ten' }, (s) => only(s)?.extensions?.code
    === 'GRAPHQL_VALIDATION_FAILED' && !('path' in only(s)) && only(s).locations?.length === 1],
  ['a field it does not have', { id: UNKNOWN }, (s) => !s.complete && s.next.length === 0
    && s.error?.[0]?.extensions?.code === 'GRAPHQL_VALIDATION_FAILED' && !('path' in s.error[0]), 'nope'],
]) {
  await step(what, async () => {
    const fast = await subscribed(FAST.replace('version', fields), variables);
    const resolver = await subscribed(RESOLVER.replace('version', fields), variables);
    check(`leaderboardChanged, ${what}: the same on the fast path and the resolver's`,
      JSON.stringify(fast) === JSON.stringify(resolver), JSON.stringify({ fast, resolver }));
    check(`leaderboardChanged, ${what}: told as the protocol says`, expected(fast), JSON.stringify(fast));
  });
}
finish('graphql-ws');
