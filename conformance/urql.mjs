// urql (@urql/core) against a running channelboard: fetchExchange (GET for queries within
// the URL limit, urql's default, POST beyond it and for mutations) and subscriptionExchange
// over graphql-ws (lazy: false, connectionParams as a function, a reconnect, a subscription
// the server completes, one the client stops mid-stream).
import { Client, fetchExchange, gql, subscriptionExchange } from '@urql/core';
import { persistedExchange } from '@urql/exchange-persisted';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { URL_HTTP, URL_WS, acmeSerial, check, finish, sleep, step, tokens, withTimeout } from './common.mjs';

// Persisted documents are named for the run (a server keeps what it ran: a second run would
// find them known and skip the exchange the checks look at).
const RUN = Date.now();
const T = await tokens('rep@acme.example', 'admin@northwind.example');
const REP = T['rep@acme.example'];
const ADMIN = T['admin@northwind.example'];

function recordingFetch() {
  const seen = [];
  const f = async (uri, options) => {
    const response = await fetch(uri, options);
    seen.push({ method: options.method ?? 'GET', uri: String(uri), accept: new Headers(options.headers).get('accept'),
      status: response.status, type: response.headers.get('content-type') });
    return response;
  };
  f.seen = seen;
  return f;
}

let paramsCalls = 0;
let pongs = 0;
const connected = [];
const closed = [];
const ws = createClient({
  url: URL_WS, webSocketImpl: WebSocket, lazy: false, retryAttempts: 3, keepAlive: 300, retryWait: () => sleep(300),
  shouldRetry: () => true,
  connectionParams: async () => { paramsCalls += 1; return { Authorization: `Bearer ${REP}` }; },
  on: { connected: (socket) => connected.push(socket), closed: (e) => closed.push(e.code), pong: () => { pongs += 1; } },
});

function makeClient(token, fetchImpl, extra = {}) {
  return new Client({
    url: URL_HTTP, fetch: fetchImpl, requestPolicy: 'network-only',
    fetchOptions: () => ({ headers: token ? { authorization: `Bearer ${token}` } : {} }),
    exchanges: [subscriptionExchange({
      forwardSubscription(request) {
        const input = { ...request, query: request.query || '' };
        return { subscribe: (sink) => ({ unsubscribe: ws.subscribe(input, sink) }) };
      },
    }), fetchExchange],
    ...extra,
  });
}

const repFetch = recordingFetch();
const rep = makeClient(REP, repFetch);
const admin = makeClient(ADMIN, recordingFetch());
const anon = makeClient(null, recordingFetch());

// A claim the rep makes and the admin approves moves Acme on the REVENUE board.
async function claimAndApprove(amount) {
  for (let attempt = 0; attempt < 8; attempt += 1) {
    const serial = acmeSerial(attempt * 11 + Math.floor(Math.random() * 1000));
    const made = await rep.mutation(gql`mutation Claim($input: SaleClaimCreateInput!) { saleClaimCreate(input: $input) { saleClaim { id state serials { outcome } } userErrors { code message } } }`,
      { input: { serials: [serial], customerName: 'Initech', invoiceNumber: `URQL-${serial}-${Date.now()}`,
        saleDate: new Date().toISOString().slice(0, 10), amount: { amount, currency: 'USD' } } }).toPromise();
    const claim = made.data?.saleClaimCreate?.saleClaim;
    if (!claim || claim.serials[0].outcome !== 'VALID') continue;
    if (!['AUTO_APPROVED', 'APPROVED'].includes(claim.state)) {
      const approved = await admin.mutation(gql`mutation Approve($id: ID!) { saleClaimApprove(input: {id: $id, note: "conformance"}) { saleClaim { state } userErrors { code message } } }`,
        { id: claim.id }).toPromise();
      if (approved.error || approved.data.saleClaimApprove.userErrors.length) throw new Error(JSON.stringify(approved.data ?? String(approved.error)));
    }
    return claim.id;
  }
  throw new Error('no free demo serial found');
}

await step('lazy: false connects at once', async () => {
  await withTimeout((async () => { while (!connected.length) await sleep(50); })(), 10000, 'connected');
  check('graphql-ws lazy: false: connected before any operation, connectionParams (a function) called once',
    connected.length === 1 && paramsCalls === 1, `${connected.length} ${paramsCalls}`);
});

await step('GET query', async () => {
  const result = await rep.query(gql`query Me { me { role partner { name } } }`, {}).toPromise();
  const last = repFetch.seen.at(-1);
  check('query: urql\'s default GET within the URL limit, answered', last.method === 'GET' && result.data?.me?.role === 'PARTNER_REP',
    JSON.stringify({ last, error: String(result.error ?? '') }));
  check('GET answered 200 application/graphql-response+json (urql\'s Accept lists it first)',
    last.status === 200 && last.type?.startsWith('application/graphql-response+json'), JSON.stringify(last));
});

await step('long query goes POST', async () => {
  const fields = Array.from({ length: 16 }, (_, i) => `f${i}: contests(first: ${i + 1}) { totalCount edges { node { id name metric status startsAt endsAt } } }`).join('\n');
  const result = await rep.query(`query Long { ${fields} ${' '.repeat(2100)} }`, {}).toPromise();
  const last = repFetch.seen.at(-1);
  check('a query beyond the URL limit: POST, answered', last.method === 'POST' && typeof result.data?.f0?.totalCount === 'number',
    JSON.stringify({ last, error: String(result.error ?? '') }));
});

await step('GET query with variables and a validation error', async () => {
  const ok = await rep.query(gql`query C($n: Int!) { contests(first: $n) { totalCount } }`, { n: 2 }).toPromise();
  check('GET with variables in the URL', typeof ok.data?.contests?.totalCount === 'number' && repFetch.seen.at(-1).method === 'GET',
    String(ok.error ?? ''));
  const bad = await rep.query(gql`query Bad { me { nope } }`, {}).toPromise();
  const e = bad.error?.graphQLErrors?.[0];
  check('validation error over GET: CombinedError with GRAPHQL_VALIDATION_FAILED, no network error',
    e?.extensions?.code === 'GRAPHQL_VALIDATION_FAILED' && !bad.error.networkError, String(bad.error));
});

await step('errors', async () => {
  const r = await anon.query(gql`query Me { me { role } }`, {}).toPromise();
  const e = r.error?.graphQLErrors?.[0];
  check('anonymous: graphQLErrors[0].extensions.code UNAUTHENTICATED', e?.extensions?.code === 'UNAUTHENTICATED', String(r.error));
  const m = await rep.mutation(gql`mutation { salesSettingsUpdate(input: {proofRequired: false}) { userErrors { code } } }`, {}).toPromise();
  check('rep mutation it may never perform: FORBIDDEN', m.error?.graphQLErrors?.[0]?.extensions?.code === 'FORBIDDEN', String(m.error));
  const u = await rep.mutation(gql`mutation Bad($input: SaleClaimCreateInput!) { saleClaimCreate(input: $input) { saleClaim { id } userErrors { field code } } }`,
    { input: { serials: ['DEMO-000001', 'demo-000001'], customerName: 'Initech', invoiceNumber: 'X', saleDate: '2026-12-01', amount: { amount: '10.00', currency: 'USD' } } }).toPromise();
  check('mutation POST with userErrors (DUPLICATE_SERIAL), no error', !u.error && repFetch.seen.at(-1).method === 'POST'
    && u.data.saleClaimCreate.userErrors.some((x) => x.code === 'DUPLICATE_SERIAL'), JSON.stringify(u.data ?? String(u.error)));
});

const BOARD = gql`subscription Board($contestId: ID!) { leaderboardChanged(contestId: $contestId, first: 5) { contestId version final status rows { rank score } } }`;

await step('subscription that the server completes', async () => {
  const now = Date.now();
  const created = await admin.mutation(gql`mutation Make($input: ContestCreateInput!) { contestCreate(input: $input) { contest { id status } userErrors { field code message } } }`,
    { input: { name: `urql ${now}`, startsAt: new Date(now - 60000).toISOString(), endsAt: new Date(now + 6000).toISOString(), publish: true } }).toPromise();
  const contest = created.data?.contestCreate?.contest;
  if (!check('a contest ending in 6 s', Boolean(contest), JSON.stringify(created.data ?? String(created.error)))) return;
  const pushes = [];
  let timer;
  await new Promise((resolve) => {
    const { unsubscribe } = rep.subscription(BOARD, { contestId: contest.id }).subscribe((r) => {
      pushes.push(r);
      if (r.error || r.data?.leaderboardChanged?.final) resolve();
    });
    timer = setTimeout(() => { unsubscribe(); resolve(); }, 20000);
  }).finally(() => clearTimeout(timer)); // (a pending timer would keep node running)
  const last = pushes.at(-1);
  check('subscriptionExchange: a snapshot, then final standings when the contest ends',
    pushes.length >= 2 && !pushes[0].data.leaderboardChanged.final && last.data?.leaderboardChanged?.final === true,
    JSON.stringify(pushes.map((p) => p.data?.leaderboardChanged ?? String(p.error))));
});

let contestId;
await step('unsubscribe mid-stream, then reconnect', async () => {
  const { data } = await rep.query(gql`query Contests { contests(first: 10) { edges { node { id metric status } } } }`, {}).toPromise();
  contestId = data.contests.edges.find((e) => e.node.status === 'LIVE')?.node.id;
  const first = [];
  const sub = rep.subscription(BOARD, { contestId }).subscribe((r) => first.push(r));
  await withTimeout((async () => { while (!first.length) await sleep(50); })(), 10000, 'first snapshot');
  sub.unsubscribe();
  check('unsubscribing mid-stream', first[0].data?.leaderboardChanged?.contestId === contestId, JSON.stringify(first[0]));

  const again = [];
  const sub2 = rep.subscription(BOARD, { contestId }).subscribe((r) => again.push(r));
  await withTimeout((async () => { while (!again.length) await sleep(50); })(), 10000, 'snapshot on the same socket');
  check('a new subscription on the same socket after an unsubscribe', again[0].data?.leaderboardChanged?.contestId === contestId);
  ws.terminate(); // the socket drops; graphql-ws reconnects and subscribes again
  await withTimeout((async () => { while (connected.length < 2 || again.length < 2) await sleep(50); })(), 15000, 'reconnect');
  check('after a dropped socket: reconnected, connectionParams called again, a fresh snapshot',
    connected.length === 2 && paramsCalls === 2 && again.at(-1).data?.leaderboardChanged?.contestId === contestId,
    JSON.stringify({ connected: connected.length, paramsCalls, closed, pushes: again.length }));
  sub2.unsubscribe();
});

await step('too many operations', async () => {
  const subs = [];
  const results = [];
  // (urql shares identical operations: each asks for a different `first`)
  for (let i = 0; i < 6; i += 1) subs.push(rep.subscription(`subscription Board${i}($contestId: ID!) { leaderboardChanged(contestId: $contestId, first: ${i + 1}) { version } }`, { contestId }).subscribe((r) => results.push(r)));
  await withTimeout((async () => { while (results.length < 6) await sleep(50); })(), 15000, 'six answers');
  const refused = results.filter((r) => r.error);
  check('a sixth operation on one socket: one error TOO_MANY_OPERATIONS, the socket stays up',
    refused.length === 1 && refused[0].error.graphQLErrors[0]?.extensions?.code === 'TOO_MANY_OPERATIONS' && connected.length === 2,
    JSON.stringify(results.map((r) => r.error ? String(r.error) : r.data.leaderboardChanged.version)));
  subs.forEach((s) => s.unsubscribe());
});

await step('persisted queries', async () => {
  // urql's persistedExchange (automatic persisted queries, GET for hashed queries, mutations
  // too): the hash alone, PersistedQueryNotFound, then the document with its hash; later
  // requests carry the hash alone.
  const seen = recordingFetch();
  const apq = new Client({
    url: URL_HTTP, fetch: seen, requestPolicy: 'network-only',
    fetchOptions: () => ({ headers: { authorization: `Bearer ${REP}` } }),
    exchanges: [persistedExchange({ preferGetForPersistedQueries: true, enableForMutation: true }), fetchExchange],
  });
  const query = gql(`query MeUrqlPersisted${RUN} { me { role } }`);
  const first = await apq.query(query, {}).toPromise();
  check('persistedExchange: the first query answered', first.data?.me?.role === 'PARTNER_REP', String(first.error ?? ''));
  check('first: the hash alone (GET), then the document', seen.seen.length === 2 && seen.seen[0].method === 'GET'
    && !new URL(seen.seen[0].uri).searchParams.has('query'), JSON.stringify(seen.seen));
  const second = await apq.query(query, {}).toPromise();
  const hit = seen.seen.at(-1);
  check('second: the hash alone by GET, answered with data', seen.seen.length === 3 && hit.method === 'GET'
    && !new URL(hit.uri).searchParams.has('query') && second.data?.me?.role === 'PARTNER_REP', JSON.stringify(hit));
  // A mutation by hash: a userErrors answer, by POST (never GET).
  const mutation = gql(`mutation MarkWon${RUN}($input: DealRegistrationActionInput!) { dealRegistrationMarkWon(input: $input) { userErrors { code } } }`);
  const refused = await apq.mutation(mutation, { input: { id: 'nope' } }).toPromise();
  const posts = seen.seen.slice(3);
  check('a mutation by hash goes POST and is answered', posts.length >= 1 && posts.every((r) => r.method === 'POST')
    && (refused.data || refused.error?.graphQLErrors?.length), JSON.stringify({ posts, error: String(refused.error ?? '') }));
});

await step('persisted subscriptions', async () => {
  // persistedExchange({ enableForSubscriptions: true }) over graphql-ws: the hash alone first
  // (the `query: request.query || ''` of urql's documented forwardSubscription: graphql-ws
  // sends no subscribe without a query string), PersistedQueryNotFound as the operation's
  // `error`, then the document with its hash; the same document later by its hash alone.
  const sent = [];
  class RecordingWebSocket extends WebSocket {
    send(data, ...rest) { sent.push(JSON.parse(String(data))); return super.send(data, ...rest); }
  }
  const socket = createClient({ url: URL_WS, webSocketImpl: RecordingWebSocket, retryAttempts: 0,
    connectionParams: () => ({ Authorization: `Bearer ${REP}` }) });
  const apq = new Client({
    url: URL_HTTP, requestPolicy: 'network-only',
    fetchOptions: () => ({ headers: { authorization: `Bearer ${REP}` } }),
    exchanges: [persistedExchange({ enableForSubscriptions: true }), subscriptionExchange({
      forwardSubscription(request) {
        const input = { ...request, query: request.query || '' };
        return { subscribe: (sink) => ({ unsubscribe: socket.subscribe(input, sink) }) };
      },
    }), fetchExchange],
  });
  const { data } = await rep.query(gql`query Contests { contests(first: 10) { edges { node { id metric status } } } }`, {}).toPromise();
  const revenue = data.contests.edges.find((e) => e.node.metric === 'REVENUE' && e.node.status === 'LIVE')?.node.id;
  if (!check('a live REVENUE contest to watch', Boolean(revenue), JSON.stringify(data))) return;
  const board = gql(`subscription BoardUrqlPersisted${RUN}($contestId: ID!) { leaderboardChanged(contestId: $contestId, first: 5) { contestId version rows { rank score } } }`);
  const subscribes = () => sent.filter((m) => m.type === 'subscribe').map((m) => m.payload);
  try {
    const pushes = [];
    const sub = apq.subscription(board, { contestId: revenue }).subscribe((r) => pushes.push(r));
    try {
      await withTimeout((async () => { while (!pushes.length) await sleep(50); })(), 10000, 'first snapshot');
      const first = pushes[0].data?.leaderboardChanged;
      check('enableForSubscriptions: the subscription\'s snapshot', first?.contestId === revenue, JSON.stringify(pushes[0].data ?? String(pushes[0].error)));
      const [miss, full] = subscribes();
      check('first the hash alone (query ""), then, after PersistedQueryNotFound, the document with its hash',
        subscribes().length === 2 && miss.query === '' && miss.extensions?.persistedQuery?.sha256Hash
          && full.query.includes(`BoardUrqlPersisted${RUN}`) && full.extensions?.persistedQuery?.sha256Hash === miss.extensions.persistedQuery.sha256Hash,
        JSON.stringify(subscribes()));
      if (!first) return;
      await claimAndApprove('66.00');
      await withTimeout((async () => {
        while (!pushes.some((p) => p.data?.leaderboardChanged?.version > first.version)) await sleep(50);
      })(), 15000, 'a push after the approval');
      check('a push with a higher version after an approved claim', pushes.every((p) => !p.error), JSON.stringify(pushes.map((p) => String(p.error ?? p.data.leaderboardChanged.version))));
    } finally {
      sub.unsubscribe();
    }
    // Now known: the same document by its hash alone is run.
    const again = [];
    const sub2 = apq.subscription(board, { contestId: revenue }).subscribe((r) => again.push(r));
    try {
      await withTimeout((async () => { while (!again.length) await sleep(50); })(), 10000, 'snapshot by hash');
      const last = subscribes().at(-1);
      check('again: the hash alone, answered with the snapshot', subscribes().length === 3 && last.query === ''
        && again[0].data?.leaderboardChanged?.contestId === revenue, JSON.stringify({ last, result: again[0].data ?? String(again[0].error) }));
    } finally {
      sub2.unsubscribe();
    }
  } finally {
    await socket.dispose();
  }
});

check('keepAlive pings answered with pongs', pongs > 0, `${pongs}`);
await ws.dispose();
finish('urql');
