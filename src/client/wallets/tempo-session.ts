/**
 * @module The paying side of Tempo sessions (draft-tempo-session-00, v2, and v1 on an escrow contract the wallet is
 * given): a wallet for `paymentFetch` that opens a payment channel within a deposit limit, pays each request with a
 * cumulative EIP-712 voucher, answers a metered stream's `payment-need-voucher` events (topping up the deposit when
 * needed), and closes the channel. It answers each challenge in the challenge's own protocol.
 */
import { type Address, type Hex, createClient, encodeFunctionData, http, keccak256, toHex } from 'viem'
import type { LocalAccount } from 'viem/accounts'
import { prepareTransactionRequest, signTransaction } from 'viem/actions'
import * as v from 'valibot'
import { type Challenge, credentialHeader } from '../../core/Challenge.js'
import * as Credential from '../../core/Credential.js'
import * as Receipt from '../../core/Receipt.js'
import * as Session from '../../core/Session.js'
import { chainFor } from '../../methods/tempo/chains.js'
import { escrowAbi } from '../../methods/tempo/session/abi.js'
import { channelId as channelIdOf, descriptorTuple } from '../../methods/tempo/session/descriptor.js'
import { expiringNonceHash } from '../../methods/tempo/session/nonce-hash.js'
import { channelIdV1, streamChannelAbi } from '../../methods/tempo/session/v1.js'
import { signVoucher } from '../../methods/tempo/session/voucher.js'
import { decodeTransaction } from '../../methods/tempo/transaction.js'
import type { Wallet } from '../fetch.js'

/** Options of `tempoSessionWallet`. */
export type TempoSessionWalletOptions = {
  /** The payer's key (a viem local account). */
  account: LocalAccount
  /** JSON-RPC endpoint of the Tempo chain. */
  rpcUrl: string
  /** The chain the payer pays on; challenges for other chains are refused. */
  chainId: number
  /** The most this wallet deposits into one channel, in base units (opens and top-ups together). */
  maxDeposit: bigint
  /** Deposit of a new channel when the server suggests none (default `maxDeposit`). */
  deposit?: bigint | undefined
  /** Escrows this wallet opens channels on (default: the TIP-1034 channel reserve precompile); name a v1 stream channel contract to pay v1 challenges on it. */
  escrows?: readonly string[] | undefined
  /** Longest time a signed open or topUp stays valid, in seconds (default 25). */
  validitySeconds?: number | undefined
  /** The fetch the RPC client uses (the platform's by default); requests to servers go through paymentFetch's. */
  fetch?: typeof fetch | undefined
  /** Channels to resume, as `onChannel` reported them earlier (a payer's saved state): their deposit is reused. */
  channels?: readonly SavedChannel[] | undefined
  /** Told after each change to a channel (opened, a voucher signed, topped up, a receipt read, closed): to show or save it. */
  onChannel?: ((change: ChannelChange) => void) | undefined
}

/**
 * Raised when the session wallet will not pay (another chain or escrow, over the deposit limit, malformed request).
 * @example
 * if (error instanceof TempoSessionWalletError) console.warn(error.message)
 */
export class TempoSessionWalletError extends Error {
  override readonly name = 'TempoSessionWalletError'
}

/** What the wallet knows of one channel. */
export type ChannelEntry = {
  channelId: Hex
  /** The session protocol the channel was opened with. */
  protocol: 'v1' | 'v2'
  descriptor: Session.Descriptor
  escrow: Address
  chainId: number
  deposit: bigint
  /** Highest cumulative amount signed. */
  signed: bigint
  /** Highest cumulative amount the server accepted, as the last receipt said. */
  accepted: bigint
  /** Spent, as the last receipt said. */
  spent: bigint
  /** The last challenge, for management requests (vouchers mid-stream, topUp, close). */
  challenge: Challenge
  /** The last resource the channel paid for. */
  url: string
  /** The fetch that reached it. */
  send: typeof fetch
  closed: boolean
}

/** A channel as plain JSON data (amounts as decimal strings), to keep between runs and resume with `channels`. */
export type SavedChannel = {
  channelId: Hex
  /** The session protocol (v2 when absent: state saved before v1 channels). */
  protocol?: 'v1' | 'v2' | undefined
  descriptor: Session.Descriptor
  escrow: Address
  chainId: number
  deposit: string
  signed: string
  accepted: string
  spent: string
  challenge: Challenge
  url: string
  closed: boolean
}

/** One change to a channel, as `onChannel` reports it; `cumulative` is the voucher's, `txHash` a close's. */
export type ChannelChange = {
  type: 'open' | 'voucher' | 'topUp' | 'receipt' | 'close'
  channel: SavedChannel
  cumulative?: string | undefined
  txHash?: string | undefined
}

/**
 * A channel entry as plain data.
 * @example
 * writeFileSync(file, JSON.stringify([...wallet.channels.values()].map(savedChannel)))
 */
export function savedChannel(entry: ChannelEntry): SavedChannel {
  const { send: _send, deposit, signed, accepted, spent, ...rest } = entry
  return { ...rest, deposit: deposit.toString(), signed: signed.toString(), accepted: accepted.toString(), spent: spent.toString() }
}

/** A session wallet: pays `tempo`/`session` challenges, and can close what it opened. */
export type SessionWallet = Wallet & {
  /** Channels by id. */
  channels: ReadonlyMap<string, ChannelEntry>
  /** Closes the channel that pays `url`'s server (cooperative close): answers the close receipt. */
  close: (url: string) => Promise<Session.SessionReceipt | undefined>
}

const precompile = '0x4d50500000000000000000000000000000000000'
const zero = '0x0000000000000000000000000000000000000000'

/**
 * A wallet that pays Tempo sessions with a local key.
 * @example
 * const wallet = tempoSessionWallet({ account, rpcUrl, chainId: 42431, maxDeposit: 1_000_000n })
 * const pay = paymentFetch({ wallets: [wallet], maxAmount: { '0x20c0000000000000000000000000000000000000': '1000' } })
 * await pay('https://api.example.com/chat') // opens a channel, then one voucher per request
 * await wallet.close('https://api.example.com/chat')
 */
export function tempoSessionWallet(options: TempoSessionWalletOptions): SessionWallet {
  const transport = http(options.rpcUrl, { retryCount: 0, ...(options.fetch ? { fetchFn: options.fetch } : {}) })
  const client = createClient({ chain: chainFor(options.chainId, options.rpcUrl), transport, account: options.account })
  const escrows = (options.escrows ?? [precompile]).map((e) => e.toLowerCase())
  const validity = options.validitySeconds ?? 25
  const channels = new Map<string, ChannelEntry>()
  // draft-tempo-session-00 leaves `source` optional; servers (mppx) bind it to the channel payer.
  const source = `did:pkh:eip155:${options.chainId}:${options.account.address}`
  // The open channel for each (server origin, escrow, payee, token): one channel pays every resource of a server.
  const byTerms = new Map<string, string>()
  const termsOf = (url: string, request: { methodDetails: { escrowContract: string }; recipient: string; currency: string }) =>
    `${new URL(url).origin}|${request.methodDetails.escrowContract}|${request.recipient}|${request.currency}`.toLowerCase()
  const changed = (type: ChannelChange['type'], entry: ChannelEntry, extra: { cumulative?: bigint; txHash?: string } = {}) =>
    options.onChannel?.({ type, channel: savedChannel(entry), ...(extra.cumulative !== undefined ? { cumulative: extra.cumulative.toString() } : {}), ...(extra.txHash ? { txHash: extra.txHash } : {}) })
  for (const saved of options.channels ?? []) {
    if (saved.closed || saved.chainId !== options.chainId || !escrows.includes(saved.escrow.toLowerCase())) continue
    const entry: ChannelEntry = { ...saved, protocol: saved.protocol ?? 'v2', deposit: BigInt(saved.deposit), signed: BigInt(saved.signed), accepted: BigInt(saved.accepted), spent: BigInt(saved.spent), send: options.fetch ?? fetch }
    channels.set(entry.channelId, entry)
    byTerms.set(termsOf(entry.url, { methodDetails: { escrowContract: entry.escrow }, recipient: entry.descriptor.payee, currency: entry.descriptor.token }), entry.channelId)
  }
  const entryFor = (url: string) => {
    const origin = new URL(url).origin.toLowerCase()
    for (const [terms, id] of byTerms) if (terms.startsWith(`${origin}|`)) return channels.get(id)
    return undefined
  }

  function parse(challenge: Challenge): Session.Request {
    if (challenge.method !== 'tempo' || challenge.intent !== 'session') throw new TempoSessionWalletError(`not a tempo session challenge: ${challenge.method} ${challenge.intent}`)
    const parsed = v.safeParse(Session.Request, challenge.request)
    if (!parsed.success) throw new TempoSessionWalletError(`the challenge request is not a session request: ${parsed.issues[0].message}`)
    const request = parsed.output
    if (request.methodDetails.chainId !== options.chainId) throw new TempoSessionWalletError(`the challenge asks for chain ${request.methodDetails.chainId}, this wallet pays on ${options.chainId}`)
    if (!escrows.includes(request.methodDetails.escrowContract)) throw new TempoSessionWalletError(`the challenge names escrow ${request.methodDetails.escrowContract}, which this wallet does not use`)
    return request
  }

  // draft-tempo-session-00, "Protocol Versions": the wallet answers in the challenge's protocol (absent means v1;
  // the precompile speaks only v2, so a challenge naming it without a protocol is v2).
  const protocolOf = (request: Session.Request) => request.methodDetails.sessionProtocol ?? (request.methodDetails.escrowContract === precompile ? 'v2' : 'v1')
  const at = (entry: { escrow: Address; chainId: number; protocol: 'v1' | 'v2' }) => ({ escrow: entry.escrow, chainId: entry.chainId, protocol: entry.protocol })
  const approve = (spender: Address, amount: bigint) =>
    encodeFunctionData({
      abi: [{ type: 'function', name: 'approve', stateMutability: 'nonpayable', inputs: [{ name: 'spender', type: 'address' }, { name: 'amount', type: 'uint256' }], outputs: [{ type: 'bool' }] }],
      functionName: 'approve',
      args: [spender, amount],
    })
  // A v1 escrow pulls deposits with transferFrom: the transaction approves the amount first.
  const fundingCalls = (request: Session.Request, data: Hex, amount: bigint) =>
    protocolOf(request) === 'v1'
      ? [{ to: request.currency, data: approve(request.methodDetails.escrowContract, amount) }, { to: request.methodDetails.escrowContract, data }]
      : [{ to: request.methodDetails.escrowContract, data }]

  async function voucherPayload(entry: ChannelEntry, cumulative: bigint, action: 'voucher' | 'close' = 'voucher') {
    if (cumulative > entry.deposit) throw new TempoSessionWalletError(`a voucher of ${cumulative} exceeds the channel deposit ${entry.deposit}`)
    const signature = await signVoucher(options.account, { channelId: entry.channelId, cumulativeAmount: cumulative }, at(entry))
    if (cumulative > entry.signed) entry.signed = cumulative
    // v1 payloads name the channel by id alone.
    return { action, channelId: entry.channelId, ...(entry.protocol === 'v2' ? { descriptor: entry.descriptor } : {}), cumulativeAmount: cumulative.toString(), signature }
  }

  // Signs one Tempo transaction with the funding calls (expiring nonce, bounded validity, fee-payer hand-off when sponsored).
  async function escrowTransaction(challenge: Challenge, request: Session.Request, calls: { to: Address; data: Hex }[]): Promise<Hex> {
    // A test chain's clock can run ahead of ours: the window starts at the later of the two.
    const head = (await client.request({ method: 'eth_getBlockByNumber', params: ['latest', false] } as never)) as { timestamp: Hex }
    const now = Math.max(Math.floor(Date.now() / 1000), Number(head.timestamp))
    const expires = challenge.expires ? Math.floor(Date.parse(challenge.expires) / 1000) : now + validity
    const sponsored = request.methodDetails.feePayer === true
    const prepared = (await prepareTransactionRequest(client, {
      account: options.account,
      calls,
      nonceKey: 'expiring',
      validBefore: Math.min(now + validity, expires),
      ...(sponsored ? {} : { feeToken: request.currency }),
    } as never)) as Record<string, unknown> & { gas?: bigint }
    // The estimate leaves out the sender's signature check.
    prepared.gas = ((prepared.gas ?? 0n) * 12n) / 10n + 5_000n
    if (sponsored) {
      delete prepared.feeToken
      delete prepared.feePayerSignature
      prepared.feePayer = true
    }
    return (await signTransaction(client, prepared as never)) as Hex
  }

  async function open(challenge: Challenge, request: Session.Request, url: string, send: typeof fetch, firstVoucher: bigint) {
    const suggested = request.suggestedDeposit !== undefined ? BigInt(request.suggestedDeposit) : (options.deposit ?? options.maxDeposit)
    const deposit = suggested > options.maxDeposit ? options.maxDeposit : suggested < firstVoucher ? firstVoucher : suggested
    if (deposit > options.maxDeposit) throw new TempoSessionWalletError(`the first payment ${firstVoucher} exceeds the deposit limit ${options.maxDeposit}`)
    const salt = keccak256(toHex(crypto.getRandomValues(new Uint8Array(32))))
    const protocol = protocolOf(request)
    const operator = (protocol === 'v2' ? (request.methodDetails.operator ?? zero) : zero) as Address
    const data =
      protocol === 'v2'
        ? encodeFunctionData({ abi: escrowAbi, functionName: 'open', args: [request.recipient, operator, request.currency, deposit, salt, zero] })
        : encodeFunctionData({ abi: streamChannelAbi, functionName: 'open', args: [request.recipient, request.currency, deposit, salt, zero] })
    const transaction = await escrowTransaction(challenge, request, fundingCalls(request, data, deposit))
    const descriptor: Session.Descriptor = {
      payer: options.account.address.toLowerCase() as Address,
      payee: request.recipient,
      operator: operator.toLowerCase() as Address,
      token: request.currency,
      salt,
      authorizedSigner: zero,
      // v1 has no expiring-nonce hash: its channel id leaves it out.
      expiringNonceHash: protocol === 'v2' ? expiringNonceHash(decodeTransaction(transaction)) : `0x${'00'.repeat(32)}`,
    }
    const where = { escrow: request.methodDetails.escrowContract, chainId: request.methodDetails.chainId }
    const channelId = (protocol === 'v2' ? channelIdOf(descriptor, where) : channelIdV1(descriptor, where)).toLowerCase() as Hex
    const entry: ChannelEntry = {
      channelId,
      protocol,
      descriptor,
      escrow: request.methodDetails.escrowContract,
      chainId: request.methodDetails.chainId,
      deposit,
      signed: 0n,
      accepted: 0n,
      spent: 0n,
      challenge,
      url,
      send,
      closed: false,
    }
    channels.set(channelId, entry)
    byTerms.set(termsOf(url, request), channelId)
    const voucher = await voucherPayload(entry, firstVoucher)
    lastSent.set(channelId, firstVoucher)
    changed('open', entry, { cumulative: firstVoucher })
    return { action: 'open', type: 'transaction', channelId, transaction, ...(protocol === 'v2' ? { descriptor } : {}), cumulativeAmount: voucher.cumulativeAmount, signature: voucher.signature }
  }

  // Posts a management credential (a voucher mid-stream, a topUp, a close) to the resource, with no body.
  async function manage(entry: ChannelEntry, payload: Record<string, unknown>, url = entry.url): Promise<Response> {
    const credential = Credential.serialize({ challenge: entry.challenge, payload, source })
    const response = await entry.send(url, { method: 'POST', headers: { [credentialHeader(entry.challenge)]: credential } })
    observeReceipt(response)
    return response
  }

  async function topUp(entry: ChannelEntry, needed: bigint, url = entry.url) {
    const additional = needed - entry.deposit
    if (entry.deposit + additional > options.maxDeposit) throw new TempoSessionWalletError(`topping up to ${needed} exceeds the deposit limit ${options.maxDeposit}`)
    const request = parse(entry.challenge)
    const data =
      entry.protocol === 'v2'
        ? encodeFunctionData({ abi: escrowAbi, functionName: 'topUp', args: [descriptorTuple(entry.descriptor), additional] })
        : encodeFunctionData({ abi: streamChannelAbi, functionName: 'topUp', args: [entry.channelId, additional] })
    const transaction = await escrowTransaction(entry.challenge, request, fundingCalls(request, data, additional))
    const payload = { action: 'topUp', type: 'transaction', channelId: entry.channelId, transaction, ...(entry.protocol === 'v2' ? { descriptor: entry.descriptor } : {}), additionalDeposit: additional.toString() }
    const response = await manage(entry, payload, url)
    if (!response.ok) throw new TempoSessionWalletError(`the topUp was refused (${response.status})`)
    entry.deposit += additional
    changed('topUp', entry)
  }

  // The voucher of the last content credential per channel (an open's first one included). draft-tempo-session-00,
  // "Per-Request Processing": a server accepts the voucher, then checks the balance, so an insufficient-balance
  // answer naming the channel means that voucher was accepted and `requiredTopUp` comes on top of it.
  const lastSent = new Map<string, bigint>()

  function observeReceipt(response: Response): void {
    const header = response.headers.get('payment-receipt')
    if (!header) return
    try {
      const receipt = Receipt.deserialize(header) as Session.SessionReceipt
      const entry = channels.get(String(receipt.channelId ?? '').toLowerCase())
      if (!entry || receipt.intent !== 'session') return
      entry.spent = BigInt(receipt.spent)
      entry.accepted = BigInt(receipt.acceptedCumulative)
      changed('receipt', entry)
    } catch {
      // Not a session receipt: nothing to learn.
    }
  }

  function observeStreamReceipt(data: string): void {
    try {
      const receipt = JSON.parse(data) as Session.SessionReceipt
      const entry = channels.get(String(receipt.channelId ?? '').toLowerCase())
      if (!entry || receipt.intent !== 'session' || !/^\d+$/.test(String(receipt.spent)) || !/^\d+$/.test(String(receipt.acceptedCumulative))) return
      entry.spent = BigInt(receipt.spent)
      entry.accepted = BigInt(receipt.acceptedCumulative)
      changed('receipt', entry)
    } catch {
      // Not a receipt this wallet reads.
    }
  }

  // Follows a metered stream: each payment-need-voucher event is answered with a voucher (after a topUp if needed).
  function follow(response: Response, entry: ChannelEntry, url: string): Response {
    if (!response.body) return response
    const decoder = new TextDecoder()
    let buffer = ''
    const body = response.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        async transform(chunk, controller) {
          controller.enqueue(chunk)
          buffer += decoder.decode(chunk, { stream: true })
          let end: number
          while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
            const block = buffer.slice(0, end)
            buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '')
            const data = [...block.matchAll(/^data: ?(.*)$/gm)].map((m) => m[1]).join('\n')
            if (/^event: payment-receipt$/m.test(block)) {
              // The stream's final receipt: what it cost in the end (a per-token reserve settles down to the usage).
              observeStreamReceipt(data)
              continue
            }
            if (!/^event: payment-need-voucher$/m.test(block)) continue
            const need = JSON.parse(data) as Session.NeedVoucher
            if (need.channelId.toLowerCase() !== entry.channelId) continue
            const required = BigInt(need.requiredCumulative)
            if (required > BigInt(need.deposit) || required > entry.deposit) await topUp(entry, required, url)
            const payload = await voucherPayload(entry, required)
            changed('voucher', entry, { cumulative: required })
            const answer = await manage(entry, payload, url)
            if (!answer.ok) throw new TempoSessionWalletError(`the voucher was refused (${answer.status})`)
          }
        },
      }),
    )
    return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers })
  }

  return {
    method: 'tempo',
    intents: ['session'],
    channels,
    async pay(challenge, context) {
      const request = parse(challenge)
      const url = context?.url ?? ''
      const price = BigInt(request.amount)
      const hinted = request.methodDetails.channelId
      const known = channels.get(hinted ?? byTerms.get(termsOf(url, request)) ?? '')
      const entry =
        known && !known.closed && known.protocol === protocolOf(request) && known.escrow === request.methodDetails.escrowContract && known.descriptor.payee === request.recipient && known.descriptor.token === request.currency
          ? known
          : undefined
      if (!entry) return { payload: await open(challenge, request, url, context?.fetch ?? fetch, price), source }
      entry.challenge = challenge
      entry.url = url || entry.url
      if (context?.fetch) entry.send = context.fetch
      // Authorize only on top of what the server accepted (never of what a refused credential signed): the server
      // says how much more it needs (402 insufficient-balance), otherwise one more unit.
      const topUpNeeded = typeof context?.problem?.requiredTopUp === 'string' && /^\d+$/.test(context.problem.requiredTopUp) ? BigInt(context.problem.requiredTopUp) : undefined
      const sent = lastSent.get(entry.channelId)
      lastSent.delete(entry.channelId)
      if (sent !== undefined && topUpNeeded !== undefined && String(context?.problem?.channelId ?? '').toLowerCase() === entry.channelId && sent > entry.accepted) {
        entry.accepted = sent
      }
      const base = entry.accepted > entry.spent ? entry.accepted : entry.spent
      const cumulative = topUpNeeded !== undefined ? base + topUpNeeded : base + price
      if (cumulative > entry.deposit) await topUp(entry, cumulative)
      const payload = await voucherPayload(entry, cumulative)
      lastSent.set(entry.channelId, cumulative)
      changed('voucher', entry, { cumulative })
      return { payload, source }
    },
    observe(response, context) {
      observeReceipt(response)
      const entry = entryFor(context.url)
      if (entry && !entry.closed && (response.headers.get('content-type') ?? '').toLowerCase().startsWith('text/event-stream')) return follow(response, entry, context.url)
      return response
    },
    async close(url) {
      const entry = entryFor(url)
      if (!entry || entry.closed) return undefined
      const cumulative = entry.accepted > entry.spent ? entry.accepted : entry.spent
      // Posted where the channel's last challenge came from (a challenge is scoped to its resource).
      const response = await manage(entry, await voucherPayload(entry, cumulative, 'close'))
      if (!response.ok) throw new TempoSessionWalletError(`the close was refused (${response.status})`)
      entry.closed = true
      const header = response.headers.get('payment-receipt')
      const receipt = header ? (Receipt.deserialize(header) as Session.SessionReceipt) : undefined
      changed('close', entry, { cumulative, txHash: receipt?.txHash })
      return receipt
    },
  }
}
