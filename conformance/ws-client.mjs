import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
const token = process.argv[2];
function run(params) {
  return new Promise((resolve) => {
    const client = createClient({ url: (process.env.CHANNELBOARD_URL ?? 'http://127.0.0.1:8000/graphql').replace(/^http/, 'ws'), webSocketImpl: WebSocket,
      connectionParams: params, retryAttempts: 0,
      on: { closed: (e) => resolve({ closed: e.code, reason: e.reason }) } });
    client.subscribe({ query: '{ me { role partner { name } } }' }, {
      next: (v) => console.log('next', JSON.stringify(v)),
      error: (e) => { resolve({ error: e.code ?? String(e) }); },
      complete: () => { resolve('complete'); client.dispose(); },
    });
  });
}
console.log(await run({ Authorization: `Bearer ${token}` }));
console.log(await run({ Authorization: 'Bearer nope' }));
console.log(await run({}));
