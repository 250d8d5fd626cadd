/**
 * The local demo as docs/demo.md runs it: `npm start` (on free ports), a payment through it with `npm run pay`,
 * the reference mppx client paying the same gateway, and Ctrl-C ending every process it started.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { Mppx, tempo as mppxTempo } from 'mppx/client'
import { type Hex, formatUnits, parseUnits } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as Receipt from '../../src/core/Receipt.js'
import { demoDir, readState } from '../../demo/state.js'
import { freePort } from '../../src/testing/node/ports.js'
import { balanceOf, chainClient } from '../support/tempo-chain.js'

const demoRecipient = JSON.parse(readFileSync(new URL('../../demo/pricing.json', import.meta.url), 'utf8')).methods.tempo.recipient as Hex

/** Runs a command to its end and returns its exit code and output. */
function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env })
    let output = ''
    child.stdout.on('data', (chunk) => (output += chunk))
    child.stderr.on('data', (chunk) => (output += chunk))
    child.on('exit', (code) => resolve({ code, output }))
  })
}

/** Every process descending from `pid` (through /proc), whatever its process group. */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      // Fields after the command name (which may hold spaces) start after the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)])
    } catch {
      // The process ended while we looked.
    }
  }
  const found: number[] = []
  const queue = [pid]
  while (queue.length) {
    for (const child of children.get(queue.shift()!) ?? []) {
      found.push(child)
      queue.push(child)
    }
  }
  return found
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('the demo gateway worker', () => {
  it('behavior: exports what the deployable gateway exports and binds the same Durable Objects (only the pricing table differs)', () => {
    const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8')
    const exported = (source: string) => [...source.matchAll(/^export \{ (\w+) \}/gm)].map((m) => m[1]).sort()
    const bindings = (toml: string) => [...toml.matchAll(/^class_name = "(\w+)"/gm)].map((m) => m[1]).sort()
    expect(exported(read('demo/gateway.ts'))).toEqual(exported(read('src/gateway/index.ts')))
    expect(bindings(read('demo/wrangler.toml'))).toEqual(bindings(read('wrangler.toml')))
  })
})

describe('npm start (the local demo)', { timeout: 120_000 }, () => {
  let start: ChildProcess
  let output = ''
  let gateway = ''
  let rpc = ''
  let port = 0
  let processes: number[] = []

  beforeAll(async () => {
    port = await freePort()
    const rpcPort = await freePort()
    // As docs/demo.md says, with free ports so it can run beside other tests (and a demo a person runs).
    start = spawn('npm', ['start'], { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PORT: String(port), RPC_PORT: String(rpcPort) } })
    start.stdout!.on('data', (chunk) => (output += chunk))
    start.stderr!.on('data', (chunk) => (output += chunk))
    const deadline = Date.now() + 90_000
    while (!/^stop /m.test(output)) {
      if (start.exitCode !== null) throw new Error(`npm start exited:\n${output}`)
      if (Date.now() > deadline) throw new Error(`npm start did not get ready:\n${output}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    gateway = /^gateway (\S+)$/m.exec(output)![1]!
    rpc = /^rpc (\S+)$/m.exec(output)![1]!
    processes = descendants(start.pid!)
  }, 120_000)

  afterAll(async () => {
    // Only if the stop test did not run or failed: leave nothing behind.
    for (const pid of [start?.pid, ...processes]) {
      if (pid && alive(pid)) process.kill(pid, 'SIGKILL')
    }
  })

  it('behavior: prints the gateway, the chain, each priced route with its price, and what to try', () => {
    expect(gateway).toBe(`http://127.0.0.1:${port}`)
    expect(rpc).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(output).toContain(`route GET ${gateway}/v1/reports/daily 0.25 (tempo pathUSD, stripe USD)`)
    expect(output).toContain(`route GET ${gateway}/v1/quotes/:symbol 0.01 (tempo pathUSD)`)
    expect(output).toContain(`route POST ${gateway}/v1/chat/completions 0.00001 per input token, 0.00002 per output token (tempo pathUSD session)`)
    expect(output).toContain(`try npm run pay -- ${gateway}/v1/reports/daily`)
    // The chain, the gateway and a recorded state are up; the processes run in their own groups.
    expect(readState(new URL(gateway))?.state.rpc).toBe(rpc)
    const commands = processes.map((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0]!)
    expect(commands.some((command) => command.endsWith('/anvil'))).toBe(true)
    expect(commands.some((command) => command.endsWith('/workerd'))).toBe(true)
  })

  it('behavior: npm run pay pays a priced route: the challenge, the payment, 200, the decoded receipt; the seller gets the price', async () => {
    const client = chainClient(rpc)
    const before = await balanceOf(client, demoRecipient)
    const { code, output: paid } = await run('npm', ['run', 'pay', '--', `${gateway}/v1/reports/daily`])
    expect(paid).toMatch(/^challenge tempo charge: 0\.25 pathUSD \(250000 base units\) to 0x[0-9a-fA-F]{40} on chain 42431, expires \S+Z/m)
    expect(paid).toMatch(/^challenge stripe charge: 0\.25 USD \(25 minor units\)/m)
    const hash = /^payment +transaction (0x[0-9a-f]{64}) signed/m.exec(paid)?.[1]
    expect(hash, paid).toBeDefined()
    expect(paid).toMatch(/^response +200 OK$/m)
    expect(paid).toMatch(/^body +\{"report":"daily"/m)
    expect(paid).toContain(`receipt   tempo success, reference ${hash}, at `)
    expect(code).toBe(0)
    expect((await balanceOf(client, demoRecipient)) - before).toBe(250_000n)
  })

  it('behavior: npm run pay with one MPP_PAYER_KEY pays five times in a row, push and pull, each a new transaction', async () => {
    const demo = readState(new URL(gateway))!
    const key = demo.state.payers[2]!
    const client = chainClient(rpc)
    const before = await balanceOf(client, demoRecipient)
    const hashes = new Set<string>()
    for (const mode of ['pull', 'push', 'pull', 'push', 'pull']) {
      const { code, output: paid } = await run('npm', ['run', 'pay', '--', `${gateway}/v1/quotes/ACME`, '--mode', mode], { ...process.env, MPP_PAYER_KEY: key })
      expect(paid).toMatch(/^response +200 OK$/m)
      expect(paid).toContain(`from ${privateKeyToAccount(key).address}`)
      hashes.add(/^receipt +tempo success, reference (0x[0-9a-f]{64})/m.exec(paid)![1]!)
      expect(code).toBe(0)
    }
    expect(hashes.size).toBe(5)
    expect((await balanceOf(client, demoRecipient)) - before).toBe(5n * 10_000n)
  })

  it('behavior: npm run pay --method stripe pays the same route through the local Stripe API', async () => {
    const { code, output: paid } = await run('npm', ['run', 'pay', '--', `${gateway}/v1/reports/daily`, '--method', 'stripe'])
    expect(paid).toMatch(/^response +200 OK$/m)
    expect(paid).toMatch(/^receipt +stripe success, reference pi_\w+/m)
    expect(code).toBe(0)
  })

  it('behavior: the reference mppx client pays the running demo gateway (Node), with a demo payer key', async () => {
    const demo = readState(new URL(gateway))!
    const key = demo.state.payers[1]!
    const client = chainClient(rpc)
    const before = await balanceOf(client, demoRecipient)
    const mppx = Mppx.create({ polyfill: false, methods: [mppxTempo({ account: privateKeyToAccount(key), getClient: () => client })] })
    const response = await mppx.fetch(`${gateway}/v1/quotes/ACME`)
    expect(response.status).toBe(200)
    expect(await response.json()).toMatchObject({ symbol: 'ACME', currency: 'USD' })
    expect(Receipt.deserialize(response.headers.get('payment-receipt')!)).toMatchObject({ method: 'tempo', status: 'success' })
    expect((await balanceOf(client, demoRecipient)) - before).toBe(10_000n)
  })

  it('behavior: npm run pay pays the per-token chat route through a session: the stream as it arrives with each voucher; the next run reuses the channel; --close pays the seller what was spent and refunds the payer the rest, on chain', async () => {
    const demo = readState(new URL(gateway))!
    const key = demo.state.payers[1]!
    const env = { ...process.env, MPP_PAYER_KEY: key }
    const payer = privateKeyToAccount(key).address
    const client = chainClient(rpc)
    const [sellerBefore, payerBefore] = await Promise.all([balanceOf(client, demoRecipient), balanceOf(client, payer)])
    const url = `${gateway}/v1/chat/completions`
    const ask = (content: string, stream = true) => JSON.stringify({ messages: [{ role: 'user', content }], stream })
    // Receipts print amounts in pathUSD, like every other amount npm run pay shows.
    const spentOf = (output: string) => [...output.matchAll(/^receipt .*\bspent ([\d.]+)/gm)].map((m) => parseUnits(m[1]!, 6))

    const first = await run('npm', ['run', 'pay', '--', url, '-X', 'POST', '-d', ask('What is a payment channel?'), '--deposit', '1'], env)
    expect(first.output).toMatch(/^challenge +tempo session: 0\.00002 pathUSD per llm_token to 0x[0-9a-fA-F]{40} on chain 42431, suggested deposit 1 pathUSD, "[^"]*; 0\.00001 pathUSD per input token, 0\.00002 pathUSD per output token"$/m)
    const channel = /^open +channel (0x[0-9a-f]{64}) with a deposit of 1 /m.exec(first.output)?.[1]
    expect(channel, first.output).toBeDefined()
    // The reserve: one input token per byte of the body as forwarded (the default limit and usage asked for) at 10,
    // 256 output tokens at 20.
    const forwarded = JSON.stringify({ ...(JSON.parse(ask('What is a payment channel?')) as object), max_completion_tokens: 256, stream_options: { include_usage: true } })
    const reserve = BigInt(new TextEncoder().encode(forwarded).length) * 10n + 256n * 20n
    expect(first.output).toMatch(new RegExp(`^voucher +${formatUnits(reserve, 6).replace('.', '\\.')} in all on channel`, 'm'))
    expect(first.output).toMatch(/^response +200 OK$/m)
    expect(first.output).toMatch(/^stream +\S+ \S+/m)
    expect(first.output).toMatch(/^usage +prompt_tokens \d+, completion_tokens \d+/m)
    // The stream's final receipt settles the reserve to the reported usage.
    expect(first.output).toMatch(new RegExp(`^receipt .*channelId ${channel}.*usage reported`, 'm'))
    expect(first.code).toBe(0)

    const second = await run('npm', ['run', 'pay', '--', url, '-X', 'POST', '-d', ask('And who closes it?'), '--deposit', '1'], env)
    expect(second.output).not.toMatch(/^open /m)
    expect(second.output).toMatch(new RegExp(`^receipt .*channelId ${channel}.*usage reported`, 'm'))
    expect(second.code).toBe(0)

    const third = await run('npm', ['run', 'pay', '--', url, '-X', 'POST', '-d', ask('Thanks.', false), '--deposit', '1', '--close'], env)
    expect(third.output).not.toMatch(/^open /m)
    expect(third.output).toMatch(/^response +200 OK$/m)
    const payout = parseUnits(/^payout +([\d.]+) to the seller/m.exec(third.output)?.[1] ?? 'x', 6)
    const refund = parseUnits(/^refund +([\d.]+) to the payer/m.exec(third.output)?.[1] ?? 'x', 6)
    const closedSpent = parseUnits(/^closed .*\bspent ([\d.]+)/m.exec(third.output)![1]!, 6)
    expect(third.code).toBe(0)
    // What was spent is what the receipts said (the last one is the whole channel's), paid out exactly once.
    const spent = [...spentOf(first.output), ...spentOf(second.output), ...spentOf(third.output)]
    expect(spent.at(-1)).toBe(closedSpent)
    expect(payout).toBe(closedSpent)
    expect(payout + refund).toBe(1_000_000n)
    const [sellerAfter, payerAfter] = await Promise.all([balanceOf(client, demoRecipient), balanceOf(client, payer)])
    expect(sellerAfter - sellerBefore).toBe(payout)
    // The payer paid what was spent, and the open transaction's fee (in pathUSD, well under a cent).
    const fee = payerBefore - payerAfter - payout
    expect(fee).toBeGreaterThanOrEqual(0n)
    expect(fee).toBeLessThan(10_000n)
  })

  it('behavior: Ctrl-C (SIGINT to the process group) stops the chain, the gateway and every other process, and removes the state', async () => {
    const exited = new Promise<void>((resolve) => start.once('exit', () => resolve()))
    process.kill(-start.pid!, 'SIGINT')
    // npm itself ends on the signal; the script it ran stops the rest.
    await exited
    const deadline = Date.now() + 10_000
    while (processes.some(alive) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100))
    expect(processes.filter(alive)).toEqual([])
    expect(existsSync(demoDir(port))).toBe(false)
    await expect(fetch(`${gateway}/__mpp/health`)).rejects.toThrow()
    await expect(fetch(rpc, { method: 'POST', body: '{}' })).rejects.toThrow()
  })
})
