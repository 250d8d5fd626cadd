/**
 * mpp-edge against the reference SDK mppx, both as Hono middleware in workerd (`wrangler dev`), side by
 * side in one run: throughput and latency of the 402 challenge path through the middleware, the protocol work
 * alone (binding and formatting challenges, parsing credentials and checking their binding, 100 per request so
 * the dev server's overhead is amortised), and the deployed bundle size.
 * Run: npm run bench:http (loopback only; each load is bounded in time).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import autocannon from 'autocannon'
import { freePort } from '../src/testing/node/ports.js'

const seconds = Number(process.env.BENCH_SECONDS ?? 5)
const connections = Number(process.env.BENCH_CONNECTIONS ?? 16)
const here = new URL('.', import.meta.url).pathname
const wrangler = join(here, '..', 'node_modules', '.bin', 'wrangler')
const env = { ...process.env, WRANGLER_SEND_METRICS: 'false', DO_NOT_TRACK: '1', CI: '1' }

const targets = [
  { name: 'mpp-edge', config: join(here, 'workers', 'ours.toml') },
  { name: 'mppx', config: join(here, 'workers', 'mppx.toml') },
]

async function serve(config: string): Promise<{ url: string; stop: () => void }> {
  const port = await freePort()
  const child: ChildProcess = spawn(wrangler, ['dev', '--config', config, '--ip', '127.0.0.1', '--port', String(port), '--local'], {
    env,
    stdio: 'ignore',
    detached: true,
  })
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 60_000
  for (;;) {
    try {
      await fetch(`${url}/paid`)
      break
    } catch {
      if (Date.now() > deadline) throw new Error(`wrangler dev did not start for ${config}`)
      await new Promise((r) => setTimeout(r, 200))
    }
  }
  return { url, stop: () => process.kill(-child.pid!, 'SIGTERM') }
}

function load(url: string, path: string): Promise<autocannon.Result> {
  return autocannon({ url: `${url}${path}`, connections, duration: seconds })
}

async function bundleSize(config: string): Promise<{ raw: number; gzip: number }> {
  const out = mkdtempSync(join(tmpdir(), 'mpp-bench-'))
  try {
    const child = spawn(wrangler, ['deploy', '--dry-run', '--config', config, '--outdir', out], { env, stdio: 'ignore' })
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
    if (code !== 0) throw new Error(`bundling failed: ${config}`)
    const files = readdirSync(out).filter((f) => f.endsWith('.js'))
    const bytes = Buffer.concat(files.map((f) => readFileSync(join(out, f))))
    return { raw: files.reduce((n, f) => n + statSync(join(out, f)).size, 0), gzip: gzipSync(bytes).length }
  } finally {
    rmSync(out, { recursive: true, force: true })
  }
}

type Row = { rps: number; p50: number; p99: number; issue: number; verify: number; raw: number; gzip: number }
const rows: Record<string, Row> = {}
for (const target of targets) {
  const size = await bundleSize(target.config)
  const server = await serve(target.config)
  try {
    await autocannon({ url: `${server.url}/paid`, connections, duration: 1 }) // warm-up
    const result = await load(server.url, '/paid')
    if (result.statusCodeStats?.['402'] === undefined) throw new Error(`${target.name}: no 402 answers`)
    const issue = await load(server.url, '/issue')
    const verify = await load(server.url, '/verify')
    if (issue.non2xx || verify.non2xx) throw new Error(`${target.name}: protocol endpoints failed`)
    rows[target.name] = {
      rps: result.requests.average,
      p50: result.latency.p50,
      p99: result.latency.p99,
      issue: issue.requests.average * 100,
      verify: verify.requests.average * 100,
      ...size,
    }
  } finally {
    server.stop()
  }
}

const [a, b] = [rows['mpp-edge']!, rows.mppx!]
console.log(`\n402 challenge path, ${connections} connections, ${seconds} s each, wrangler dev (workerd)`)
console.log('metric                 mpp-edge        mppx   ratio (mpp-edge / mppx)')
const line = (name: string, x: number, y: number, unit = '') =>
  console.log(`${name.padEnd(20)} ${`${x.toFixed(0)}${unit}`.padStart(10)} ${`${y.toFixed(0)}${unit}`.padStart(11)}   ${(x / y).toFixed(2)}x`)
line('requests/s', a.rps, b.rps)
line('latency p50 (ms)', a.p50, b.p50)
line('latency p99 (ms)', a.p99, b.p99)
line('challenges issued/s', a.issue, b.issue)
line('credentials checked/s', a.verify, b.verify)
line('bundle (KiB)', a.raw / 1024, b.raw / 1024)
line('bundle gzip (KiB)', a.gzip / 1024, b.gzip / 1024)
