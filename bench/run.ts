/**
 * `npm run bench`: the benchmark suite, side by side in one run, written to BENCHMARKS.md.
 *
 * One wrangler dev worker (bench/workers/inproc.ts) holds every app under comparison: bare Hono (the ceiling),
 * mpp-edge's middleware, mppx's middleware, and the gateway (default and with the Durable Object rate counter).
 * Rounds alternate the apps (A B C A B C …) so that load from elsewhere on the machine falls on all of them
 * alike, and the headline figures are ratios within the run. Figures that miss their target are profiled (the
 * worker's V8 profiler through wrangler dev's inspector, bench/profile.ts) and the report says where their time
 * goes. Loopback only; the whole run is bounded to 10 minutes (BENCH_BUDGET_S). Never part of `npm test`.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, freemem, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import autocannon from 'autocannon'
import { startAnvil } from '../src/testing/node/anvil.js'
import { freePort } from '../src/testing/node/ports.js'
import { startStripeApi } from '../src/testing/node/stripe-api.js'
import { type Inspector, type Summary, connect, formatSummary, withWebSocket } from './profile.js'

withWebSocket()

const started = Date.now()
const budgetMs = Number(process.env.BENCH_BUDGET_S ?? 600) * 1000
const rounds = Number(process.env.BENCH_ROUNDS ?? 5)
const seconds = Number(process.env.BENCH_SECONDS ?? 3)
const perRequest = 50 // in-process requests per outside request
const root = new URL('..', import.meta.url).pathname
const wrangler = join(root, 'node_modules', '.bin', 'wrangler')
const env = { ...process.env, WRANGLER_SEND_METRICS: 'false', DO_NOT_TRACK: '1', CI: '1' }
const log = (line: string) => console.log(`[${((Date.now() - started) / 1000).toFixed(0).padStart(3)} s] ${line}`)
const commands: string[] = []

// --- statistics -----------------------------------------------------------------------------------------
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length === 0 ? Number.NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}
const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN
}
const spread = (xs: number[]) => `${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}`
const fmt = (x: number) => (Number.isNaN(x) ? 'n/a' : x >= 100 ? Math.round(x).toLocaleString('en-US') : x >= 10 ? x.toFixed(1) : x.toFixed(2))

// --- machine --------------------------------------------------------------------------------------------
function version(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { env, encoding: 'utf8' }).trim().split('\n')[0]!
  } catch {
    return 'unknown'
  }
}
const machine = {
  nproc: version('nproc', []),
  cpu: cpus()[0]?.model ?? 'unknown',
  memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB (${(freemem() / 2 ** 30).toFixed(1)} GiB free at start)`,
  load: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
  node: process.version,
  wrangler: JSON.parse(readFileSync(join(root, 'node_modules', 'wrangler', 'package.json'), 'utf8')).version as string,
  workerd: version(join(root, 'node_modules', '.bin', 'workerd'), ['--version']),
  mppx: JSON.parse(readFileSync(join(root, 'node_modules', 'mppx', 'package.json'), 'utf8')).version as string,
  hono: JSON.parse(readFileSync(join(root, 'node_modules', 'hono', 'package.json'), 'utf8')).version as string,
}

// --- bundles --------------------------------------------------------------------------------------------
async function bundle(config: string | undefined): Promise<{ raw: number; gzip: number }> {
  const out = mkdtempSync(join(tmpdir(), 'mpp-bench-'))
  const args = ['deploy', '--dry-run', '--minify', '--outdir', out, ...(config ? ['--config', config] : [])]
  commands.push(`npx wrangler ${args.join(' ').replace(out, '<tmp>').replace(root, '')}`)
  try {
    const child = spawn(wrangler, args, { env, cwd: root, stdio: 'ignore' })
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
    if (code !== 0) throw new Error(`bundling failed: ${config ?? 'wrangler.toml'}`)
    const bytes = Buffer.concat(readdirSync(out).filter((f) => f.endsWith('.js')).map((f) => readFileSync(join(out, f))))
    return { raw: bytes.length, gzip: gzipSync(bytes).length }
  } finally {
    rmSync(out, { recursive: true, force: true })
  }
}

// --- the worker -----------------------------------------------------------------------------------------
async function serve(config: string): Promise<{ url: string; inspectorPort: number; log: () => string; stop: () => Promise<void> }> {
  const port = await freePort()
  const inspectorPort = await freePort()
  // Its own Durable Object storage, fresh each run (so another dev server of the same config cannot share it).
  const state = mkdtempSync(join(tmpdir(), 'mpp-bench-state-'))
  const args = ['dev', '--config', config, '--ip', '127.0.0.1', '--port', String(port), '--local', '--inspector-port', String(inspectorPort), '--persist-to', state]
  commands.push(`npx wrangler ${args.join(' ').replace(root, '').replace(state, '<tmp>')}`)
  // The dev server's output goes to a file beside its state, shown when something fails.
  const logFile = join(state, 'wrangler.log')
  const out = openSync(logFile, 'w')
  const child: ChildProcess = spawn(wrangler, args, { env, cwd: root, stdio: ['ignore', out, out], detached: true })
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 90_000
  for (;;) {
    const ok = await fetch(`${url}/one/bare`).then((r) => r.ok, () => false)
    if (ok) break
    if (Date.now() > deadline) throw new Error(`wrangler dev did not start for ${config}`)
    await new Promise((r) => setTimeout(r, 250))
  }
  return {
    url,
    inspectorPort,
    log: () => readFileSync(logFile, 'utf8'),
    stop: async () => {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      process.kill(-child.pid!, 'SIGTERM')
      await exited
      rmSync(state, { recursive: true, force: true })
    },
  }
}

/** Requests per second of a load; `scale` in-process requests per outside request. */
async function rate(url: string, connections: number, scale = 1, status = 200): Promise<number> {
  const result = await autocannon({ url, connections, duration: seconds })
  const codes = Object.keys(result.statusCodeStats ?? {})
  if (result.errors > 0 || codes.some((code) => code !== String(status))) {
    const body = await fetch(url).then((r) => r.text(), (e: unknown) => String(e))
    throw new Error(`${url}: status ${codes.join(', ')}, ${result.errors} errors (${body.slice(0, 300)})`)
  }
  return (result.requests.total * scale) / (result.duration || seconds)
}

const remaining = () => budgetMs - (Date.now() - started)

// --- run ------------------------------------------------------------------------------------------------
log(`machine: ${machine.nproc} cores, ${machine.memory}, load ${machine.load}`)
// Bundling runs while the worker starts and warms up (before any measurement), to keep within the budget.
const bundling = Promise.all([
  bundle(undefined),
  bundle(join(root, 'bench', 'workers', 'ours.toml')),
  bundle(join(root, 'bench', 'workers', 'mppx.toml')),
]).then(([gateway, middleware, mppx]) => ({ gateway, middleware, mppx }))
bundling.catch(() => {})

const anvil = await startAnvil({ port: await freePort() })
const stripeApi = await startStripeApi({ port: await freePort() })
const worker = await serve(join(root, 'bench', 'workers', 'inproc.toml'))
log(`worker ready at ${worker.url}`)
let bundles: Awaited<typeof bundling>

type Series = Record<string, number[]>
const inproc: Record<string, Series> = { unpaid: {}, garbage: {}, tampered: {} }
const devServer: Series = {}
const paid: Series = {}
const e2e: Series = {}
const replay: Record<string, { throughput: number[]; begin: number[]; settle: number[]; deliver: number[] }> = {}
const session = { burstMs: [] as number[], latencies: [] as number[], sustained: [] as number[] }
const profiles: { label: string; summary: Summary }[] = []
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
type VoucherRun = { n: number; wallMs: number; latencies: number[] }
const sessionRun = async (n: number): Promise<VoucherRun> => {
  const prepared = await fetch(`${worker.url}/session/prepare?n=${n}`)
  if (!prepared.ok) throw new Error(`session prepare: ${await prepared.text()}`)
  // The channel object paces vouchers at 10 a second after a burst of 10: idle a second, and the burst is whole again.
  await sleep(1_100)
  const response = await fetch(`${worker.url}/session?n=${n}`, { signal: AbortSignal.timeout(60_000) })
  if (!response.ok) throw new Error(`session vouchers: ${await response.text()}`)
  return (await response.json()) as VoucherRun
}
const groups: Record<keyof typeof inproc, string[]> = {
  unpaid: ['bare', 'ours', 'mppx', 'gateway', 'gateway-do'],
  garbage: ['ours', 'mppx', 'gateway'],
  tampered: ['ours', 'mppx', 'gateway'],
}
const paidLabel: Record<string, string> = { pull: 'Tempo pull', sponsored: 'Tempo pull, fee sponsored', push: 'Tempo push', stripe: 'Stripe SPT' }
let completed = 0
try {
  // Warm-up: every app and case once, so no round pays for compilation or first-use setup.
  for (const [kind, apps] of Object.entries(groups)) for (const app of apps) await fetch(`${worker.url}/run?app=${app}&case=${kind}&n=20`).then((r) => r.text())
  for (const kind of ['pull', 'sponsored', 'push', 'stripe']) {
    const warm = await fetch(`${worker.url}/paid?case=${kind}&n=5`)
    if (!warm.ok) throw new Error(`paid ${kind}: ${await warm.text()}`)
  }
  bundles = await bundling
  log(`bundles (gzip KiB): gateway ${(bundles.gateway.gzip / 1024).toFixed(1)}, middleware worker ${(bundles.middleware.gzip / 1024).toFixed(1)}, mppx worker ${(bundles.mppx.gzip / 1024).toFixed(1)}`)
  commands.push(`autocannon -c 2 -d ${seconds} '<worker>/run?app=<app>&case=<unpaid|garbage|tampered>&n=${perRequest}'`)
  commands.push(`autocannon -c 16 -d ${seconds} '<worker>/one/<app>'`)
  commands.push(`autocannon -c 1 -d ${seconds} '<worker>/paid?case=<pull|sponsored|push|stripe>&n=10'`)

  // One round: each figure once, apps alternating within each figure. A round takes about 20 loads.
  const roundMs = (5 + 3 + 3 + 4 + 4) * (seconds + 0.5) * 1000
  for (let round = 1; round <= rounds; round++) {
    if (remaining() < roundMs + 120_000) {
      log(`stopping after ${completed} rounds: the 10-minute budget is nearly spent`)
      break
    }
    for (const [kind, apps] of Object.entries(groups)) {
      for (const app of apps) {
        ;((inproc[kind]![app] ??= [])).push(await rate(`${worker.url}/run?app=${app}&case=${kind}&n=${perRequest}`, 2, perRequest))
      }
    }
    for (const app of ['bare', 'ours', 'mppx', 'gateway']) (devServer[app] ??= []).push(await rate(`${worker.url}/one/${app}`, 16, 1, app === 'bare' ? 200 : 402))
    for (const kind of ['pull', 'sponsored', 'push', 'stripe']) {
      const perSecond = await rate(`${worker.url}/paid?case=${kind}&n=10`, 1, 10)
      ;(paid[kind] ??= []).push(1000 / perSecond)
    }
    completed = round
    const u = inproc.unpaid!
    log(`round ${round}: 402/s in workerd bare ${fmt(u.bare!.at(-1)!)}, mpp-edge ${fmt(u.ours!.at(-1)!)}, mppx ${fmt(u.mppx!.at(-1)!)}, gateway ${fmt(u.gateway!.at(-1)!)}`)
  }

  // Replay store: 1 shard and the configured count, alternating.
  for (let round = 0; round < 2 && remaining() > 60_000; round++) {
    for (const shards of [1, 32]) {
      const result = (await (await fetch(`${worker.url}/replay?shards=${shards}&concurrency=16&n=400`, { signal: AbortSignal.timeout(60_000) })).json()) as {
        n: number
        wallMs: number
        begin: number[]
        settle: number[]
        deliver: number[]
      }
      const entry = (replay[shards] ??= { throughput: [], begin: [], settle: [], deliver: [] })
      entry.throughput.push((result.n * 1000) / result.wallMs)
      entry.begin.push(...result.begin)
      entry.settle.push(...result.settle)
      entry.deliver.push(...result.deliver)
    }
  }
  log('replay store measured')

  // Session vouchers on one channel object: bursts of 10 (the cost of a voucher), then 40 in a row (the pace).
  for (let round = 0; round < Math.min(rounds, 5) && remaining() > 90_000; round++) {
    const run = await sessionRun(10)
    session.burstMs.push(run.wallMs / run.n)
    session.latencies.push(...run.latencies)
  }
  if (remaining() > 80_000) {
    const run = await sessionRun(40)
    session.sustained.push((run.n * 1000) / run.wallMs)
  }
  commands.push(`curl '<worker>/session/prepare?n=10'; sleep 1.1; curl '<worker>/session?n=<10|40>'`)
  log('session vouchers measured')

  // End to end on the local chain and the local Stripe API: each payment real, a fresh payer per Tempo payment.
  for (const kind of ['pull', 'sponsored', 'push', 'stripe']) {
    if (remaining() < 30_000) break
    const response = await fetch(`${worker.url}/e2e?case=${kind}&n=5&anvil=${encodeURIComponent(anvil.url)}&stripe=${encodeURIComponent(stripeApi.url)}`, {
      signal: AbortSignal.timeout(120_000),
    })
    if (!response.ok) throw new Error(`e2e ${kind}: ${await response.text()}`)
    e2e[kind] = (await response.json()) as number[]
  }
  log('end-to-end latency measured')

  // Where the time goes, for each figure that misses its target (and the session voucher): 2 s CPU profiles.
  const missed: { label: string; path: string; before?: () => Promise<void> }[] = []
  const per = (a: number[] | undefined, b: number[] | undefined) => median((a ?? []).map((x, i) => x / b![i]!))
  const u = inproc.unpaid!
  if (!(per(u.ours, u.bare) >= 0.5 && per(u.ours, u.mppx) >= 3)) missed.push({ label: '402 path (mpp-edge middleware)', path: `/run?app=ours&case=unpaid&n=${perRequest}` })
  if (!(per(inproc.garbage!.ours, u.bare) >= 0.4 && per(inproc.garbage!.ours, inproc.garbage!.mppx) >= 3)) missed.push({ label: 'malformed credential refused', path: `/run?app=ours&case=garbage&n=${perRequest}` })
  if (!(per(inproc.tampered!.ours, u.bare) >= 0.4 && per(inproc.tampered!.ours, inproc.tampered!.mppx) >= 3)) missed.push({ label: 'tampered credential refused', path: `/run?app=ours&case=tampered&n=${perRequest}` })
  for (const kind of ['pull', 'sponsored', 'push', 'stripe']) if (!(median(paid[kind] ?? []) < 1)) missed.push({ label: `paid request, ${paidLabel[kind]}`, path: `/paid?case=${kind}&n=10` })
  missed.push({ label: 'session voucher (no target)', path: '/session?n=10', before: async () => void (await fetch(`${worker.url}/session/prepare?n=10`)) })
  let inspector: Inspector | undefined
  for (const { label, path, before } of missed) {
    if (remaining() < 25_000) break
    try {
      inspector ??= await connect(worker.inspectorPort, join(root, 'bench', 'workers'))
      await before?.()
      const { summary } = await inspector.profile(async () => {
        const end = Date.now() + 2_000
        while (Date.now() < end) {
          const response = await fetch(`${worker.url}${path}`)
          await response.text()
          if (!response.ok) throw new Error(`${path}: ${response.status}`)
        }
      })
      profiles.push({ label, summary })
    } catch (error) {
      log(`profiling ${label} failed: ${String(error)}`)
    }
  }
  inspector?.close()
  log(`profiled ${profiles.length} figures`)
} catch (error) {
  console.error(`the dev server's output:\n${worker.log().slice(-4000)}`)
  throw error
} finally {
  await worker.stop()
  await stripeApi.stop()
  await anvil.stop()
}

// --- report ---------------------------------------------------------------------------------------------
const perRound = (a: number[] | undefined, b: number[] | undefined) => (a?.length && b?.length ? a.map((x, i) => x / b[i]!) : [])
const ratio = (a: number[] | undefined, b: number[] | undefined) => {
  // Per round (the two ran back to back), then the median and spread of those ratios.
  const per = perRound(a, b)
  if (!per.length) return 'n/a'
  return `**${median(per).toFixed(2)}x** (${Math.min(...per).toFixed(2)}–${Math.max(...per).toFixed(2)})`
}
const verdict = (a: number[] | undefined, b: number[] | undefined, target: number) => {
  const per = perRound(a, b)
  return per.length ? (median(per) >= target ? 'met' : 'missed') : 'n/a'
}
const cell = (xs: number[] | undefined) => (xs?.length ? `${fmt(median(xs))} (${spread(xs)})` : 'n/a')
const u = inproc.unpaid!
const g = inproc.garbage!
const t = inproc.tampered!
const shared = Number(machine.nproc) <= 2 || Number(machine.load.split(' ')[0]) > Number(machine.nproc)
const endLoad = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')
const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`
const paidRows = ['pull', 'sponsored', 'push', 'stripe'].map((kind) => {
  const ms = median(paid[kind] ?? [])
  return `| ${paidLabel[kind]} | ${cell(paid[kind])} | ${Number.isNaN(ms) ? 'n/a' : ms < 1 ? 'met' : 'missed'} | ${e2e[kind] ? `${fmt(median(e2e[kind]!))} (${spread(e2e[kind]!)})` : 'n/a'} |`
})
// 100 KiB with the charge methods; sessions (the session method and the gateway's metering) may raise it to 120 KiB,
// the budget test/node/gateway.test.ts holds.
const budget = 120 * 1024
const profileLines = profiles.map(({ label, summary }) => `- ${label}: ${formatSummary(summary, 8)}.`)

const report = `# Benchmarks

Written by \`npm run bench\` (bench/run.ts) on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${completed} rounds of ${seconds} s loads, in ${((Date.now() - started) / 1000).toFixed(0)} s.
Figures are the median over the rounds, with the spread (lowest–highest) in parentheses; ratios are taken per round
(the two apps ran back to back) and then their median. ${shared ? `**This ran on a shared ${machine.nproc}-core machine** (load average ${machine.load} at the start, ${endLoad} at the end, from other work running beside it), so absolute numbers are noisy and depressed; the ratios, from apps alternating within each round, are the figures to read.` : ''}

## Headline

| measure (inside workerd, same machine, same run) | ratio | target | |
|---|---|---|---|
| 402 path, mpp-edge middleware / bare Hono | ${ratio(u.ours, u.bare)} | ≥ 0.5x | ${verdict(u.ours, u.bare, 0.5)} |
| 402 path, mpp-edge middleware / mppx middleware | ${ratio(u.ours, u.mppx)} | ≥ 3x | ${verdict(u.ours, u.mppx, 3)} |
| malformed credential refused, mpp-edge / bare Hono 200 | ${ratio(g.ours, u.bare)} | ≥ 0.4x | ${verdict(g.ours, u.bare, 0.4)} |
| malformed credential refused, mpp-edge / mppx | ${ratio(g.ours, g.mppx)} | ≥ 3x | ${verdict(g.ours, g.mppx, 3)} |
| tampered credential refused, mpp-edge / bare Hono 200 | ${ratio(t.ours, u.bare)} | ≥ 0.4x | ${verdict(t.ours, u.bare, 0.4)} |
| tampered credential refused, mpp-edge / mppx | ${ratio(t.ours, t.mppx)} | ≥ 3x | ${verdict(t.ours, t.mppx, 3)} |
| 402 path, gateway (rate limiting binding) / bare Hono | ${ratio(u.gateway, u.bare)} | | |
| 402 path, gateway (Durable Object counter) / bare Hono | ${ratio(u['gateway-do'], u.bare)} | | |
| a valid credential, our own work (ms per paid request, stubs) | ${['pull', 'sponsored', 'push', 'stripe'].map((k) => `${paidLabel[k]} ${fmt(median(paid[k] ?? []))}`).join(', ')} | < 1 ms each | ${['pull', 'sponsored', 'push', 'stripe'].map((k) => (median(paid[k] ?? []) < 1 ? 'met' : 'missed')).join(', ')} |
| gateway bundle with sessions, gzip | ${kib(bundles.gateway.gzip)} | ≤ 120 KiB (100 before sessions) | ${bundles.gateway.gzip <= budget ? 'met' : 'missed'} |

## Where a target is missed, and where the time goes

- The machine: ${shared ? 'these runs share the cores with other work' : 'a quiet machine'}; one ${seconds}-second load can land on a quiet
  or a busy moment, so a single ratio swings between rounds (see the spreads). Medians of per-round ratios are
  the best estimate one run gives; before reading a miss of a few percent as real, rerun on a quiet machine
  (\`BENCH_ROUNDS=9 npm run bench\`).
- A valid Tempo credential: a payer paying its own fee costs no elliptic-curve work (the server decodes the
  transaction and checks its calls; the chain checks the signature). A sponsored one needs the sender, recovered
  with secp256k1 in JavaScript (\`@noble/curves\` through ox; workerd's WebCrypto has no secp256k1), and the
  fee payer's co-signature: one recovery and one signature, milliseconds on a slow core, which the profile below
  shows as \`@noble/curves\`. A session voucher's EIP-712 signer recovery is the same work.
- What the rest costs: \`Request\`/\`Response\`/\`Headers\` construction and the harness (workerd built-ins), Hono,
  one WebCrypto HMAC and SHA-256 digests, the replay store's calls and the receipt. With wrangler's default
  \`keep_names\`, every closure a module builds per request is also named at run time (\`__name\`, in
  \`(bundle)\` below; Hono's \`Context\` builds a dozen per request), which the bare Hono ceiling pays too.
- CPU profiles of this run (2 s each, self time of each source module and function; \`npm run bench:profile --
  '<path>'\` keeps the full profile)${profileLines.length ? ':' : ': none taken.'}
${profileLines.join('\n')}

## Responses per second inside workerd

One worker (bench/workers/inproc.ts) holds every app; one outside request runs ${perRequest} requests through one app in-process
with \`app.fetch\`, so the dev server's proxy is amortised away; 2 connections. The middleware apps price one route with
the same Tempo charge (0.01 pathUSD on chain 42431); the gateway prices the same route from a pricing table.
"Malformed" is \`Authorization: Payment bm9wZQ\`; "tampered" is a well-formed credential whose challenge id was altered.
Every answer is a 402 with a fresh challenge (bare Hono answers 200 with a small JSON body).

| requests per second | bare Hono (ceiling) | mpp-edge middleware | mppx ${machine.mppx} middleware | gateway, rate limiting bindings | gateway, Durable Object counter |
|---|---|---|---|---|---|
| no credential (402) | ${cell(u.bare)} | ${cell(u.ours)} | ${cell(u.mppx)} | ${cell(u.gateway)} | ${cell(u['gateway-do'])} |
| malformed credential (402) | — | ${cell(g.ours)} | ${cell(g.mppx)} | ${cell(g.gateway)} | — |
| tampered credential (402) | — | ${cell(t.ours)} | ${cell(t.mppx)} | ${cell(t.gateway)} | — |

Through \`wrangler dev\` (one request per outside request, 16 connections; bound by the dev server's proxy on every side):

| requests per second | bare Hono | mpp-edge middleware | mppx middleware | gateway |
|---|---|---|---|---|
| 402 (bare: 200) | ${cell(devServer.bare)} | ${cell(devServer.ours)} | ${cell(devServer.mppx)} | ${cell(devServer.gateway)} |

With the Workers rate limiting bindings (\`CHALLENGE_RATE_LIMITER\`, \`VERIFY_RATE_LIMITER\`: \`[[ratelimits]]\` in wrangler.toml)
the gateway's 402 path touches no storage; with the RateCounter Durable Object (used for a kind whose binding is
absent) every 402 waits for one Durable Object call, which the last column shows.

## A valid credential, our own work

The middleware with the replay store, the Tempo RPC endpoint and the Stripe API replaced by stubs (bench/workers/paid.ts,
through the methods' public \`store\` and \`fetch\` options; product code unchanged) that answer at once, as a node
would (JSON with its length), without a timer turn: what is measured is our own work, and the stubs' few lines.
Each request carries a valid credential and is served 200: parse, binding, route, expiry, schema, replay \`begin\`, the
method's checks (Tempo pull: the transaction decode and its calls; sponsored: the sender's recovery, the sponsor policy
and the fee payer's co-signature; push: the receipt's logs; Stripe: the PaymentIntent), \`settle\`, the receipt and
\`deliver\`. Ten requests in sequence per outside request, one connection (the figure includes the in-process
\`Request\`/\`Response\` of each). Target: under 1 ms per paid request.
Beside it, end to end with everything real (ReplayGuard Durable Objects, anvil \`--network tempo\`, the local Stripe API),
the paid request alone timed in-isolate, 5 payments each (a Tempo pull includes the broadcast and the wait for its block;
anvil mines on arrival).

| method | ms per paid request, stubs | < 1 ms | ms per paid request, end to end |
|---|---|---|---|
${paidRows.join('\n')}

## Replay store under concurrent load

16 concurrent payments (begin → settle → deliver, fresh challenge ids) against the real ReplayGuard Durable Objects,
400 payments per load, two loads each. With one shard every call goes to one object; with the configured 32 they spread.
Locally every object runs inside one workerd process on ${machine.nproc} cores beside the load generator, so shard
scaling cannot show here: these are per-object figures, and on Cloudflare each shard is its own object with its own
throughput.

| shards | payments per second | begin p50 / p99 ms | settle p50 / p99 ms | deliver p50 / p99 ms |
|---|---|---|---|---|
${Object.entries(replay)
  .map(([shards, r]) => `| ${shards} | ${cell(r.throughput)} | ${fmt(median(r.begin))} / ${fmt(quantile(r.begin, 0.99))} | ${fmt(median(r.settle))} / ${fmt(quantile(r.settle, 0.99))} | ${fmt(median(r.deliver))} / ${fmt(quantile(r.deliver, 0.99))} |`)
  .join('\n')}

## Session vouchers on one channel

One payer's channel in one ChannelState Durable Object (seeded as after an open: the voucher path makes no RPC
call), vouchers sent one after another through \`pay.session\` with the tempo session method, each a content
request charging one unit (bench/workers/session.ts): parse, binding, descriptor, the voucher's EIP-712 signer
recovery (secp256k1), the object's acceptance and charge in SQLite, the receipt. The payer signs them before they
are timed. The channel object paces vouchers at the spec's 10 per second per channel after a burst of 10
(draft-tempo-session-00, "Denial of Service"), so one channel's throughput is that pace by design: a burst of 10
after a second idle shows the cost of a voucher (${session.burstMs.length} bursts), 40 in a row show the pace holding.

| | |
|---|---|
| ms per voucher in a burst of 10 | ${cell(session.burstMs)} |
| voucher latency p50 / p99 (in-isolate clock) | ${fmt(median(session.latencies))} / ${fmt(quantile(session.latencies, 0.99))} ms |
| vouchers per second one channel could take unpaced (1000 / ms per voucher) | ${fmt(1000 / median(session.burstMs))} |
| vouchers per second, 40 in a row (paced at 10/s after the burst) | ${cell(session.sustained)} |

## Bundles (\`wrangler deploy --dry-run --minify\`, gzip)

| worker | minified | gzip |
|---|---|---|
| the deployable gateway (wrangler.toml, every method) | ${kib(bundles.gateway.raw)} | ${kib(bundles.gateway.gzip)} |
| mpp-edge middleware bench worker (bench/workers/ours.toml) | ${kib(bundles.middleware.raw)} | ${kib(bundles.middleware.gzip)} |
| mppx middleware bench worker (bench/workers/mppx.toml) | ${kib(bundles.mppx.raw)} | ${kib(bundles.mppx.gzip)} |

## Machine

| | |
|---|---|
| nproc | ${machine.nproc} (${machine.cpu}) |
| memory | ${machine.memory} |
| load average | ${machine.load} at the start, ${endLoad} at the end |
| Node | ${machine.node} |
| wrangler | ${machine.wrangler} |
| workerd | ${machine.workerd} |
| Hono / mppx | ${machine.hono} / ${machine.mppx} |

## Commands

\`\`\`sh
npm run bench   # BENCH_ROUNDS=${rounds} BENCH_SECONDS=${seconds}
${commands.join('\n')}
\`\`\`
`
writeFileSync(join(root, 'BENCHMARKS.md'), report)
log(`wrote BENCHMARKS.md (${completed} rounds)`)
