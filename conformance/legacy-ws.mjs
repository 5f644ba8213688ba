// subscriptions-transport-ws (Apollo's SubscriptionClient, the client of the legacy
// `graphql-ws` protocol) against a running channelboard, with `ws` as its websocket: the
// token in connectionParams, a bad or missing one as the client reports it
// (connectionCallback), queries and mutations over the socket (a refused one coded), the
// live leaderboard pushed by a claim made and approved over the sockets, unsubscribe (`stop`)
// ending the server's operation, and the keep-alives the client's `timeout` waits for.
// The server's keep-alive period: CHANNELBOARD_WS_LEGACY_KEEP_ALIVE_SECONDS, as it was started
// with (conformance/run: 2 s; the server's default 15 s otherwise).
import { SubscriptionClient } from 'subscriptions-transport-ws';
import WebSocket from 'ws';
import { URL_WS, acmeSerial, check, finish, sleep, step, tokens, withTimeout } from './common.mjs';

const T = await tokens('rep@acme.example', 'admin@northwind.example');
const REP = T['rep@acme.example'];
const ADMIN = T['admin@northwind.example'];
const PERIOD = 1000 * Number(process.env.CHANNELBOARD_WS_LEGACY_KEEP_ALIVE_SECONDS || 15);

/** `ws`, remembering the frames each way and how the socket closed. */
class Recorded extends WebSocket {
  constructor(...args) {
    super(...args);
    this.received = [];
    this.sent = [];
    this.closed = null;
    this.on('message', (data) => this.received.push(JSON.parse(String(data))));
    this.on('close', (code, reason) => { this.closed = { code, reason: String(reason) }; });
  }

  send(data, ...rest) {
    this.sent.push(JSON.parse(String(data)));
    return super.send(data, ...rest);
  }
}

/** A SubscriptionClient (no reconnecting) and what it reported: `ready` resolves with the
 * connectionCallback's argument (undefined on connection_ack, the payload of a
 * connection_error). minTimeout 10 s: the client gives up on a socket not open within
 * min(minTimeout, timeout) (1 s by default, short on a busy machine). */
const conns = [];
function connect(connectionParams, options = {}) {
  const conn = { socket: null, disconnected: 0 };
  conns.push(conn);
  conn.ready = withTimeout(new Promise((resolve) => {
    conn.client = new SubscriptionClient(URL_WS, {
      connectionParams, reconnect: false, minTimeout: 10000, ...options,
      connectionCallback: (error) => resolve(error),
    }, class extends Recorded {
      constructor(...args) { super(...args); conn.socket = this; }
    });
  }), 10000, `connection_ack or connection_error for ${JSON.stringify(connectionParams)}`);
  conn.client.onDisconnected(() => { conn.disconnected += 1; });
  return conn;
}

/** One operation to its end: what its observer saw. */
function run(conn, request, ms = 10000) {
  const seen = { next: [], error: null, complete: false };
  return withTimeout(new Promise((resolve) => {
    conn.client.request(request).subscribe({
      next: (v) => seen.next.push(v),
      error: (e) => { seen.error = e; resolve(seen); },
      complete: () => { seen.complete = true; resolve(seen); },
    });
  }), ms, request.query.replace(/\s+/g, ' ').slice(0, 60));
}

async function until(pred, ms, what) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms: ${what}`);
    await sleep(20);
  }
}

const ME = '{ me { role partner { name } } }';
const answeredMe = (r) => r.complete && !r.error && r.next.length === 1 && r.next[0].data?.me?.role === 'PARTNER_REP'
  && r.next[0].data.me.partner?.name === 'Acme Resellers';

// Keep-alives, beside the other checks (idle most of the time): the client closes the socket
// when no `ka` arrives within `timeout` of the last (counted from the first, which the server
// sends right after connection_ack).
const keepAlive = step('keep-alives', async () => {
  const timeout = PERIOD + 1000;
  const idle = 2 * PERIOD + 1000;
  const conn = connect({ authToken: REP }, { timeout });
  await conn.ready;
  await sleep(idle);
  const kas = conn.socket.received.filter((m) => m.type === 'ka').length;
  check(`timeout ${timeout / 1000} s (keep-alives every ${PERIOD / 1000} s): still open after ${idle / 1000} s idle, ${kas} ka received`,
    conn.disconnected === 0 && conn.client.status === WebSocket.OPEN && kas >= 2, JSON.stringify({ kas, disconnected: conn.disconnected, closed: conn.socket.closed }));
  check('and a query answered after', answeredMe(await run(conn, { query: ME })));
  conn.client.close();
  // The control: a timeout shorter than the period, and the client does close the socket.
  const short = connect({ authToken: REP }, { timeout: PERIOD / 2 });
  await short.ready;
  await until(() => short.disconnected > 0, 2 * PERIOD, 'the client closing for want of a ka');
  check(`timeout ${PERIOD / 2000} s (below the period): the client closes the socket after the first ka`,
    short.disconnected === 1 && short.socket.received.filter((m) => m.type === 'ka').length === 1);
});

await step('connectionParams', async () => {
  for (const [what, params] of [['authToken', { authToken: REP }], ['Authorization', { Authorization: `Bearer ${REP}` }]]) {
    const conn = connect(params);
    const error = await conn.ready;
    check(`the token as connectionParams.${what}: connection_ack (connectionCallback with no error), graphql-ws negotiated`,
      error === undefined && conn.socket.protocol === 'graphql-ws', JSON.stringify({ error, protocol: conn.socket.protocol }));
    const r = await run(conn, { query: ME });
    check(`the token as connectionParams.${what}: a query answered (PARTNER_REP of Acme Resellers), then complete`, answeredMe(r), JSON.stringify(r));
    conn.client.close();
  }
});

for (const [what, params, reason] of [['a bad token', { authToken: 'nope' }, 'INVALID_TOKEN'], ['no token', {}, 'MISSING_CREDENTIALS']]) {
  await step(what, async () => {
    const conn = connect(params);
    const seen = [];
    conn.client.request({ query: ME }).subscribe({ next: (v) => seen.push(v), error: (e) => seen.push(e), complete: () => seen.push('complete') });
    const error = await conn.ready;
    await until(() => conn.socket.closed && conn.disconnected > 0, 5000, 'the socket closed');
    check(`${what}: connectionCallback with connection_error's payload (UNAUTHENTICATED, ${reason}), the socket closed 4403, the query unanswered`,
      error?.code === 'UNAUTHENTICATED' && error?.reason === reason && conn.socket.closed.code === 4403 && seen.length === 0,
      JSON.stringify({ error, closed: conn.socket.closed, seen }));
  });
}

const rep = connect({ authToken: REP });
const admin = connect({ authToken: ADMIN });
await Promise.all([rep.ready, admin.ready]);

let contestId;
await step('queries and mutations', async () => {
  const contests = await run(rep, { query: '{ contests(first: 10) { edges { node { id metric status } } } }' });
  contestId = contests.next[0]?.data?.contests?.edges.find((e) => e.node.metric === 'REVENUE' && e.node.status === 'LIVE')?.node.id;
  check('a query: one result (a live REVENUE contest), then complete', Boolean(contestId) && contests.complete && contests.next.length === 1,
    JSON.stringify(contests));
  const bad = await run(rep, {
    query: 'mutation Bad($input: SaleClaimCreateInput!) { saleClaimCreate(input: $input) { saleClaim { id } userErrors { field code } } }',
    variables: { input: { serials: ['!!'], customerName: 'Initech', invoiceNumber: 'X', saleDate: '2026-12-01', amount: { amount: '10.00', currency: 'USD' } } },
  });
  const ue = bad.next[0]?.data?.saleClaimCreate;
  check('a mutation: its payload (saleClaim null, MALFORMED_SERIAL), then complete',
    bad.complete && ue?.saleClaim === null && ue.userErrors.some((u) => u.code === 'MALFORMED_SERIAL'), JSON.stringify(bad));
  const refused = await run(rep, { query: 'mutation { salesSettingsUpdate(input: {proofRequired: false}) { userErrors { code } } }' });
  check('a mutation the rep may not run: a result with no data and FORBIDDEN, then complete',
    refused.complete && !refused.error && refused.next.length === 1 && refused.next[0].data == null
      && refused.next[0].errors?.[0]?.extensions?.code === 'FORBIDDEN', JSON.stringify(refused));
  const wrongType = await run(rep, { query: 'mutation Approve($id: ID!) { saleClaimApprove(input: {id: $id}) { userErrors { code } } }',
    variables: { id: ['not', 'an', 'id'] } });
  check('a mutation whose variables are refused: a result with no data and GRAPHQL_VALIDATION_FAILED, then complete',
    wrongType.complete && !wrongType.error && wrongType.next.length === 1 && wrongType.next[0].data == null
      && wrongType.next[0].errors?.[0]?.extensions?.code === 'GRAPHQL_VALIDATION_FAILED', JSON.stringify(wrongType));
  const invalid = await run(rep, { query: '{ me { noSuchField } }' });
  check('an invalid document: the observer\'s error, one error coded GRAPHQL_VALIDATION_FAILED, no complete',
    !invalid.complete && invalid.next.length === 0 && invalid.error?.extensions?.code === 'GRAPHQL_VALIDATION_FAILED', JSON.stringify(invalid));
});

// A claim the rep makes and the admin approves, over their sockets, moves Acme on the REVENUE board.
async function claimAndApprove(amount) {
  for (let attempt = 0; attempt < 8; attempt += 1) {
    const serial = acmeSerial(attempt * 11 + Math.floor(Math.random() * 1000));
    const created = await run(rep, {
      query: `mutation Claim($input: SaleClaimCreateInput!) { saleClaimCreate(input: $input) {
        saleClaim { id state serials { outcome } } userErrors { code message } } }`,
      variables: { input: { serials: [serial], customerName: 'Initech', invoiceNumber: `LEGACY-${serial}-${Date.now()}`,
        saleDate: new Date().toISOString().slice(0, 10), amount: { amount, currency: 'USD' } } },
    });
    const claim = created.next[0]?.data?.saleClaimCreate?.saleClaim;
    if (!claim || claim.serials[0].outcome !== 'VALID') continue;
    if (!['AUTO_APPROVED', 'APPROVED'].includes(claim.state)) {
      const approved = await run(admin, {
        query: 'mutation Approve($id: ID!) { saleClaimApprove(input: {id: $id, note: "legacy"}) { saleClaim { state } userErrors { code message } } }',
        variables: { id: claim.id } });
      if (approved.next[0]?.data?.saleClaimApprove?.userErrors?.length !== 0) throw new Error(JSON.stringify(approved));
    }
    return claim.id;
  }
  throw new Error('no free demo serial found');
}

const BOARD = `subscription Board($contestId: ID!) { leaderboardChanged(contestId: $contestId, first: 5) {
  contestId version final rows { rank participant { name isYou } score } me { rank score } } }`;

/** A leaderboardChanged subscription on the rep's socket: its results, and its operation id. */
function watch() {
  const w = { updates: [], error: null, completed: false };
  w.sub = rep.client.request({ query: BOARD, variables: { contestId } }).subscribe({
    next: (r) => w.updates.push(r), error: (e) => { w.error = e; }, complete: () => { w.completed = true; },
  });
  w.id = String(rep.client.nextOperationId);  // (its `start` goes once the client's middlewares ran)
  return w;
}
const version = (r) => r?.data?.leaderboardChanged?.version ?? -1;

await step('subscription', async () => {
  const w = watch();
  await until(() => w.updates.length >= 1 || w.error, 10000, 'the first snapshot');
  const first = w.updates[0]?.data?.leaderboardChanged;
  check('leaderboardChanged: first a snapshot of the board', Boolean(contestId) && first?.contestId === contestId && first.final === false,
    JSON.stringify(w.updates[0] ?? w.error));
  await claimAndApprove('123.00');
  await until(() => w.updates.some((u) => version(u) > first.version) || w.error, 15000, 'a push after the approval');
  const later = w.updates.at(-1).data.leaderboardChanged;
  check('a push with a higher version after an approved claim', later.version > first.version && later.me?.rank >= 1,
    `${first.version} -> ${later.version}`);

  // unsubscribe: the client sends `stop`; the server ends the operation (its `complete`, which
  // the client ignores) and pushes it nothing more, while another on the socket goes on.
  w.sub.unsubscribe();
  await until(() => rep.socket.received.some((m) => m.type === 'complete' && m.id === w.id), 5000, 'complete after stop');
  check('unsubscribe: stop sent, the server\'s complete for it, nothing delivered to the observer after',
    rep.socket.sent.some((m) => m.type === 'stop' && m.id === w.id) && !w.completed && !w.error);
  const ended = rep.socket.received.length;
  const other = watch();
  await until(() => other.updates.length >= 1 || other.error, 10000, 'another snapshot');
  await claimAndApprove('45.00');
  await until(() => other.updates.some((u) => version(u) > version(other.updates[0])) || other.error, 15000, 'a push after the approval');
  check('after another approved claim: pushed to the live subscription, nothing to the stopped one',
    !rep.socket.received.slice(ended).some((m) => m.id === w.id), JSON.stringify(rep.socket.received.slice(ended).map((m) => [m.type, m.id])));

  // Stopped operations free their place: at most 5 at once on one socket (the live one
  // above is one), yet 6 more subscribed and unsubscribed one after another each get their
  // snapshot.
  const each = [];
  for (let i = 0; i < 6; i += 1) {
    const x = watch();
    await until(() => x.updates.length >= 1 || x.error, 10000, `snapshot ${i + 1}`);
    x.sub.unsubscribe();
    await until(() => rep.socket.received.some((m) => m.type === 'complete' && m.id === x.id), 5000, `complete ${i + 1}`);
    each.push(x.error ? (x.error.extensions?.code ?? x.error.message) : x.updates[0]?.data?.leaderboardChanged?.contestId === contestId);
  }
  check('6 subscribed and unsubscribed in turn beside a live one (at most 5 at once): each its snapshot',
    each.every((v) => v === true), JSON.stringify(each));
  other.sub.unsubscribe();
  await until(() => rep.socket.received.some((m) => m.type === 'complete' && m.id === other.id), 5000, 'complete after stop');
});

await step('close', async () => {
  for (const conn of [rep, admin]) conn.client.close();  // connection_terminate, then closed
  await until(() => rep.socket.closed && admin.socket.closed, 5000, 'the sockets closed');
  check('close(): connection_terminate sent, the socket closed',
    rep.socket.sent.at(-1)?.type === 'connection_terminate' && admin.socket.sent.at(-1)?.type === 'connection_terminate',
    JSON.stringify([rep.socket.closed, admin.socket.closed]));
});

await keepAlive;
// Whatever failed, nothing left to keep node running: close() ends a socket still open; a
// client that closed it for want of a `ka` left its check running (every `timeout`), which
// close() no longer stops once the socket is gone.
for (const conn of conns) {
  conn.client.close();
  conn.client.clearCheckConnectionInterval();
}
finish('subscriptions-transport-ws');
