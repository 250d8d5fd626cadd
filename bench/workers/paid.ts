/**
 * A valid credential through mpp-edge's middleware with the outside world replaced by stubs: the replay store
 * (instead of the Durable Object), the Tempo JSON-RPC endpoint and the Stripe API (instead of `fetch`), each
 * answering at once (or after a fixed delay, `latency`). What remains is our own work per paid request: parse,
 * binding, route, expiry, schema, `begin`, the method's checks (for Tempo pull the transaction decode, for a
 * sponsored pull the sender recovery and the co-signature), `settle`, the receipt and `deliver`. The stubs accept the same credential
 * every time (they are not a replay store), so one credential per method is sent again and again.
 * Bench only: the product code is configured through its public options (`store`, `fetch`).
 */
import { Hono } from 'hono'
import { encodeAbiParameters, encodeEventTopics, encodeFunctionData, keccak256, maxUint256, type Address, type Hex } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import * as Secp256k1 from 'ox/Secp256k1'
import * as SignatureEnvelope from 'ox/tempo/SignatureEnvelope'
import * as TxEnvelopeTempo from 'ox/tempo/TxEnvelopeTempo'
import * as Challenge from '../../src/core/Challenge.js'
import * as Credential from '../../src/core/Credential.js'
import type { ReplayStore } from '../../src/core/ReplayStore.js'
import { tip20 } from '../../src/methods/tempo/abi.js'
import { attributionMemo } from '../../src/methods/tempo/memo.js'
import { tempo } from '../../src/methods/tempo/method.js'
import { stripe } from '../../src/methods/stripe/method.js'
import { payment } from '../../src/middleware/payment.js'
import { secret } from './fixture.js'

const realm = 'bench.example.com'
const recipient: Address = '0x742d35Cc6634c0532925a3b844bC9e7595F8fE00'
const pathUsd: Address = '0x20c0000000000000000000000000000000000000'
const amount = 10_000n // 0.01 pathUSD

/** The fixed delay of every stub answer, in ms (0: the answer is ready at once, no timer turn). */
let latencyMs = 0
const delay = (): Promise<void> => (latencyMs > 0 ? new Promise<void>((resolve) => setTimeout(resolve, latencyMs)) : Promise.resolve())

/** Calls the stubs answered, by name, so the report can say what each paid request did. */
export const calls = new Map<string, number>()
const count = (name: string) => calls.set(name, (calls.get(name) ?? 0) + 1)

// Accepts every step: a replay store that never refuses, at a fixed latency.
const store: ReplayStore = {
  begin: async () => (count('store.begin'), await delay(), { status: 'fresh' }),
  commit: async () => (count('store.commit'), await delay(), true),
  renew: async () => (count('store.renew'), await delay(), true),
  fail: async () => (count('store.fail'), await delay()),
  claimReference: async () => (count('store.claimReference'), await delay(), true),
  settle: async () => (count('store.settle'), await delay(), true),
  deliver: async () => (count('store.deliver'), await delay(), true),
  release: async () => (count('store.release'), await delay()),
}

// Receipt logs of the one transfer each Tempo credential makes, by payer: Transfer and its TransferWithMemo twin.
const logsFor = (from: Address, memo: Hex) => [
  { address: pathUsd, topics: encodeEventTopics({ abi: tip20, eventName: 'Transfer', args: { from, to: recipient } }), data: encodeAbiParameters([{ type: 'uint256' }], [amount]) },
  { address: pathUsd, topics: encodeEventTopics({ abi: tip20, eventName: 'TransferWithMemo', args: { from, to: recipient, memo } }), data: encodeAbiParameters([{ type: 'uint256' }], [amount]) },
]
type Receipt = { from: Address; logs: ReturnType<typeof logsFor> }
const receipts = new Map<string, Receipt>()
// What the transaction being pulled pays: the server broadcasts it (a sponsored one co-signed, so its hash is
// known only then) and the receipt is found after the broadcast; once read, it is "unsent" again.
const pulled = new Map<string, Receipt>()
const broadcast = new Set<string>()
const pushed = new Set<string>()

let current = ''
const plenty = encodeAbiParameters([{ type: 'uint256' }], [maxUint256 / 2n])
const hashes = new Map<Hex, Hex>()
const rpcStub = (async (_input: RequestInfo | URL, init?: RequestInit) => {
  const body = JSON.parse(String(init?.body)) as { id: number; method: string; params: unknown[] }
  count(`rpc.${body.method}`)
  await delay()
  // As a node answers: JSON with its length (ASCII only).
  const answer = (result: unknown) => {
    const text = JSON.stringify({ jsonrpc: '2.0', id: body.id, result })
    return new Response(text, { headers: { 'content-type': 'application/json', 'content-length': String(text.length) } })
  }
  switch (body.method) {
    case 'eth_chainId':
      return answer('0xa5bf')
    case 'eth_blockNumber':
      return answer('0x10')
    case 'eth_getBlockByNumber':
      // Mined now: after the challenge was issued.
      return answer({ number: body.params[0], timestamp: `0x${Math.floor(Date.now() / 1000).toString(16)}` })
    case 'eth_call': {
      const data = (body.params[0] as { data?: string }).data ?? ''
      // balanceOf: plenty; a simulated transfer: succeeds.
      return answer(data.startsWith('0x70a08231') ? plenty : '0x')
    }
    case 'eth_sendRawTransaction': {
      // The same transaction comes again and again: the stub hashes it once (its own work is not what is measured).
      const serialized = body.params[0] as Hex
      const hash = hashes.get(serialized) ?? hashes.set(serialized, keccak256(serialized)).get(serialized)!
      if (!receipts.has(hash) && pulled.has(current)) receipts.set(hash, pulled.get(current)!)
      broadcast.add(hash)
      return answer(hash)
    }
    case 'eth_getTransactionByHash':
      return answer(null)
    case 'eth_getTransactionReceipt': {
      const hash = body.params[0] as string
      const found = receipts.get(hash)
      if (!found || (!pushed.has(hash) && !broadcast.delete(hash))) return answer(null)
      return answer({ transactionHash: hash, status: '0x1', blockNumber: '0x1', from: found.from, logs: found.logs })
    }
    default:
      return new Response(JSON.stringify({ jsonrpc: '2.0', id: body.id, error: { code: -32601, message: 'not stubbed' } }))
  }
}) as typeof fetch

const stripeStub = (async (_input: RequestInfo | URL, init?: RequestInit) => {
  count('stripe.createPaymentIntent')
  await delay()
  const form = new URLSearchParams(String(init?.body))
  const paymentIntent = {
    id: 'pi_bench0123456789abcdef',
    object: 'payment_intent',
    status: 'succeeded',
    amount: Number(form.get('amount')),
    currency: form.get('currency'),
    metadata: { challenge_id: form.get('metadata[challenge_id]') },
  }
  return new Response(JSON.stringify(paymentIntent), { headers: { 'content-type': 'application/json' } })
}) as typeof fetch

// A fixed bench key (random values are not allowed at module scope in workerd); it never signs anything real.
const sponsorKey = `0x${'5e'.repeat(32)}` as const
const common = { chainId: 42431, recipient, fetch: rpcStub, pollIntervalMs: 100 }
const tempoPlain = tempo(common)
// The chain bounds a sponsored transaction's validity to 30 s; with stubs instead of a chain the credential may be
// sent again for longer, so the bench's policy allows the whole run.
const tempoSponsored = tempo({
  ...common,
  feePayer: { privateKey: sponsorKey, gate: { acquire: async () => async () => {} }, policy: { maxValidityWindowSeconds: 900 } },
})
const stripeMethod = stripe({ secretKey: 'sk_test_bench0123456789', networkId: 'profile_bench', fetch: stripeStub })

const options = { realm, secret, store: () => store, ttlSeconds: 3600 }
const plain = payment({ ...options, methods: [tempoPlain, stripeMethod] })
const sponsored = payment({ ...options, methods: [tempoSponsored] })

/** The paid routes, one per case. */
export const app = new Hono()
app.get('/pull', plain.charge({ amount: '0.01' }, { methods: ['tempo'] }), (c) => c.json({ ok: true }))
app.get('/push', plain.charge({ amount: '0.01' }, { methods: ['tempo'] }), (c) => c.json({ ok: true }))
app.get('/sponsored', sponsored.charge({ amount: '0.01' }), (c) => c.json({ ok: true }))
app.get('/stripe', plain.charge({ amount: '0.01', currency: 'usd' }, { methods: ['stripe'] }), (c) => c.json({ ok: true }))

/** The cases measured: Tempo pull, pull with fee sponsorship, push, Stripe. */
export const cases = ['pull', 'sponsored', 'push', 'stripe'] as const

// A payer-signed Tempo transaction paying the challenge, as a client signs it (see src/client/wallets/tempo.ts).
function signTransfer(challenge: Challenge.Challenge, isSponsored: boolean): { serialized: Hex; sender: Address } {
  const key = generatePrivateKey()
  const memo = attributionMemo({ realm, challengeId: challenge.id })
  const envelope = TxEnvelopeTempo.from({
    chainId: 42431,
    calls: [{ to: pathUsd, data: encodeFunctionData({ abi: tip20, functionName: 'transferWithMemo', args: [recipient, amount, memo] }) }],
    gas: 200_000n,
    maxFeePerGas: 20_000_000_000n,
    maxPriorityFeePerGas: 1n,
    nonceKey: maxUint256,
    nonce: 0n,
    // Valid for the whole run (the stubs are not a chain; see the sponsor policy above).
    validBefore: Math.floor(Date.now() / 1000) + 890,
    ...(isSponsored ? { feePayerSignature: null } : { feeToken: pathUsd }),
  })
  const signature = SignatureEnvelope.from(Secp256k1.sign({ payload: TxEnvelopeTempo.getSignPayload(envelope), privateKey: key }))
  const sender = privateKeyToAccount(key).address
  const serialized = isSponsored
    ? TxEnvelopeTempo.serialize(envelope, { signature, format: 'feePayer', sender })
    : TxEnvelopeTempo.serialize(envelope, { signature })
  return { serialized, sender }
}

/**
 * Gets a challenge for a case and pays it; returns the Authorization value to send again and again.
 * @example
 * const authorization = await credentialFor('pull')
 */
export async function credentialFor(kind: (typeof cases)[number]): Promise<string> {
  const unpaid = await app.fetch(new Request(`http://127.0.0.1/${kind}`))
  const [challenge] = Challenge.fromResponse(unpaid)
  if (!challenge) throw new Error(`no challenge for ${kind}`)
  const memo = attributionMemo({ realm, challengeId: challenge.id })
  if (kind === 'stripe') return Credential.serialize({ challenge, payload: { spt: 'spt_bench_0123456789' } })
  if (kind === 'push') {
    const hash = keccak256(crypto.getRandomValues(new Uint8Array(32)))
    const from = privateKeyToAccount(generatePrivateKey()).address
    receipts.set(hash, { from, logs: logsFor(from, memo) })
    pushed.add(hash)
    return Credential.serialize({ challenge, payload: { type: 'hash', hash } })
  }
  const { serialized, sender } = signTransfer(challenge, kind === 'sponsored')
  const credential = Credential.serialize({ challenge, payload: { type: 'transaction', signature: serialized } })
  pulled.set(kind, { from: sender, logs: logsFor(sender, memo) })
  return credential
}

/**
 * Runs `n` paid requests of a case in-process, one after another; every one must answer 200.
 * @example
 * await run('pull', authorization, 20, 0)
 */
export async function run(kind: (typeof cases)[number], authorization: string, n: number, latency: number): Promise<void> {
  latencyMs = latency
  current = kind
  for (let i = 0; i < n; i++) {
    const response = await app.fetch(new Request(`http://127.0.0.1/${kind}`, { headers: { authorization } }))
    const text = await response.text()
    if (response.status !== 200) throw new Error(`${kind}: ${response.status} ${text}`)
  }
}
