// Apollo Client 4 against a running channelboard: HttpLink for queries and mutations (its
// default headers, no persisted queries), GraphQLWsLink + graphql-ws for the live leaderboard,
// and Apollo's error handling (a GraphQL error's extensions.code, a payload's userErrors).
import { ApolloClient, ApolloLink, CombinedGraphQLErrors, HttpLink, InMemoryCache, ServerError, gql } from '@apollo/client';
import { BatchHttpLink } from '@apollo/client/link/batch-http';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { getMainDefinition } from '@apollo/client/utilities';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { createHash } from 'node:crypto';
import { URL_HTTP, URL_WS, acmeSerial, check, finish, sleep, step, tokens, withTimeout } from './common.mjs';

// GraphQLWsLink reads the global WebSocket when a subscription errors (Node 20 has none).
globalThis.WebSocket ??= WebSocket;

// Persisted documents are named for the run (a server keeps what it ran: a second run would
// find them known and skip the exchange the checks look at).
const RUN = Date.now();
const T = await tokens('rep@acme.example', 'admin@northwind.example');
const REP = T['rep@acme.example'];
const ADMIN = T['admin@northwind.example'];

/** fetch that remembers the last request's headers and the response's status and type. */
function recordingFetch({ body = false } = {}) {
  const seen = [];
  const f = async (uri, options) => {
    const response = await fetch(uri, options);
    seen.push({ method: options.method ?? 'GET', uri: String(uri), headers: { ...options.headers }, sentBody: options.body,
      status: response.status, type: response.headers.get('content-type'),
      body: body ? response.clone().json().catch(() => null) : undefined });
    return response;
  };
  f.seen = seen;
  return f;
}

function makeClient(token, { wsParams, httpLink } = {}) {
  const fetchImpl = recordingFetch();
  const http = httpLink ?? new HttpLink({ uri: URL_HTTP, fetch: fetchImpl,
    headers: token ? { authorization: `Bearer ${token}` } : {} });
  const ws = createClient({ url: URL_WS, webSocketImpl: WebSocket, retryAttempts: 0,
    connectionParams: wsParams ?? (() => ({ Authorization: `Bearer ${token}` })) });
  const link = ApolloLink.split(({ query }) => {
    const def = getMainDefinition(query);
    return def.kind === 'OperationDefinition' && def.operation === 'subscription';
  }, new GraphQLWsLink(ws), http);
  const client = new ApolloClient({ link, cache: new InMemoryCache() });
  return { client, ws, fetchImpl };
}

const rep = makeClient(REP);
const admin = makeClient(ADMIN);
const anon = makeClient(null, { wsParams: {} });

await step('query as rep', async () => {
  const { data } = await rep.client.query({ query: gql`query Me { me { role partner { name } } }` });
  check('HttpLink query: me.role is PARTNER_REP', data?.me?.role === 'PARTNER_REP', JSON.stringify(data));
  const last = rep.fetchImpl.seen.at(-1);
  const sentBody = JSON.parse(last.sentBody ?? '{}');
  check('the body carries Apollo 4\'s extensions (clientLibrary), accepted', typeof sentBody.extensions?.clientLibrary?.name === 'string',
    JSON.stringify(sentBody.extensions));
  check('HttpLink sends Apollo 4\'s default Accept', last.headers.accept === 'application/graphql-response+json,application/json;q=0.9', last.headers.accept);
  check('answered 200 application/graphql-response+json', last.status === 200 && last.type?.startsWith('application/graphql-response+json'), `${last.status} ${last.type}`);
});

let contestId;
await step('contests', async () => {
  const { data } = await rep.client.query({ query: gql`query Contests { contests(first: 10) { edges { node { id name metric status } } } }` });
  contestId = data.contests.edges.find((e) => e.node.metric === 'REVENUE' && e.node.status === 'LIVE')?.node.id;
  check('a live REVENUE contest to watch', Boolean(contestId), JSON.stringify(data));
});

await step('unauthenticated', async () => {
  try {
    await anon.client.query({ query: gql`query Me { me { role } }` });
    check('anonymous query errors', false, 'no error');
  } catch (e) {
    const err = CombinedGraphQLErrors.is(e) ? e.errors[0] : null;
    check('anonymous: CombinedGraphQLErrors, code UNAUTHENTICATED, reason MISSING_CREDENTIALS',
      err?.extensions?.code === 'UNAUTHENTICATED' && err?.extensions?.reason === 'MISSING_CREDENTIALS', String(e));
  }
});

await step('forbidden', async () => {
  try {
    await rep.client.mutate({ mutation: gql`mutation NoSettings { salesSettingsUpdate(input: {proofRequired: false}) { userErrors { code } } }` });
    check('a rep changing sales settings errors', false, 'no error');
  } catch (e) {
    const err = CombinedGraphQLErrors.is(e) ? e.errors[0] : null;
    check('rep salesSettingsUpdate: CombinedGraphQLErrors with code FORBIDDEN', err?.extensions?.code === 'FORBIDDEN', String(e));
  }
  const { data, error } = await rep.client.mutate({ errorPolicy: 'all',
    mutation: gql`mutation NoSettings2 { salesSettingsUpdate(input: {proofRequired: false}) { userErrors { code } } }` });
  check('errorPolicy all: data null and the error', data == null && CombinedGraphQLErrors.is(error), JSON.stringify({ data, error: String(error) }));
});

await step('validation error', async () => {
  try {
    await rep.client.query({ query: gql`query Bad { me { noSuchField } }` });
    check('an invalid query errors', false, 'no error');
  } catch (e) {
    const err = CombinedGraphQLErrors.is(e) ? e.errors[0] : null;
    const last = rep.fetchImpl.seen.at(-1);
    check('invalid query: CombinedGraphQLErrors (GRAPHQL_VALIDATION_FAILED) from a 400 graphql-response+json',
      err?.extensions?.code === 'GRAPHQL_VALIDATION_FAILED' && last.status === 400, `${String(e)} ${last.status}`);
  }
});

await step('userErrors', async () => {
  const { data, error } = await rep.client.mutate({
    mutation: gql`mutation Bad($input: SaleClaimCreateInput!) { saleClaimCreate(input: $input) { saleClaim { id } userErrors { field code message } } }`,
    variables: { input: { serials: ['!!'], customerName: 'Initech', invoiceNumber: 'X', saleDate: '2026-12-01', amount: { amount: '10.00', currency: 'USD' } } },
  });
  const ue = data?.saleClaimCreate?.userErrors ?? [];
  check('userErrors payload: no error, saleClaim null, MALFORMED_SERIAL on serials.0',
    !error && data.saleClaimCreate.saleClaim === null && ue.some((u) => u.code === 'MALFORMED_SERIAL'), JSON.stringify(ue));
});

// A claim the rep makes and the admin approves moves Acme on the REVENUE board.
async function claimAndApprove(amount) {
  for (let attempt = 0; attempt < 8; attempt += 1) {
    const serial = acmeSerial(attempt * 7 + Math.floor(Math.random() * 1000));
    const { data } = await rep.client.mutate({
      mutation: gql`mutation Claim($input: SaleClaimCreateInput!) { saleClaimCreate(input: $input) { saleClaim { id state serials { outcome } } userErrors { code message } } }`,
      variables: { input: { serials: [serial], customerName: 'Initech', invoiceNumber: `APOLLO-${serial}-${Date.now()}`,
        saleDate: new Date().toISOString().slice(0, 10), amount: { amount, currency: 'USD' } } },
    });
    const claim = data.saleClaimCreate.saleClaim;
    if (!claim || claim.serials[0].outcome !== 'VALID') continue;
    if (!['AUTO_APPROVED', 'APPROVED'].includes(claim.state)) {
      const { data: approved } = await admin.client.mutate({
        mutation: gql`mutation Approve($id: ID!) { saleClaimApprove(input: {id: $id, note: "conformance"}) { saleClaim { state } userErrors { code message } } }`,
        variables: { id: claim.id } });
      if (approved.saleClaimApprove.userErrors.length) throw new Error(JSON.stringify(approved.saleClaimApprove.userErrors));
    }
    return claim.id;
  }
  throw new Error('no free demo serial found');
}

const BOARD = gql`subscription Board($contestId: ID!) { leaderboardChanged(contestId: $contestId, first: 5) {
  contestId version final rows { rank participant { name isYou } score } me { rank score } } }`;

await step('subscription', async () => {
  const updates = [];
  let completed = false;
  let errored = null;
  let wake;
  const sub = rep.client.subscribe({ query: BOARD, variables: { contestId } }).subscribe({
    next: (r) => { updates.push(r); wake?.(); },
    error: (e) => { errored = e; wake?.(); },
    complete: () => { completed = true; wake?.(); },
  });
  const waitFor = (pred, ms, what) => withTimeout((async () => {
    while (!pred()) await new Promise((r) => { wake = r; });
  })(), ms, what);
  await waitFor(() => updates.length >= 1 || errored, 10000, 'first snapshot');
  const first = updates[0]?.data?.leaderboardChanged;
  check('GraphQLWsLink: first push is a snapshot of the board', Boolean(first) && first.contestId === contestId && !first.final,
    JSON.stringify(updates[0] ?? String(errored)));
  await claimAndApprove('123.00');
  await waitFor(() => updates.some((u) => u.data?.leaderboardChanged?.version > first.version) || errored, 15000, 'a push after the approval');
  const later = updates.at(-1).data.leaderboardChanged;
  check('a push with a higher version after an approved claim', later.version > first.version && later.me?.rank >= 1,
    `${first.version} -> ${later.version}`);
  sub.unsubscribe();
  check('unsubscribe: no complete or error delivered after unsubscribing', !completed && !errored);
});

await step('subscription errors', async () => {
  const result = await withTimeout(new Promise((resolve) => {
    rep.client.subscribe({ query: BOARD, variables: { contestId: 'Q29udGVzdDowMDAwMDAwMC0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMDA=' } })
      .subscribe({ next: (r) => resolve({ next: r }), error: (e) => resolve({ error: e }), complete: () => resolve({ complete: true }) });
  }), 10000, 'an unknown contest');
  const errors = result.next?.error?.errors ?? result.error?.errors ?? [];
  check('unknown contest: a GraphQL error with code NOT_FOUND', errors.some((e) => e.extensions?.code === 'NOT_FOUND'),
    JSON.stringify(result, null, 0));
});

await step('subscription over HttpLink', async () => {
  // A client whose split sends everything over HTTP: the server does not stream over HTTP,
  // so a subscription must be refused as a request error, not executed.
  const httpOnly = new ApolloClient({ link: new HttpLink({ uri: URL_HTTP, headers: { authorization: `Bearer ${REP}` } }), cache: new InMemoryCache() });
  const result = await withTimeout(new Promise((resolve) => {
    httpOnly.subscribe({ query: BOARD, variables: { contestId } })
      .subscribe({ next: (r) => resolve({ next: r }), error: (e) => resolve({ error: e }), complete: () => resolve({ complete: true }) });
  }), 10000, 'subscription over HTTP');
  const e = result.error ?? result.next?.error;
  const text = String(e);
  check('subscription over HTTP: refused with a clear error, not INTERNAL_SERVER_ERROR',
    Boolean(e) && !text.includes('INTERNAL') && !text.includes('Internal error'), `${text} ${JSON.stringify(e?.errors ?? e?.bodyText ?? '')}`);
});

await step('batching', async () => {
  const fetchImpl = recordingFetch({ body: true });
  const batch = new ApolloClient({ cache: new InMemoryCache(),
    link: new BatchHttpLink({ uri: URL_HTTP, fetch: fetchImpl, headers: { authorization: `Bearer ${REP}` }, batchMax: 5, batchInterval: 5 }) });
  const both = await Promise.allSettled([
    batch.query({ query: gql`query A { me { role } }` }),
    batch.query({ query: gql`query B { contests(first: 1) { totalCount } }` }),
  ]);
  // Batches are refused on purpose (docs/security.md): one 400 with a coded error, which
  // BatchHttpLink reports as a result count mismatch for each operation of the batch.
  const seen = fetchImpl.seen.at(-1);
  const body = await seen.body;
  check('BatchHttpLink: both operations rejected, none answered', both.every((r) => r.status === 'rejected'),
    both.map((r) => r.status).join());
  check('BatchHttpLink: the batch is one 400 with code BAD_REQUEST "Batching is not enabled"',
    seen.status === 400 && body?.errors?.[0]?.extensions?.code === 'BAD_REQUEST' && /Batching/.test(body.errors[0].message),
    JSON.stringify(seen));
});

await step('GET queries', async () => {
  const fetchImpl = recordingFetch();
  const get = new ApolloClient({ cache: new InMemoryCache(),
    link: new HttpLink({ uri: URL_HTTP, fetch: fetchImpl, useGETForQueries: true, headers: { authorization: `Bearer ${REP}` } }) });
  const { data } = await get.query({ query: gql`query MeGet { me { role } }` });
  const last = fetchImpl.seen.at(-1);
  check('useGETForQueries: GET with extensions in the URL answered', last.method === 'GET' && data?.me?.role === 'PARTNER_REP', JSON.stringify(last));
});

await step('persisted queries', async () => {
  // Apollo's automatic persisted queries: the hash alone first; the server answers
  // PersistedQueryNotFound, the link sends the document with its hash, later requests
  // (here as GETs a CDN could cache) carry the hash alone.
  const sha256 = (text) => createHash('sha256').update(text).digest('hex');
  const fetchImpl = recordingFetch({ body: true });
  const apq = new ApolloClient({ cache: new InMemoryCache(),
    link: new PersistedQueryLink({ sha256, useGETForHashedQueries: true }).concat(
      new HttpLink({ uri: URL_HTTP, fetch: fetchImpl, headers: { authorization: `Bearer ${REP}` } })) });
  // (named for this run: a server keeps what it ran, and a second run would find it known)
  const query = gql(`query MePersisted${RUN} { me { role partner { name } } }`);
  const first = await apq.query({ query, fetchPolicy: 'network-only' });
  check('PersistedQueryLink: the first query answered', first.data?.me?.role === 'PARTNER_REP', JSON.stringify(first));
  const [miss, sent] = fetchImpl.seen.slice(-2);
  check('first: the hash alone by GET, answered PERSISTED_QUERY_NOT_FOUND',
    miss?.method === 'GET' && !new URL(miss.uri).searchParams.has('query')
      && (await miss.body)?.errors?.[0]?.extensions?.code === 'PERSISTED_QUERY_NOT_FOUND', JSON.stringify(miss));
  check('then the document with its hash by POST, answered', sent?.method === 'POST' && sent.status === 200
    && JSON.parse(sent.sentBody).extensions?.persistedQuery?.sha256Hash, JSON.stringify(sent));
  const second = await apq.query({ query, fetchPolicy: 'network-only' });
  const hit = fetchImpl.seen.at(-1);
  check('second: the hash alone by GET, answered with data', fetchImpl.seen.length === 3 && hit.method === 'GET'
    && !new URL(hit.uri).searchParams.has('query') && second.data?.me?.role === 'PARTNER_REP', JSON.stringify(hit));
});

await step('persisted queries and subscriptions', async () => {
  // The usual app: the persisted link first, then the split, so subscriptions go through it
  // too. GraphQLWsLink sends the document and its hash (the link's includeQuery: false is an
  // HttpLink option): the server checks the hash and runs the subscription.
  const sha256 = (text) => createHash('sha256').update(text).digest('hex');
  const sent = [];
  class RecordingWebSocket extends WebSocket {
    send(data, ...rest) { sent.push(JSON.parse(String(data))); return super.send(data, ...rest); }
  }
  const wsClient = (generateHash) => {
    const ws = createClient({ url: URL_WS, webSocketImpl: RecordingWebSocket, retryAttempts: 0,
      connectionParams: () => ({ Authorization: `Bearer ${REP}` }) });
    const http = new HttpLink({ uri: URL_HTTP, headers: { authorization: `Bearer ${REP}` } });
    const link = ApolloLink.from([
      new PersistedQueryLink(generateHash ? { generateHash } : { sha256 }),
      ApolloLink.split(({ query }) => {
        const def = getMainDefinition(query);
        return def.kind === 'OperationDefinition' && def.operation === 'subscription';
      }, new GraphQLWsLink(ws), http),
    ]);
    return { ws, client: new ApolloClient({ link, cache: new InMemoryCache() }) };
  };
  const { ws, client } = wsClient();
  const query = gql(`subscription BoardPersisted${RUN}($contestId: ID!) { leaderboardChanged(contestId: $contestId, first: 5) {
    contestId version final rows { rank score } me { rank score } } }`);
  const updates = [];
  let errored = null;
  let wake;
  const sub = client.subscribe({ query, variables: { contestId } }).subscribe({
    next: (r) => { updates.push(r); wake?.(); }, error: (e) => { errored = e; wake?.(); },
  });
  const waitFor = (pred, ms, what) => withTimeout((async () => {
    while (!pred()) await new Promise((r) => { wake = r; });
  })(), ms, what);
  try {
    await waitFor(() => updates.length >= 1 || errored, 10000, 'first snapshot');
    const first = updates[0]?.data?.leaderboardChanged;
    check('PersistedQueryLink before GraphQLWsLink: the subscription\'s snapshot', Boolean(first) && first.contestId === contestId,
      JSON.stringify(updates[0] ?? String(errored)));
    const subscribe = sent.find((m) => m.type === 'subscribe');
    check('what GraphQLWsLink sent: the document and extensions.persistedQuery with its SHA-256',
      typeof subscribe?.payload?.query === 'string' && subscribe.payload.query.includes('leaderboardChanged')
        && subscribe.payload.extensions?.persistedQuery?.sha256Hash === sha256(subscribe.payload.query),
      JSON.stringify(subscribe));
    if (!first) return;
    await claimAndApprove('77.00');
    await waitFor(() => updates.some((u) => u.data?.leaderboardChanged?.version > first.version) || errored, 15000,
      'a push after the approval');
    const later = updates.at(-1).data?.leaderboardChanged;
    check('through the persisted link: a push with a higher version after an approved claim',
      !errored && later?.version > first.version, `${first.version} -> ${later?.version} ${String(errored ?? '')}`);
  } finally {
    sub.unsubscribe();
    await ws.dispose();
  }
  // A hash that is not the document's: refused as the operation starts, with the HTTP code.
  const wrong = wsClient(() => '0'.repeat(64));
  const result = await withTimeout(new Promise((resolve) => {
    wrong.client.subscribe({ query, variables: { contestId } })
      .subscribe({ next: (r) => resolve({ next: r }), error: (e) => resolve({ error: e }), complete: () => resolve({ complete: true }) });
  }), 10000, 'a wrong hash');
  await wrong.ws.dispose();
  const errors = result.error?.errors ?? result.next?.error?.errors ?? [];
  check('a wrong hash over GraphQLWsLink: CombinedGraphQLErrors with code PERSISTED_QUERY_HASH_MISMATCH, no data',
    errors[0]?.extensions?.code === 'PERSISTED_QUERY_HASH_MISMATCH' && !result.next?.data, JSON.stringify(result));
});

await sleep(100);
await Promise.all([rep.ws.dispose(), admin.ws.dispose(), anon.ws.dispose()]);
finish('apollo');
