/**
 * A bounded load test of the gateway as a seller runs it: `npm run dev` (wrangler dev, the repository's
 * wrangler.toml and pricing.json) on loopback in front of an origin that counts what it serves, Tempo on the
 * test chain. 200 requests at concurrency 8 mix unpaid requests, valid payments, replays of spent credentials
 * and racing duplicates. Whatever the interleaving: no payment is served twice, every success is a transfer on
 * chain and every transfer a success, and each answer is 200, 402, 409 or 503 with Retry-After, where every
 * 409 and 503 succeeds when retried.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { type Server, createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Address, type Hex, parseAbiItem } from 'viem'
import { type PrivateKeyAccount, generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { getLogs } from 'viem/actions'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as Challenge from '../../src/core/Challenge.js'
import * as Credential from '../../src/core/Credential.js'
import * as Receipt from '../../src/core/Receipt.js'
import type { TempoRequest } from '../../src/methods/tempo/method.js'
import { attributionMemo } from '../../src/methods/tempo/memo.js'
import { freePort } from '../../src/testing/node/ports.js'
import { chainClient, fund, pathUsd, signPayment, transferCall } from '../support/tempo-chain.js'

const rpc = `http://127.0.0.1:${process.env.MPP_TEST_ANVIL_PORT}`
const client = chainClient(rpc)
const pricing = JSON.parse(readFileSync(new URL('../../pricing.json', import.meta.url), 'utf8'))
const recipient = pricing.methods.tempo.recipient as Address
const concurrency = 8
const total = 200

type Answer = { status: number; retryAfter: string | null; reference?: string | undefined; body: string }

describe('load: npm run dev under mixed paid traffic', () => {
  let origin: Server
  let dev: ChildProcess
  let gateway = ''
  let output = ''
  const state = mkdtempSync(join(tmpdir(), 'mpp-load-state-'))
  /** Requests the origin served, by path. */
  const served = new Map<string, number>()
  const payers: PrivateKeyAccount[] = []

  beforeAll(async () => {
    origin = createServer((req, res) => {
      const path = new URL(req.url!, 'http://origin').pathname
      const n = (served.get(path) ?? 0) + 1
      served.set(path, n)
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ path, served: n }))
    })
    const originPort = await freePort()
    await new Promise<void>((resolve) => origin.listen(originPort, '127.0.0.1', resolve))
    const port = await freePort()
    gateway = `http://127.0.0.1:${port}`
    dev = spawn('npm', ['run', 'dev', '--', '--persist-to', state], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        PORT: String(port),
        CI: '1',
        ORIGIN_URL: `http://127.0.0.1:${originPort}`,
        TEMPO_RPC_URL: rpc,
        STRIPE_SECRET_KEY: 'sk_test_unused',
        // Limits per client IP would answer 429 to one loopback client sending 200 requests.
        RATE_LIMIT_CHALLENGES: '0',
        RATE_LIMIT_VERIFICATIONS: '0',
      },
    })
    dev.stdout!.on('data', (chunk) => (output += chunk))
    dev.stderr!.on('data', (chunk) => (output += chunk))
    // One payer per worker; on the T4 chain each pays any number of times.
    for (let i = 0; i < concurrency; i++) payers.push(privateKeyToAccount(generatePrivateKey()))
    await Promise.all(payers.map((payer) => fund(client, payer.address, 10_000_000n)))
    const deadline = Date.now() + 50_000
    for (;;) {
      if (dev.exitCode !== null) throw new Error(`npm run dev exited:\n${output}`)
      if (await fetch(`${gateway}/__mpp/health`).then((r) => r.ok, () => false)) break
      if (Date.now() > deadline) throw new Error(`npm run dev did not start:\n${output}`)
      await new Promise((r) => setTimeout(r, 250))
    }
  }, 60_000)

  afterAll(async () => {
    if (dev?.pid && dev.exitCode === null) {
      const exited = new Promise((resolve) => dev.once('exit', resolve))
      process.kill(-dev.pid, 'SIGTERM')
      await exited
    }
    await new Promise((resolve) => origin?.close(resolve))
    rmSync(state, { recursive: true, force: true })
  })

  it('behavior: 200 requests at concurrency 8 — no double delivery, successes equal transfers on chain, only 200/402/409/503 answers, every 409/503 succeeds when retried', { timeout: 60_000 }, async () => {
    const answers: Answer[] = []
    let sent = 0
    const send = async (path: string, headers: Record<string, string> = {}): Promise<Answer> => {
      sent++
      const res = await fetch(`${gateway}${path}`, { headers })
      const receipt = res.headers.get('payment-receipt')
      const answer = { status: res.status, retryAfter: res.headers.get('retry-after'), reference: receipt ? Receipt.deserialize(receipt).reference : undefined, body: await res.text() }
      answers.push(answer)
      return answer
    }
    /** A 409 or 503 is retried (after its Retry-After, shortened for the test) until it succeeds. */
    let retried = 0
    const settle = async (path: string, headers: Record<string, string>, first: Answer): Promise<Answer> => {
      let answer = first
      for (let i = 0; (answer.status === 409 || answer.status === 503) && i < 20; i++) {
        await new Promise((r) => setTimeout(r, Math.min(Number(answer.retryAfter ?? 1), 2) * 250))
        answer = await send(path, headers)
        retried++
        if (answer.status !== 409 && answer.status !== 503) expect(answer.status, answer.body).toBe(200)
      }
      expect([409, 503], answer.body).not.toContain(answer.status)
      return answer
    }
    const credentialFor = async (path: string, payer: PrivateKeyAccount) => {
      sent++
      const res = await fetch(`${gateway}${path}`)
      answers.push({ status: res.status, retryAfter: res.headers.get('retry-after'), body: '' })
      await res.body?.cancel()
      expect(res.status).toBe(402)
      const challenge = Challenge.fromResponse(res)[0]! as Challenge.Challenge & { request: TempoRequest }
      const memo = attributionMemo({ realm: challenge.realm, challengeId: challenge.id })
      const validBefore = Math.min(Math.floor(Date.now() / 1000) + 25, Math.floor(Date.parse(challenge.expires!) / 1000))
      const signature = await signPayment(client, payer, { calls: [transferCall(pathUsd, recipient, BigInt(challenge.request.amount), memo)], validBefore })
      return Credential.serialize({ challenge, payload: { type: 'transaction', signature }, source: `did:pkh:eip155:42431:${payer.address}` })
    }

    // The work, in a fixed mix: 51 unpaid requests (1 request each), 35 payments followed by a replay of the
    // spent credential (3 each), 11 payments sent three times at once with one Idempotency-Key (4 each).
    type Job = { kind: 'unpaid' | 'pay' | 'race'; path: string }
    const jobs: Job[] = [
      ...Array.from({ length: 51 }, (_, i) => ({ kind: 'unpaid' as const, path: `/v1/reports/unpaid-${i}` })),
      ...Array.from({ length: 35 }, (_, i) => ({ kind: 'pay' as const, path: `/v1/reports/paid-${i}` })),
      ...Array.from({ length: 11 }, (_, i) => ({ kind: 'race' as const, path: `/v1/reports/raced-${i}` })),
    ]
    // Interleaved, so unpaid requests, payments and races run side by side.
    jobs.sort((a, b) => (Number(/\d+$/.exec(a.path)![0]) % 7) - (Number(/\d+$/.exec(b.path)![0]) % 7))
    const paidPaths = new Set<string>()
    const successes = new Map<string, string>() // reference → path

    const runJob = async (job: Job, payer: PrivateKeyAccount) => {
      if (job.kind === 'unpaid') {
        expect((await send(job.path)).status).toBe(402)
        return
      }
      const authorization = await credentialFor(job.path, payer)
      paidPaths.add(job.path)
      if (job.kind === 'pay') {
        const paid = await settle(job.path, { authorization }, await send(job.path, { authorization }))
        expect(paid.status, paid.body).toBe(200)
        successes.set(paid.reference!, job.path)
        // The spent credential again, without an Idempotency-Key: refused, the origin not called.
        expect((await send(job.path, { authorization })).status).toBe(402)
        return
      }
      // Three copies at once with one Idempotency-Key: one is served; the others wait (409) and then get the
      // stored answer, or, arriving just as the challenge is spent and before the answer is stored, are
      // refused as already used (402). None reaches the origin again.
      const headers = { authorization, 'idempotency-key': `load-${job.path}` }
      const raced = await Promise.all([0, 1, 2].map(async () => settle(job.path, headers, await send(job.path, headers))))
      const served = raced.filter((answer) => answer.status === 200)
      expect(served.length, raced.map((answer) => answer.body).join('\n')).toBeGreaterThanOrEqual(1)
      for (const answer of raced) if (answer.status !== 200) expect(answer.body).toMatch(/already used/)
      expect(new Set(served.map((answer) => answer.reference)).size).toBe(1)
      successes.set(served[0]!.reference!, job.path)
    }

    const queue = [...jobs]
    await Promise.all(
      payers.map(async (payer) => {
        for (let job = queue.shift(); job; job = queue.shift()) await runJob(job, payer)
      }),
    )

    // Only the answers the protocol allows, each 503 with Retry-After.
    const statuses = new Set(answers.map((answer) => answer.status))
    for (const status of statuses) expect([200, 402, 409, 503]).toContain(status)
    for (const answer of answers) if (answer.status === 503) expect(answer.retryAfter).toBeTruthy()
    expect(sent).toBeGreaterThanOrEqual(total)
    console.log(`load: ${sent} requests (${retried} retries of a 409 or 503), answers ${JSON.stringify(Object.fromEntries([...statuses].map((status) => [status, answers.filter((a) => a.status === status).length])))}`)
    // No double delivery: the origin served each paid path exactly once, and nothing unpaid.
    for (const path of paidPaths) expect(served.get(path), path).toBe(1)
    for (const [path] of served) expect(paidPaths.has(path), path).toBe(true)
    // Exactly as many successes as the chain shows transfers from these payers to the recipient.
    const logs = await getLogs(client, {
      address: pathUsd,
      event: parseAbiItem('event TransferWithMemo(address indexed from, address indexed to, uint256 amount, bytes32 indexed memo)'),
      args: { from: payers.map((payer) => payer.address), to: recipient },
      fromBlock: 0n,
    })
    expect(successes.size).toBe(46)
    expect(new Set(logs.map((log) => log.transactionHash as Hex))).toEqual(new Set(successes.keys()))
  })
})
