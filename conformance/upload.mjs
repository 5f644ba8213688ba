// apollo-upload-client (UploadHttpLink, extract-files) against a running channelboard: claim
// proof per the GraphQL multipart request spec, as the README says (`proof` on
// saleClaimCreate, `file` on saleClaimAttachProof), several files in one request (two
// variables; a list, `files: [Upload!]!` as in the spec's own example, retried under its
// idempotency key, and `proofs`), one file mapped to two variables, the upload limits, a
// malformed map and a body cut off mid-upload.
import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { ApolloClient, CombinedGraphQLErrors, InMemoryCache, ServerError, gql } from '@apollo/client';
import UploadHttpLink from 'apollo-upload-client/UploadHttpLink.mjs';
import { URL_HTTP, acmeSerial, check, finish, pdfBytes, sleep, step, tokens } from './common.mjs';

const T = await tokens('rep@acme.example');
const REP = T['rep@acme.example'];
const sha = (bytes) => createHash('sha256').update(bytes).digest('hex');

const sent = [];
const client = new ApolloClient({
  cache: new InMemoryCache(),
  // Answers as the server sent them: the cache keys a field by its arguments, and a File
  // serialises as {}, so two uploads to one mutation field would share an entry.
  defaultOptions: { mutate: { fetchPolicy: 'no-cache' }, query: { fetchPolicy: 'no-cache' } },
  link: new UploadHttpLink({
    uri: URL_HTTP,
    headers: { authorization: `Bearer ${REP}` },
    fetch: async (uri, options) => {
      const response = await fetch(uri, options);
      sent.push({ multipart: options.body instanceof FormData, status: response.status,
        type: response.headers.get('content-type'), body: options.body });
      return response;
    },
  }),
});

const CLAIM = gql`mutation Claim($input: SaleClaimCreateInput!) { saleClaimCreate(input: $input) {
  saleClaim { id state attachments { id filename size sha256 downloadUrl } } userErrors { field code message } } }`;
const ATTACH_TWO = gql`mutation AttachTwo($id: ID!, $a: Upload!, $b: Upload!) {
  a: saleClaimAttachProof(input: {id: $id, file: $a}) { saleClaim { id } userErrors { code message } }
  b: saleClaimAttachProof(input: {id: $id, file: $b}) { saleClaim { attachments { filename size sha256 } } userErrors { code message } } }`;

async function createClaim(proof) {
  for (let attempt = 0; attempt < 8; attempt += 1) {
    const serial = acmeSerial(attempt * 11 + Math.floor(Math.random() * 1000));
    const { data } = await client.mutate({ mutation: CLAIM, variables: { input: {
      serials: [serial], customerName: 'Initech', invoiceNumber: `UPLOAD-${serial}-${Date.now()}`,
      saleDate: new Date().toISOString().slice(0, 10), amount: { amount: '99.00', currency: 'USD' }, proof } } });
    const out = data.saleClaimCreate;
    // (a serial another script claimed earlier in the run: the claim is made, and rejected)
    if (out.saleClaim?.state === 'REJECTED') continue;
    if (out.saleClaim) return out.saleClaim;
    if (!out.userErrors.some((e) => e.code === 'ALREADY_CLAIMED' || e.code === 'NO_VALID_SERIALS')) throw new Error(JSON.stringify(out.userErrors));
  }
  throw new Error('no free demo serial found');
}

async function download(url) {
  const response = await fetch(new URL(url, URL_HTTP), { headers: { authorization: `Bearer ${REP}` } });
  return { status: response.status, bytes: Buffer.from(await response.arrayBuffer()) };
}

let claimId;
await step('proof on saleClaimCreate', async () => {
  const bytes = pdfBytes('create');
  const claim = await createClaim(new File([bytes], 'invoice.pdf', { type: 'application/pdf' }));
  claimId = claim.id;
  check('UploadHttpLink sent a multipart request', sent.at(-1).multipart && sent.at(-1).status === 200, JSON.stringify(sent.at(-1)));
  const [att] = claim.attachments;
  check('the claim holds the proof (name, size, SHA-256 of the bytes sent)',
    claim.attachments.length === 1 && att.filename === 'invoice.pdf' && att.size === bytes.length && att.sha256 === sha(bytes),
    JSON.stringify(claim.attachments));
  const got = await download(att.downloadUrl);
  check('GET the downloadUrl with the token: the same bytes', got.status === 200 && got.bytes.equals(bytes), `${got.status}`);
});

await step('two files in one request', async () => {
  const a = pdfBytes('a');
  const b = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from('conformance png')]);
  const { data } = await client.mutate({ mutation: ATTACH_TWO, variables: { id: claimId,
    a: new File([a], 'a.pdf', { type: 'application/pdf' }), b: new File([b], 'b.png', { type: 'image/png' }) } });
  const map = JSON.parse(sent.at(-1).body.get('map'));
  check('map: two form fields, one path each', JSON.stringify(map) === JSON.stringify({ 1: ['variables.a'], 2: ['variables.b'] }), JSON.stringify(map));
  const atts = data.b.saleClaim?.attachments ?? [];
  check('both stored, each with its own bytes', !data.a.userErrors.length && !data.b.userErrors.length
    && atts.some((x) => x.filename === 'a.pdf' && x.sha256 === sha(a)) && atts.some((x) => x.filename === 'b.png' && x.sha256 === sha(b)),
    JSON.stringify(data));
});

const ATTACH_LIST = gql`mutation AttachList($id: ID!, $files: [Upload!]!, $key: String) {
  saleClaimAttachProof(input: {id: $id, files: $files, idempotencyKey: $key}) {
    saleClaim { state attachments { filename size sha256 downloadUrl } } userErrors { field code message } } }`;

await step('a list of files in one request (files: [Upload!]!)', async () => {
  const claim = await createClaim(null);
  const a = pdfBytes('list-a');
  const b = pdfBytes('list-b');
  const key = `conformance-list-${claim.id}`;
  const list = () => [new File([a], 'invoice.pdf', { type: 'application/pdf' }), new File([b], 'delivery-note.pdf', { type: 'application/pdf' })];
  const { data } = await client.mutate({ mutation: ATTACH_LIST, variables: { id: claim.id, files: list(), key } });
  const map = JSON.parse(sent.at(-1).body.get('map'));
  check('map: the spec\'s list paths variables.files.0 and variables.files.1',
    JSON.stringify(map) === JSON.stringify({ 1: ['variables.files.0'], 2: ['variables.files.1'] }), JSON.stringify(map));
  const out = data.saleClaimAttachProof;
  const atts = out.saleClaim?.attachments ?? [];
  check('both stored in one request, in order, each with its own bytes', !out.userErrors.length && atts.length === 2
    && atts[0].filename === 'invoice.pdf' && atts[0].sha256 === sha(a) && atts[1].filename === 'delivery-note.pdf' && atts[1].sha256 === sha(b),
    JSON.stringify(out));
  const got = await Promise.all(atts.map((x) => download(x.downloadUrl)));
  check('both downloadUrls give back the bytes sent', got.length === 2 && got[0].bytes.equals(a) && got[1].bytes.equals(b),
    got.map((g) => g.status).join(','));

  // A retry under the idempotency key (the answer was lost): the first upload's answer, nothing stored again.
  const retried = (await client.mutate({ mutation: ATTACH_LIST, variables: { id: claim.id, files: list(), key } })).data.saleClaimAttachProof;
  check('the same list retried under its idempotencyKey: the same attachments, none added',
    !retried.userErrors.length && JSON.stringify(retried.saleClaim?.attachments) === JSON.stringify(atts), JSON.stringify(retried));

  const bad = await client.mutate({ mutation: ATTACH_LIST, variables: { id: claim.id, files: [
    new File([pdfBytes('list-c')], 'c.pdf', { type: 'application/pdf' }), new File(['just text'], 'd.pdf', { type: 'application/pdf' })] } });
  const refused = bad.data.saleClaimAttachProof;
  const after = await client.query({ query: gql`query AfterList($id: ID!) { node(id: $id) { ... on SaleClaim { attachments { filename } } } }`,
    variables: { id: claim.id } });
  check('one bad file in the list: userErrors files.1 UNSUPPORTED_FILE_TYPE, and neither stored',
    refused.saleClaim === null && refused.userErrors.length === 1 && refused.userErrors[0].field === 'files.1'
    && refused.userErrors[0].code === 'UNSUPPORTED_FILE_TYPE' && after.data.node.attachments.length === 2,
    JSON.stringify({ refused, after: after.data }));
});

await step('proofs on saleClaimCreate', async () => {
  const a = pdfBytes('proofs-a');
  const b = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from('proofs png')]);
  let claim = null;
  for (let attempt = 0; attempt < 8 && !claim; attempt += 1) {
    const serial = acmeSerial(attempt * 13 + Math.floor(Math.random() * 1000));
    const { data } = await client.mutate({ mutation: CLAIM, variables: { input: {
      serials: [serial], customerName: 'Initech', invoiceNumber: `UPLOADS-${serial}-${Date.now()}`,
      saleDate: new Date().toISOString().slice(0, 10), amount: { amount: '99.00', currency: 'USD' },
      proofs: [new File([a], 'a.pdf', { type: 'application/pdf' }), new File([b], 'b.png', { type: 'image/png' })] } } });
    if (data.saleClaimCreate.saleClaim?.state !== 'REJECTED') claim = data.saleClaimCreate.saleClaim;
  }
  const map = JSON.parse(sent.at(-1).body.get('map'));
  check('map: variables.input.proofs.0 and .1', JSON.stringify(map) === JSON.stringify({ 1: ['variables.input.proofs.0'], 2: ['variables.input.proofs.1'] }),
    JSON.stringify(map));
  const atts = claim?.attachments ?? [];
  check('the new claim holds both proofs', atts.length === 2 && atts[0].sha256 === sha(a) && atts[1].sha256 === sha(b),
    JSON.stringify(claim));
});

await step('one file for two variables', async () => {
  const claim = await createClaim(null);
  const bytes = pdfBytes('shared');
  const file = new File([bytes], 'shared.pdf', { type: 'application/pdf' });
  const { data } = await client.mutate({ mutation: ATTACH_TWO, variables: { id: claim.id, a: file, b: file } });
  const map = JSON.parse(sent.at(-1).body.get('map'));
  check('extract-files maps the one file to both paths', JSON.stringify(map) === JSON.stringify({ 1: ['variables.a', 'variables.b'] }), JSON.stringify(map));
  const atts = data.b.saleClaim?.attachments ?? [];
  check('both fields got the whole file (two attachments, same size and SHA-256)',
    !data.a.userErrors.length && !data.b.userErrors.length && atts.length === 2
    && atts.every((x) => x.size === bytes.length && x.sha256 === sha(bytes)), JSON.stringify(data));
});

await step('file type and size limits', async () => {
  const { data } = await client.mutate({ mutation: gql`mutation One($id: ID!, $f: Upload!) {
    saleClaimAttachProof(input: {id: $id, file: $f}) { saleClaim { id } userErrors { field code message } } }`,
    variables: { id: claimId, f: new File(['just text'], 'notes.txt', { type: 'text/plain' }) } });
  check('a text file: userErrors UNSUPPORTED_FILE_TYPE', data.saleClaimAttachProof.userErrors[0]?.code === 'UNSUPPORTED_FILE_TYPE',
    JSON.stringify(data));

  const big = Buffer.alloc(10 * 1024 * 1024 + 10, 0x20); big.write('%PDF-1.4\n');
  const r = await client.mutate({ errorPolicy: 'all', mutation: gql`mutation One2($id: ID!, $f: Upload!) {
    saleClaimAttachProof(input: {id: $id, file: $f}) { saleClaim { id } userErrors { field code message } } }`,
    variables: { id: claimId, f: new File([big], 'big.pdf', { type: 'application/pdf' }) } });
  check('a file just over 10 MiB: userErrors FILE_TOO_LARGE', r.data?.saleClaimAttachProof?.userErrors?.[0]?.code === 'FILE_TOO_LARGE',
    JSON.stringify(r.data ?? String(r.error)));

  const huge = Buffer.alloc(12 * 1024 * 1024, 0x20); huge.write('%PDF-1.4\n');
  try {
    await client.mutate({ mutation: gql`mutation One3($id: ID!, $f: Upload!) {
      saleClaimAttachProof(input: {id: $id, file: $f}) { saleClaim { id } userErrors { code } } }`,
      variables: { id: claimId, f: new File([huge], 'huge.pdf', { type: 'application/pdf' }) } });
    check('a 12 MiB body: refused', false, 'answered');
  } catch (e) {
    const body = ServerError.is(e) ? JSON.parse(e.bodyText) : null;
    check('a 12 MiB body: ServerError 413 with code PAYLOAD_TOO_LARGE', ServerError.is(e) && e.statusCode === 413
      && body?.errors?.[0]?.extensions?.code === 'PAYLOAD_TOO_LARGE', `${e} ${e.bodyText ?? ''}`);
  }
});

async function rawMultipart(fields, headers = {}) {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  const response = await fetch(URL_HTTP, { method: 'POST', body: form, headers: { authorization: `Bearer ${REP}`, ...headers } });
  return { status: response.status, type: response.headers.get('content-type'), body: await response.json().catch(() => null) };
}

await step('malformed multipart requests', async () => {
  const ops = JSON.stringify({ query: 'mutation($f: Upload!) { saleClaimAttachProof(input: {id: "x", file: $f}) { userErrors { code } } }', variables: { f: null } });
  const cases = [
    ['a map path into nothing', { operations: ops, map: JSON.stringify({ 1: ['variables.nope.deeper'] }), 1: new Blob(['%PDF']) }],
    ['a map naming a missing file field', { operations: ops, map: JSON.stringify({ 9: ['variables.f'] }), 1: new Blob(['%PDF']) }],
    ['operations that are not JSON', { operations: '{', map: '{}' }],
    ['no operations field', { map: '{}' }],
  ];
  for (const [what, fields] of cases) {
    const r = await rawMultipart(fields);
    check(`${what}: 400 BAD_REQUEST in JSON`, r.status === 400 && r.body?.errors?.[0]?.extensions?.code === 'BAD_REQUEST', JSON.stringify(r));
  }
});

await step('upload aborted mid-body', async () => {
  const boundary = 'cbconformance';
  const ops = JSON.stringify({ query: 'mutation($id: ID!, $f: Upload!) { saleClaimAttachProof(input: {id: $id, file: $f}) { userErrors { code } } }', variables: { id: claimId, f: null } });
  const head = `--${boundary}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n${ops}\r\n--${boundary}\r\nContent-Disposition: form-data; name="map"\r\n\r\n{"1":["variables.f"]}\r\n--${boundary}\r\nContent-Disposition: form-data; name="1"; filename="cut.pdf"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4\n`;
  const url = new URL(URL_HTTP);
  const outcome = await new Promise((resolve) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: {
      authorization: `Bearer ${REP}`, 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': 2 * 1024 * 1024 } });
    req.on('response', (res) => resolve(`answered ${res.statusCode}`));
    req.on('error', () => resolve('cut'));
    req.write(head);
    req.write(Buffer.alloc(256 * 1024, 0x20));
    setTimeout(() => { req.destroy(); resolve('cut'); }, 300);
  });
  await sleep(500);
  const after = await client.query({ query: gql`query After($id: ID!) { node(id: $id) { ... on SaleClaim { attachments { filename } } } }`, variables: { id: claimId }, fetchPolicy: 'network-only' });
  check('after a body cut off mid-file the server answers, and stored nothing from it',
    outcome === 'cut' && !after.data.node.attachments.some((a) => a.filename === 'cut.pdf'), `${outcome} ${JSON.stringify(after.data)}`);
});

finish('upload');
