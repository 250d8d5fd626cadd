/**
 * Session vouchers against one channel Durable Object (the real ChannelState), through mpp-edge's `pay.session`
 * middleware with the real tempo session method. The voucher path makes no RPC call, so the channel is seeded:
 * its object records an open (the chain state the method would have read after broadcasting it) with a large
 * deposit, and every voucher after that is the payer's, signed with the test kit before it is timed. Each voucher
 * is a content request charging one unit: parse, binding, route, descriptor, the voucher's EIP-712 signer recovery
 * (secp256k1), the channel object's acceptance and charge (SQLite), and the receipt.
 *
 * The channel object paces vouchers at the spec's 10 per second per channel (a burst of 10 taken at once): a burst
 * shows the cost of one voucher, a longer run shows the pace holding.
 */
import { Hono } from 'hono'
import { type Address, type Hex, zeroAddress } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import * as Challenge from '../../src/core/Challenge.js'
import * as Credential from '../../src/core/Credential.js'
import { tempo } from '../../src/methods/tempo/method.js'
import { tempoSession } from '../../src/methods/tempo/session-method.js'
import { tip20ChannelReserve } from '../../src/methods/tempo/session/abi.js'
import { type Descriptor, channelId as channelIdOf, normalizeDescriptor } from '../../src/methods/tempo/session/descriptor.js'
import { signVoucher } from '../../src/methods/tempo/session/voucher.js'
import { payment } from '../../src/middleware/payment.js'
import { channelStore } from '../../src/storage/channel-store.js'
import type { ChannelState } from '../../src/storage/ChannelState.js'
import type { ReplayGuard } from '../../src/storage/ReplayGuard.js'
import { replayStore } from '../../src/storage/replay-store.js'
import { secret } from './fixture.js'

type Env = { Bindings: { CHANNEL_STATE: DurableObjectNamespace<ChannelState>; REPLAY_GUARD: DurableObjectNamespace<ReplayGuard> } }

const chainId = 42431
const pathUsd: Address = '0x20c0000000000000000000000000000000000000'
const at = { escrow: tip20ChannelReserve as Address, chainId }
const price = 10n // 0.00001 pathUSD per request: base units charged per voucher
const url = 'http://127.0.0.1/session'

// A fixed payee key (random values are not allowed at module scope in workerd); it never signs anything here.
const payeeKey = `0x${'7a'.repeat(32)}` as const
const payee = privateKeyToAccount(payeeKey).address
const pay = payment<Env>({
  realm: 'bench.example.com',
  secret,
  methods: [tempo({ chainId, recipient: payee })],
  store: (c) => replayStore(c.env.REPLAY_GUARD),
  session: { method: tempoSession({ chainId, recipient: payee, privateKey: payeeKey }), channels: (c) => channelStore(c.env.CHANNEL_STATE) },
})
const app = new Hono<Env>()
app.on(['GET', 'POST', 'HEAD'], '/session', pay.session({ amount: '0.00001', unitType: 'request' }), (c) => c.json({ ok: true }))

type Channel = { payer: ReturnType<typeof privateKeyToAccount>; descriptor: Descriptor; channelId: Hex; challenge: Challenge.Challenge; cumulative: bigint }
let channel: Promise<Channel> | undefined

// A payer, its channel seeded in its object as after an open, and a session challenge for the route.
async function seeded(env: Env['Bindings']): Promise<Channel> {
  const payer = privateKeyToAccount(generatePrivateKey())
  const random = () => `0x${[...crypto.getRandomValues(new Uint8Array(32))].map((b) => b.toString(16).padStart(2, '0')).join('')}` as Hex
  const descriptor = normalizeDescriptor({ payer: payer.address, payee, operator: zeroAddress, token: pathUsd, salt: random(), authorizedSigner: zeroAddress, expiringNonceHash: random() })
  const channelId = channelIdOf(descriptor, at)
  const first = 1_000n
  const signature = await signVoucher(payer, { channelId, cumulativeAmount: first }, at)
  const state = { channelId, chainId, escrow: tip20ChannelReserve as Address, descriptor, deposit: 10n ** 15n, settled: 0n, closeRequestedAt: 0n }
  const opened = await channelStore(env.CHANNEL_STATE).channel(channelId).open(state, { cumulative: first, signature, signer: payer.address.toLowerCase() as Hex }, 0n)
  if (!opened.ok) throw new Error(`seeding the channel failed: ${JSON.stringify(opened.failure)}`)
  const unpaid = await app.fetch(new Request(url), env)
  const [challenge] = Challenge.fromResponse(unpaid)
  if (!challenge) throw new Error(`no session challenge (${unpaid.status})`)
  return { payer, descriptor, channelId, challenge, cumulative: first }
}

/** What one run of vouchers measured: each voucher's latency (ms, in-isolate clock), and the run's wall time. */
export type VoucherRun = { n: number; wallMs: number; latencies: number[] }

const signed: string[] = []

async function opened(env: Env['Bindings']): Promise<Channel> {
  channel ??= seeded(env).catch((error) => {
    channel = undefined
    throw error
  })
  return channel
}

/**
 * Signs the payer's next `n` vouchers (the payer's work, kept out of the measured runs).
 * @example
 * await prepare(env, 10)
 */
export async function prepare(env: Env['Bindings'], n: number): Promise<number> {
  const c = await opened(env)
  for (let i = 0; i < n; i++) {
    c.cumulative += price
    const signature = await signVoucher(c.payer, { channelId: c.channelId, cumulativeAmount: c.cumulative }, at)
    const payload = { action: 'voucher', channelId: c.channelId, descriptor: c.descriptor, cumulativeAmount: c.cumulative.toString(), signature }
    signed.push(Credential.serialize({ challenge: c.challenge, payload }))
  }
  return signed.length
}

/**
 * Sends the next `n` vouchers on the channel, one after another, each a content request served 200 (signing any
 * not prepared first).
 * @example
 * const run = await vouchers(env, 10)
 */
export async function vouchers(env: Env['Bindings'], n: number): Promise<VoucherRun> {
  if (signed.length < n) await prepare(env, n - signed.length)
  const batch = signed.splice(0, n)
  const latencies: number[] = []
  const start = Date.now()
  for (const authorization of batch) {
    const begun = Date.now()
    const response = await app.fetch(new Request(url, { headers: { authorization } }), env)
    const text = await response.text()
    latencies.push(Date.now() - begun)
    if (response.status !== 200) throw new Error(`voucher answered ${response.status}: ${text.slice(0, 300)}`)
  }
  return { n, wallMs: Date.now() - start, latencies }
}
