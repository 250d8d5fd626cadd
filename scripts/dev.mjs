// `npm run dev`: the gateway alone under `wrangler dev` on 127.0.0.1 (port 8787, or PORT), with the
// repository's wrangler.toml and pricing.json. Secrets come from .dev.vars; settings named below may also
// come from the environment (they win). Without MPP_SECRET_KEY a throwaway one is generated per run.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const settings = ['MPP_REALM', 'MPP_SECRET_KEY', 'MPP_PREVIOUS_SECRETS', 'ORIGIN_URL', 'ORIGIN_TIMEOUT_MS', 'RATE_LIMIT_CHALLENGES',
  'RATE_LIMIT_VERIFICATIONS', 'TEMPO_RPC_URL', 'TEMPO_SPONSOR_KEY', 'STRIPE_SECRET_KEY', 'STRIPE_API_BASE']

const values = new Map()
if (existsSync('.dev.vars')) {
  for (const line of readFileSync('.dev.vars', 'utf8').split('\n')) {
    const match = /^\s*([A-Z0-9_]+)\s*=\s*(.*?)\s*$/.exec(line)
    if (match) values.set(match[1], match[2].replace(/^"(.*)"$/, '$1'))
  }
}
for (const name of settings) if (process.env[name]) values.set(name, process.env[name])
if (!values.has('MPP_SECRET_KEY')) values.set('MPP_SECRET_KEY', randomBytes(32).toString('hex'))
if (!values.has('STRIPE_SECRET_KEY')) {
  // pricing.json offers Stripe, so the worker needs a key to start; Stripe refuses this one at payment time.
  console.warn('STRIPE_SECRET_KEY is not set (.dev.vars or environment): Stripe payments will fail until it is.')
  values.set('STRIPE_SECRET_KEY', 'sk_test_unset')
}

// Passed as an env file (not --var) so secrets stay off the command line; removed on exit.
const dir = mkdtempSync(join(tmpdir(), 'mpp-dev-'))
const file = join(dir, 'dev.env')
writeFileSync(file, [...values].map(([k, v]) => `${k}=${JSON.stringify(v)}`).join('\n') + '\n', { mode: 0o600 })
const cleanup = () => rmSync(dir, { recursive: true, force: true })

const port = process.env.PORT || '8787'
const args = ['wrangler', 'dev', '--config', 'wrangler.toml', '--ip', '127.0.0.1', '--port', port, '--env-file', file,
  '--show-interactive-dev-session=false', ...process.argv.slice(2)]
const child = spawn('npx', args, { stdio: 'inherit', env: { ...process.env, WRANGLER_SEND_METRICS: 'false' } })
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal))
child.on('exit', (code, signal) => {
  cleanup()
  process.exit(code ?? (signal ? 1 : 0))
})
