// Shared by the client scripts: the server's URL, demo tokens and a tiny check recorder.
import { execFile } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const URL_HTTP = process.env.CHANNELBOARD_URL ?? 'http://127.0.0.1:8000/graphql';
export const URL_WS = URL_HTTP.replace(/^http/, 'ws');
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Development tokens for demo users: `channelboard token EMAIL` (from the checkout, with the
 * server's CHANNELBOARD_* environment), or CHANNELBOARD_TOKEN_<USER>_<DOMAIN> if set. */
export async function tokens(...emails) {
  const run = promisify(execFile);
  const found = await Promise.all(emails.map(async (email) => {
    const preset = process.env[`CHANNELBOARD_TOKEN_${email.replace(/\..*$/, '').replace(/\W/g, '_').toUpperCase()}`];
    if (preset) return preset;
    try {
      const { stdout } = await run(resolve(ROOT, '.venv/bin/python'), ['-m', 'api', 'token', email], { cwd: ROOT });
      return stdout.trim();
    } catch (e) {
      const last = String(e.stderr ?? e).trim().split('\n').at(-1);
      console.error(`channelboard token ${email} failed (run with the server's CHANNELBOARD_* environment): ${last}`);
      process.exit(2);
    }
  }));
  return Object.fromEntries(emails.map((e, i) => [e, found[i]]));
}

let failures = 0;
let passes = 0;
/** Records one check: prints it, counts a failure. */
export function check(name, ok, detail = '') {
  if (ok) passes += 1; else failures += 1;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail && !ok ? `\n     ${detail}` : ''}`);
  return ok;
}

export async function step(name, fn) {
  try { await fn(); } catch (e) { check(name, false, `threw ${e?.stack ?? e}`); }
}

export function finish(label) {
  console.log(`${label}: ${passes} passed, ${failures} failed`);
  process.exitCode = failures ? 1 : 0;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([promise, new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  })]).finally(() => clearTimeout(timer));
}

/** A unique serial of the demo registry shipped to Acme (DEMO-000011 … DEMO-000500), per run. */
export function acmeSerial(offset = 0) {
  const n = 11 + ((Math.floor(Date.now() / 1000) + offset * 37) % 490);
  return `DEMO-${String(n).padStart(6, '0')}`;
}

/** A tiny valid PDF (the server judges the type by the first bytes). */
export function pdfBytes(tag = 'proof') {
  return Buffer.from(`%PDF-1.4\n% channelboard conformance ${tag} ${Date.now()}\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n`);
}
