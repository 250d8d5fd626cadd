// `npm start`: the whole paid flow on this machine, offline and without an account. Starts a local Tempo chain
// (anvil --network tempo, reached through a JSON-RPC front on port 8545 or RPC_PORT), the local Stripe API server, the demo origin, and the gateway
// under wrangler dev (port 8787 or PORT) in front of it with demo/pricing.json; funds demo payer keys; prints
// what runs and what to try. Ctrl-C (SIGINT) or SIGTERM stops everything. See docs/demo.md.
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { createServer } from 'node:net'
import { dirname, join, relative } from 'node:path'
import type { Hex } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { type DemoState, demoDir, root, writeState } from '../demo/state.js'
import { startOrigin } from '../demo/origin.js'
import { anvilArgs, anvilBinary, rpc } from '../src/testing/node/anvil.js'
import { freePort } from '../src/testing/node/ports.js'
import { startSessionChain } from '../src/testing/node/session-chain.js'
import { startStripeApi } from '../src/testing/node/stripe-api.js'
import { testSecretKey } from '../src/testing/stripe-fixtures.js'
import { chainClient, chainId, fund } from '../src/testing/chain.js'

const port = Number(process.env.PORT || 8787)
const rpcPort = Number(process.env.RPC_PORT || 8545)
/** Demo payers funded at start, each with this many pathUSD base units (1,000 pathUSD); each pays any number of times. */
const payerCount = 3
const payerFunds = 1_000_000_000n

const pricing = JSON.parse(readFileSync(join(root, 'demo', 'pricing.json'), 'utf8')) as {
  routes: {
    pattern: string
    method: string
    price?: string
    accept?: { method: string; currency: string }[]
    session?: { unit: string; price?: string; input?: string; output?: string }
  }[]
}

const started = Date.now()
const dir = demoDir(port)
const groups: { name: string; child: ChildProcess }[] = []
const stops: (() => Promise<void>)[] = []
let stopping: Promise<void> | undefined

function say(line: string) {
  process.stdout.write(`${line}\n`)
}

/** Ends every child's process group (SIGTERM, then SIGKILL after 5 s), stops the servers, removes the state. */
function shutdown(code: number): Promise<void> {
  stopping ??= (async () => {
    await Promise.all(groups.map(({ child }) => endGroup(child)))
    await Promise.all(stops.map((stop) => stop().catch(() => {})))
    rmSync(dir, { recursive: true, force: true })
    process.exit(code)
  })()
  return stopping
}

async function endGroup(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || !child.pid) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, name)
    } catch {
      // The group is already gone.
    }
  }
  signal('SIGTERM')
  const timer = setTimeout(() => signal('SIGKILL'), 5_000)
  await exited
  clearTimeout(timer)
  // Anything left in the group (wrangler's workerd) goes too.
  signal('SIGKILL')
}

for (const name of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(name, () => {
    say('stopping')
    void shutdown(0)
  })
}
// A crash must not leave the chain or the gateway running: their groups are ended synchronously.
process.on('exit', () => {
  for (const { child } of groups) {
    try {
      if (child.pid && child.exitCode === null) process.kill(-child.pid, 'SIGKILL')
    } catch {
      // Already gone.
    }
  }
})

function fail(message: string): Promise<void> {
  process.stderr.write(`npm start: ${message}\n`)
  return shutdown(1)
}

/** Starts a command in its own process group, its output going to a log file. */
function spawnGroup(name: string, command: string, args: string[], log: string, env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const fd = openSync(log, 'a')
  const child = spawn(command, args, { cwd: root, detached: true, stdio: ['ignore', fd, fd], env })
  closeSync(fd)
  groups.push({ name, child })
  child.once('exit', (code, signal) => {
    if (!stopping) void fail(`${name} exited (${signal ?? code}); its log: ${relative(process.cwd(), log)}\n${tail(log)}`)
  })
  return child
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-15).join('\n')
  } catch {
    return ''
  }
}

function portFree(value: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(value, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check().catch(() => false))) {
    if (stopping) await stopping
    if (Date.now() > deadline) throw new Error(`${what} did not start within ${timeoutMs / 1000} s`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

async function main() {
  for (const [name, value] of [['PORT', port], ['RPC_PORT', rpcPort]] as const) {
    if (!Number.isInteger(value) || value < 1 || value > 65_535) return fail(`${name} must be a port number`)
    if (!(await portFree(value))) return fail(`port ${value} is in use; set ${name} to another port (${name}=${value + 1} npm start)`)
  }
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })

  // The chain: anvil's Tempo mode (TIP-20 precompiles, type 0x76 transactions) from the npm package, on the T4
  // hardfork, where one account pays any number of times (see anvilArgs).
  const anvilPort = await freePort()
  const anvilUrl = `http://127.0.0.1:${anvilPort}`
  spawnGroup('anvil', anvilBinary(), anvilArgs({ port: anvilPort, chainId }), join(dir, 'anvil.log'))
  await until('the local Tempo chain', async () => Number(await rpc(anvilUrl, 'eth_chainId')) === chainId, 15_000)
  // At genesis the chain's timestamp is 1, which no validity window of a payment covers.
  await rpc(anvilUrl, 'evm_mine')
  // Payment channels: the channel reserve stand-in at the TIP-1034 precompile's address, and the JSON-RPC shim
  // that gives anvil what the precompile needs (src/testing/node/session-chain.ts). Every peer talks to the shim,
  // which is the chain's RPC URL on RPC_PORT.
  const sessionChain = await startSessionChain({ anvilUrl, port: rpcPort })
  stops.push(sessionChain.stop)
  const rpcUrl = sessionChain.url

  const stripe = await startStripeApi({ port: 0 })
  stops.push(stripe.stop)
  const origin = await startOrigin({ port: 0 })
  stops.push(origin.stop)

  // Demo payers: fresh keys funded from anvil's rich dev account.
  const client = chainClient(rpcUrl)
  const payers: Hex[] = Array.from({ length: payerCount }, () => generatePrivateKey())
  await Promise.all(payers.map((key) => fund(client, privateKeyToAccount(key).address, payerFunds)))
  // The channel operator (demo/gateway.ts): it closes channels for the recipient and pays those fees.
  const operatorKey = generatePrivateKey()
  await fund(client, privateKeyToAccount(operatorKey).address, 10_000_000n)

  // The gateway: demo/wrangler.toml, settings in an env file readable only by this user (it holds the HMAC key).
  const gateway = `http://127.0.0.1:${port}`
  const envFile = join(dir, 'gateway.env')
  const settings = {
    MPP_REALM: `127.0.0.1:${port}`,
    MPP_SECRET_KEY: randomBytes(32).toString('hex'),
    ORIGIN_URL: origin.url,
    TEMPO_RPC_URL: rpcUrl,
    STRIPE_SECRET_KEY: testSecretKey,
    STRIPE_API_BASE: stripe.url,
    TEMPO_PAYEE_KEY: operatorKey,
  }
  writeFileSync(envFile, Object.entries(settings).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join('\n') + '\n', { mode: 0o600 })
  const wrangler = join(dirname(createRequire(import.meta.url).resolve('wrangler/package.json')), 'bin', 'wrangler.js')
  const inspectorPort = await freePort()
  spawnGroup(
    'wrangler dev',
    process.execPath,
    [wrangler, 'dev', '--config', 'demo/wrangler.toml', '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspectorPort),
      '--env-file', envFile, '--persist-to', join(dir, 'wrangler-state'), '--show-interactive-dev-session=false', '--log-level', 'info'],
    join(dir, 'gateway.log'),
    { ...process.env, WRANGLER_SEND_METRICS: 'false', DO_NOT_TRACK: '1' },
  )
  await until('the gateway', async () => (await fetch(`${gateway}/__mpp/health`)).ok, 60_000)

  const state: DemoState = { gateway, rpc: rpcUrl, chainId, stripe: stripe.url, pid: process.pid, payers }
  writeState(dir, state)

  say(`gateway ${gateway}`)
  say(`rpc ${rpcUrl}`)
  say(`chain anvil at ${anvilUrl} behind the RPC; payment channels at ${sessionChain.escrow}`)
  for (const route of pricing.routes) {
    if (route.session) {
      const { unit, price, input, output } = route.session
      const per = unit === 'tokens' ? `${input} per input token, ${output} per output token` : `${price} per ${unit}`
      say(`route ${route.method} ${gateway}${route.pattern} ${per} (tempo pathUSD session)`)
    }
    if (route.price === undefined) continue
    const offers = (route.accept ?? []).map((a) => `${a.method} ${a.method === 'tempo' ? a.currency : a.currency.toUpperCase()}`).join(', ')
    say(`route ${route.method} ${gateway}${route.pattern} ${route.price} (${offers})`)
  }
  say(`payers ${payerCount} demo accounts with 1000 pathUSD each on chain ${chainId} (npm run pay uses the first)`)
  say(`logs ${relative(process.cwd(), dir) || '.'}/ (gateway.log, anvil.log)`)
  say(`ready in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  say(`try npm run pay -- ${gateway}/v1/reports/daily`)
  say(`try npm run pay -- ${gateway}/v1/quotes/ACME --mode push`)
  say(`try npm run pay -- ${gateway}/v1/summarize -X POST -d 'Payments for machines, over plain HTTP.'`)
  say(`try npm run pay -- ${gateway}/v1/reports/daily --method stripe`)
  say(`try npm run pay -- ${gateway}/v1/hello`)
  if (pricing.routes.some((route) => route.pattern === '/v1/chat/completions')) {
    say(`try npm run pay -- ${gateway}/v1/chat/completions -X POST -d '{"messages":[{"role":"user","content":"What is a payment channel?"}],"stream":true}' --deposit 1 --close`)
  }
  say(`try curl -i ${gateway}/v1/reports/daily`)
  say('stop Ctrl-C')
}

main().catch((error: unknown) => fail(error instanceof Error ? error.message : String(error)))
