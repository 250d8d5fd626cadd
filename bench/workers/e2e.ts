/**
 * End-to-end latency of one paid request through mpp-edge's middleware with everything real: the ReplayGuard
 * Durable Objects, the local Tempo chain (anvil) and the local Stripe API. Each payment is made as a client
 * makes it (a fresh funded payer per Tempo payment: anvil mines one expiring-nonce transaction per account),
 * and only the request carrying the credential is timed, in-isolate (the clock advances across I/O).
 */
import { Hono } from 'hono'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import * as Challenge from '../../src/core/Challenge.js'
import * as Credential from '../../src/core/Credential.js'
import { attributionMemo } from '../../src/methods/tempo/memo.js'
import { tempo } from '../../src/methods/tempo/method.js'
import { stripe } from '../../src/methods/stripe/method.js'
import { payment } from '../../src/middleware/payment.js'
import { replayStore } from '../../src/storage/replay-store.js'
import type { ReplayGuard } from '../../src/storage/ReplayGuard.js'
import { chainClient, fund, fundedAccount, pathUsd, pushPayment, signPayment, transferCall } from '../../test/support/tempo-chain.js'
import { spt, testSecretKey } from '../../src/testing/stripe-fixtures.js'
import { secret } from './fixture.js'

type Env = { Bindings: { REPLAY_GUARD: DurableObjectNamespace<ReplayGuard> } }

/** The cases measured end to end. */
export const cases = ['pull', 'sponsored', 'push', 'stripe'] as const
export type Case = (typeof cases)[number]

const realm = 'bench.example.com'
const recipient = '0x742d35Cc6634c0532925a3b844bC9e7595F8fE00'
let built: { app: Hono<Env>; chain: ReturnType<typeof chainClient> } | undefined

/**
 * Pays `n` requests of a case end to end; returns each paid request's latency in ms.
 * @example
 * const ms = await e2e(env, 'pull', 5, anvilUrl, stripeUrl)
 */
export async function e2e(env: Env['Bindings'], kind: Case, n: number, anvil: string, stripeApi: string): Promise<number[]> {
  built ??= await build(anvil, stripeApi)
  const { app, chain } = built
  const latencies: number[] = []
  for (let i = 0; i < n; i++) {
    const unpaid = await app.fetch(new Request(`http://127.0.0.1/${kind}`), env)
    const [challenge] = Challenge.fromResponse(unpaid)
    const memo = attributionMemo({ realm, challengeId: challenge!.id })
    const request = challenge!.request as { amount: string }
    let payload: Record<string, unknown>
    if (kind === 'stripe') payload = { spt: spt('ok') }
    else {
      const payer = await fundedAccount(chain, 1_000_000n)
      const calls = [transferCall(pathUsd, recipient, BigInt(request.amount), memo)]
      if (kind === 'push') payload = { type: 'hash', hash: await pushPayment(chain, payer, calls) }
      else {
        // The chain refuses an expiring nonce valid more than 30 s ahead.
        const validBefore = Math.floor(Date.now() / 1000) + 25
        payload = { type: 'transaction', signature: await signPayment(chain, payer, { calls, validBefore, sponsored: kind === 'sponsored' }) }
      }
    }
    const authorization = Credential.serialize({ challenge: challenge!, payload })
    const start = Date.now()
    const paid = await app.fetch(new Request(`http://127.0.0.1/${kind}`, { headers: { authorization } }), env)
    const text = await paid.text()
    latencies.push(Date.now() - start)
    if (paid.status !== 200) throw new Error(`${kind}: ${paid.status} ${text}`)
  }
  return latencies
}

// The sponsor is a fresh account funded from anvil's dev account, so it can pay the fees it sponsors.
async function build(anvil: string, stripeApi: string) {
  const key = generatePrivateKey()
  const account = privateKeyToAccount(key)
  const chain = chainClient(anvil)
  await fund(chain, account.address, 1_000_000_000n)
  const store = (c: { env: Env['Bindings'] }) => replayStore(c.env.REPLAY_GUARD)
  const common = { chainId: 42431, recipient, rpcUrl: anvil, pollIntervalMs: 50 }
  const plain = payment<Env>({
    realm,
    secret,
    store,
    methods: [tempo(common), stripe({ secretKey: testSecretKey, networkId: 'profile_bench', apiBase: stripeApi })],
  })
  const sponsored = payment<Env>({ realm, secret, store, methods: [tempo({ ...common, feePayer: { privateKey: key } })] })
  const app = new Hono<Env>()
  app.get('/pull', plain.charge({ amount: '0.01' }, { methods: ['tempo'] }), (c) => c.json({ ok: true }))
  app.get('/push', plain.charge({ amount: '0.01' }, { methods: ['tempo'] }), (c) => c.json({ ok: true }))
  app.get('/sponsored', sponsored.charge({ amount: '0.01' }), (c) => c.json({ ok: true }))
  app.get('/stripe', plain.charge({ amount: '0.01', currency: 'usd' }, { methods: ['stripe'] }), (c) => c.json({ ok: true }))
  return { app, chain }
}
