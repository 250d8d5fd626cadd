/**
 * @module Framework-free handling of a request to a session-priced resource (draft-tempo-session-00, "Verification
 * Procedure", "Server-Side Accounting"): challenges, the open/topUp/voucher/close actions, management answers, and
 * the meter a handler charges units with.
 */
import * as v from 'valibot'
import * as Challenge from './Challenge.js'
import * as ChannelAccount from './ChannelAccount.js'
import type { Channel, ChannelStore, Charge } from './ChannelStore.js'
import * as Credential from './Credential.js'
import { canonicalJson, decodeObject, encodeBytes } from './Encoding.js'
import {
  AmountExceedsDepositError,
  BadRequestError,
  ChallengeNotFoundError,
  DeltaTooSmallError,
  InsufficientBalanceError,
  InvalidSignatureError,
  ChannelNotFoundError,
  InvalidChallengeError,
  MalformedCredentialError,
  MethodUnsupportedError,
  PaymentRequiredError,
  PaymentUnavailableError,
  RateLimitedError,
  SessionError,
  SignerMismatchError,
  isPaymentError,
  type PaymentError,
} from './Errors.js'
import type { Method } from './Method.js'
import * as Receipt from './Receipt.js'
import type { ReplayStore } from './ReplayStore.js'
import * as Server from './Server.js'
import * as Session from './Session.js'
import type { SessionMethod } from './SessionMethod.js'
import * as SignatureGuard from './SignatureGuard.js'
import type * as VoucherPacing from './VoucherPacing.js'

/** A session-priced resource: the method, the request its challenges carry, and what one request costs up front. */
export type SessionOffer = {
  method: SessionMethod
  request: Session.Request
  description?: string | undefined
  /** Units charged before the handler runs, for each content request (default 1; 0 for purely metered routes). */
  upfrontUnits: number
  /** What the offer asks in words, when one unit's price does not say it all (input and output tokens). */
  asked?: string | undefined
  /** Challenge lifetime in seconds; a challenge carries any number of voucher-paid requests until then. */
  ttlSeconds: number
  /**
   * Where credentials are read from (default: the server's): `Payment-Authorization` for a resource whose
   * `Authorization` carries the application's own credentials. Challenges name it, bound into their id.
   */
  credentialHeader?: Challenge.CredentialHeader | undefined
  /**
   * A zero-amount charge offer for the bootstrap preflight (draft-tempo-session-00, "Bootstrap Preflight"): a `HEAD`
   * without a credential is challenged with it too, and a `HEAD` paying it answers `204` with the session headers of
   * the proven payer's open channel on this resource's terms, so a payer without local state resumes it.
   */
  bootstrap?: Server.Offer | undefined
  /**
   * The voucher rate limit per channel (default `VoucherPacing.defaultRule`, the spec's 10 a second); `null` turns it
   * off (a private deployment or a benchmark of raw voucher throughput).
   */
  voucherRate?: VoucherPacing.Rule | null | undefined
}

/** Where state lives for one request. */
export type SessionStores = {
  channels: ChannelStore
  /** Single use of open and topUp transaction hashes. */
  replay: ReplayStore
}

/** A content request that may be served: charge units through `meter`, then attach `meter.receipt()`. */
export type Serve = {
  type: 'serve'
  challenge: Challenge.Challenge
  channelId: `0x${string}`
  meter: Meter
}

/** A retry of a request already charged under this challenge and Idempotency-Key: replay its stored response. */
export type Replay = { type: 'replay'; challengeId: string; idempotencyKey: string; channelId: `0x${string}` }

/** What `handle` decided. */
export type SessionOutcome = Serve | Replay | { type: 'response'; response: Response; error?: PaymentError | undefined }

/**
 * Charges the units of one request out of its channel, and gives them back when the work is not delivered.
 * Every charge is recorded durably before it resolves, so spent never trails what was served.
 */
export type Meter = {
  channelId: `0x${string}`
  challengeId: string
  /** Price of one unit, base units. */
  price: bigint
  /** Units charged by this request so far. */
  readonly units: number
  /** The channel as last seen. */
  readonly account: ChannelAccount.ChannelAccount
  /** Charges `units` more; throws InsufficientBalanceError (or ChannelFinalizedError) when the vouchers do not cover them. */
  charge: (units?: number) => Promise<void>
  /**
   * Waits up to `timeoutMs` for a voucher raising the accepted amount; true when one arrived. After `beginStream`,
   * false as soon as a newer stream began on the channel.
   */
  waitForVoucher: (timeoutMs: number) => Promise<boolean>
  /** Marks this request as the channel's current stream: a stream still waiting on the channel ends. */
  beginStream: () => Promise<void>
  /** Gives back everything this request charged (the work was not delivered). */
  refund: () => Promise<void>
  /**
   * Charges `cost` base units counted as `units`, for prices that are not one amount per unit (a reserve for a
   * bound of tokens); throws like `charge`.
   */
  chargeAmount: (cost: bigint, units: number) => Promise<void>
  /** Gives back part of what this request charged (a reserve settled lower); never more than it charged. */
  refundAmount: (cost: bigint, units: number) => Promise<void>
  /**
   * Charges a reserve for work whose cost is known once it is done (a bound of tokens): out of the balance at once,
   * but not in receipts until `release` (once it is adjusted to what the work cost). A receipt's `spent` is what was charged
   * for delivered service and only grows (draft-tempo-session-00, "Accounting State"); mppx keeps the highest it saw.
   */
  hold: (cost: bigint, units: number) => Promise<void>
  /** The held reserve is settled (adjusted with `refundAmount` / `chargeAmount` to what the work cost): receipts count it from now. */
  release: () => void
  /** A receipt with the channel's current state and this request's units. */
  receipt: () => Session.SessionReceipt
  /** The `Payment-Session` and `Payment-Session-Snapshot` headers for a response. */
  headers: (headers: Headers) => void
}

/**
 * Handles one request against a session offer.
 * @example
 * const outcome = await SessionServer.handle(server, request, offer, { channels, replay })
 * if (outcome.type === 'response') return outcome.response
 */
export async function handle(server: Server.Server, request: Request, offer: SessionOffer, stores: SessionStores, now = new Date()): Promise<SessionOutcome> {
  const url = new URL(request.url)
  const route = `${request.method} ${url.pathname}`
  const header = headerOf(server, offer)
  const context: Context = { server, request, offer, route, now, stores }
  if (url.protocol !== 'https:' && !Server.isLoopback(url.hostname)) return answer(context, new BadRequestError({ detail: 'payment requires HTTPS' }))

  let credential: Credential.Credential | undefined
  try {
    // Only the header the resource's challenges name is read.
    credential = Credential.fromHeader(request.headers.get(header))
  } catch (error) {
    if (error instanceof Credential.MultipleCredentialsError) return answer(context, new BadRequestError({ detail: 'send exactly one Payment credential' }))
    return answer(context, new MalformedCredentialError({ detail: (error as Error).message }))
  }
  if (credential && offer.bootstrap && request.method === 'HEAD' && credential.challenge.intent === 'charge') return bootstrap(context, offer.bootstrap, credential)
  if (!credential) {
    const misplaced = header !== 'Authorization' && /(^|,)\s*payment(\s|$)/i.test(request.headers.get('authorization') ?? '')
    const detail = misplaced ? `Payment is required: send the credential in ${header}, as the challenge says.` : Server.requiredDetail([{ ...offer, intent: 'session' }], server.discovery)
    return answer(context, new PaymentRequiredError({ detail }))
  }

  try {
    return await verify(context, credential)
  } catch (error) {
    if (!isPaymentError(error)) throw error
    // A signature that does not recover, or not to the channel signer, counts against its client and challenge.
    if (error instanceof SignerMismatchError || error instanceof InvalidSignatureError) guardOf(offer).record(sourceOf(request, credential), Date.now())
    server.emit({ type: 'failed', route, method: credential.challenge.method, challengeId: credential.challenge.id, problem: error.problem, detail: error.detail })
    return answer(context, error, await namedChannel(context, credential, error))
  }
}

/** The channel a 402 names, and its snapshot when the credential proved the channel's signer. */
type Named = { channelId: string; snapshot?: Session.Snapshot | undefined }

/**
 * The channel a refusal names (draft-tempo-session-00, "Method Details": `channelId` resumes it) and, to whoever signed
 * the credential with the channel's key, its snapshot ("Session Snapshot"): an expired challenge resumes the channel;
 * a voucher that does not cover the request, or is stale, or a close below the accepted amount, is answered with what
 * the next voucher must reach. mppx 0.11 reads what to sign next only from the snapshot's `requiredCumulative` (never
 * the problem's `requiredTopUp`), and without a snapshot naming the channel it opened, forgets that channel.
 */
async function namedChannel(context: Context, credential: Credential.Credential, error: PaymentError): Promise<Named | undefined> {
  const payload = credential.payload
  const channelId = typeof payload.channelId === 'string' && /^0x[0-9a-fA-F]{64}$/.test(payload.channelId) ? payload.channelId.toLowerCase() : undefined
  if (!channelId || !(error instanceof SessionError)) return undefined
  const resumes = error instanceof ChallengeNotFoundError
  if (!resumes && !(error instanceof InsufficientBalanceError || error instanceof DeltaTooSmallError || error instanceof AmountExceedsDepositError)) return undefined
  const named = resumes ? { channelId } : undefined
  const request = echoedRequest(credential.challenge)
  const amount = payload.cumulativeAmount
  const signature = payload.signature
  if (!request || request.methodDetails.sessionProtocol === 'v1' || typeof amount !== 'string' || !/^\d{1,29}$/.test(amount) || typeof signature !== 'string') return named
  try {
    const account = await context.stores.channels.channel(channelId).state()
    if (!account || account.status !== 'open' || account.closeRequestedAt !== 0n || !servesRequest(account, context.offer.request)) return named
    const signer = await context.offer.method.recoverVoucher({ channelId: channelId as `0x${string}`, cumulativeAmount: BigInt(amount), signature: signature as `0x${string}` }, request)
    if (signer !== ChannelAccount.expectedSigner(account.descriptor)) return named
    const cost = BigInt(context.offer.upfrontUnits) * BigInt(request.amount)
    const needed = error instanceof InsufficientBalanceError ? (error.requiredCumulative ?? account.accepted + error.requiredTopUp) : account.spent + cost
    return { channelId, snapshot: snapshotOf(account, needed > account.accepted ? needed : account.accepted) }
  } catch {
    // No snapshot without the channel's state: the refusal stands on its own.
    return named
  }
}

type Answering = { server: Server.Server; request: Request; offer: SessionOffer; route: string; now: Date }

// Per route and isolate: the bad-signature counters of its offer.
const guards = new WeakMap<SessionOffer, SignatureGuard.Guard>()
function guardOf(offer: SessionOffer): SignatureGuard.Guard {
  let guard = guards.get(offer)
  if (!guard) guards.set(offer, (guard = SignatureGuard.create()))
  return guard
}

function sourceOf(request: Request, credential: Credential.Credential): SignatureGuard.Source {
  return { client: request.headers.get('cf-connecting-ip') ?? undefined, challengeId: credential.challenge.id }
}

// A HEAD proving the payer with a zero-amount charge: 204 with its open channel's session headers (never the handler).
async function bootstrap(context: Context, charge: Server.Offer, credential: Credential.Credential): Promise<SessionOutcome> {
  const { server, request, offer, stores, now } = context
  const outcome = await Server.handle(server, request, [charge], { store: stores.replay, now, credentialHeader: headerOf(server, offer) })
  if (outcome.type === 'response') return outcome
  // The method verified the proof's signature by `source` over this challenge: the source is the payer.
  const payer = /^did:pkh:eip155:(\d{1,16}):(0x[0-9a-fA-F]{40})$/.exec(credential.source ?? '')
  const headers = new Headers({ 'cache-control': 'private, no-store', 'payment-receipt': Receipt.serialize(outcome.receipt) })
  try {
    const account = payer && Number(payer[1]) === offer.request.methodDetails.chainId ? await resumable(stores.channels, payer[2]!.toLowerCase(), offer.request) : undefined
    if (account?.acceptedSignature) {
      headers.set(Session.sessionHeader, account.channelId)
      // The snapshot is v2's; a v1 channel is named by its id alone.
      if (offer.request.methodDetails.sessionProtocol !== 'v1') {
        const snapshot = snapshotOf(account, account.spent + BigInt(offer.request.amount))
        snapshot.highestVoucher = { channelId: account.channelId, cumulativeAmount: account.accepted.toString(), signature: account.acceptedSignature }
        headers.set(Session.snapshotHeader, Session.serializeSnapshot(snapshot))
      }
    }
  } catch (error) {
    await outcome.release().catch(() => {})
    throw new PaymentUnavailableError({ detail: 'channel state is unavailable', retryAfter: 1, cause: error })
  }
  await outcome.deliver()
  return { type: 'response', response: new Response(null, { status: 204, headers }) }
}

// The payer's newest channel that still serves and pays this resource: same escrow, chain, payee, token and operator.
async function resumable(channels: ChannelStore, payer: string, request: Session.Request): Promise<ChannelAccount.ChannelAccount | undefined> {
  for (const id of (await channels.payerChannels?.(payer)) ?? []) {
    const account = await channels.channel(id).state()
    if (!account || account.status !== 'open' || account.closeRequestedAt !== 0n || account.descriptor.payer !== payer) continue
    if (servesRequest(account, request)) return account
  }
  return undefined
}

// The channel pays this resource's terms: same escrow, chain, payee, token and operator.
function servesRequest(account: ChannelAccount.ChannelAccount, request: Session.Request): boolean {
  const operator = request.methodDetails.operator ?? '0x0000000000000000000000000000000000000000'
  if (account.escrow !== request.methodDetails.escrowContract || account.chainId !== request.methodDetails.chainId) return false
  return account.descriptor.payee === request.recipient && account.descriptor.token === request.currency && account.descriptor.operator === operator
}
type Context = Answering & { stores: SessionStores }

async function verify(context: Context, credential: Credential.Credential): Promise<SessionOutcome> {
  const { server, offer, route, now, stores } = context
  const echoed = credential.challenge
  if (echoed.realm !== server.realm || !(await Challenge.verifyBinding(echoed, server.secrets))) {
    throw new InvalidChallengeError({ detail: 'the challenge was not issued by this server' })
  }
  // The header is bound into the id: a credential is only good in the header its challenge named.
  if (Challenge.credentialHeader(echoed) !== headerOf(server, offer)) {
    throw new InvalidChallengeError({ detail: `the challenge was issued for credentials in ${Challenge.credentialHeader(echoed)}` })
  }
  if (echoed.method !== offer.method.name || echoed.intent !== 'session') {
    throw new MethodUnsupportedError({ detail: `${echoed.method}/${echoed.intent} is not accepted here` })
  }
  const request = echoedRequest(echoed)
  // The request must be what this resource prices now; only the channel hint differs between payers.
  if (!request || !sameOffer(request, offer.request) || scopedPath(echoed.opaque) !== new URL(context.request.url).pathname) {
    throw new InvalidChallengeError({ detail: 'the challenge was issued for another resource or price' })
  }
  // draft-tempo-session-00, "Protocol Versions": the payload follows the challenge's protocol (v1 names the channel by id alone).
  const payload = v.safeParse(request.methodDetails.sessionProtocol === 'v1' ? Session.PayloadV1 : Session.Payload, credential.payload)
  if (!payload.success) throw new MalformedCredentialError({ detail: `invalid session payload: ${payload.issues[0].message}` })
  const action = payload.output
  const channelId = action.channelId
  const expiresAt = echoed.expires ? Date.parse(echoed.expires) : Number.NaN
  // draft-tempo-session-00, "TopUp Payload": an unknown or expired challenge is challenge-not-found; the fresh
  // challenge names the channel, so the payer resumes it. An open or topUp whose transaction is already on chain is
  // still recorded first (a retry after a 503 that outlived the challenge): the payer's deposit is in that channel.
  if (!Number.isFinite(expiresAt)) throw new ChallengeNotFoundError({ channelId, detail: 'the session challenge has no expiry' })
  const expired = expiresAt <= now.getTime()
  if (expired && action.action !== 'open' && action.action !== 'topUp') {
    throw new ChallengeNotFoundError({ channelId, detail: 'the session challenge has expired' })
  }
  const recorded = () => new ChallengeNotFoundError({ channelId, detail: 'the session challenge has expired; the transaction is recorded: pay on under the fresh challenge' })
  // draft-tempo-session-00, "Denial of Service": a client or challenge that sent too many bad signatures is refused
  // before another is checked.
  if (action.action !== 'topUp') {
    const wait = guardOf(offer).blocked(sourceOf(context.request, credential), Date.now())
    if (wait !== undefined) throw new RateLimitedError({ detail: 'too many vouchers with bad signatures from this client or under this challenge', retryAfter: wait })
  }
  const described = offer.method.checkDescriptor(action, request)
  // Who the resource pays: every voucher is checked against its channel's payee and token (v1 names the channel by id alone).
  const terms: ChannelAccount.Terms = { payee: request.recipient, token: request.currency }
  // The signer a voucher must recover to, when the payload establishes the channel (v2): a stranger's voucher is
  // refused here, before the channel's object is asked anything.
  const recover = async (cumulative: bigint, signature: `0x${string}`): Promise<ChannelAccount.SignedVoucher> => {
    const signer = await offer.method.recoverVoucher({ channelId, cumulativeAmount: cumulative, signature }, request)
    if (described && signer !== ChannelAccount.expectedSigner(described)) {
      throw new SignerMismatchError({ channelId, detail: 'the voucher is not signed by the channel signer' })
    }
    return { cumulative, signature, signer, terms }
  }
  const challenge: Challenge.Challenge = { ...echoed, request: request as unknown as Record<string, unknown> }
  const channel = stores.channels.channel(channelId)
  const minDelta = BigInt(request.methodDetails.minVoucherDelta ?? '0')
  const funding = {
    challenge,
    request,
    now,
    recordOnly: expired,
    claimReference: async (reference: string) => {
      const key = `${offer.method.name}-session:${await sha256(reference.toLowerCase())}`
      if (!(await storeCall(() => stores.replay.claimReference(key, echoed.id)))) {
        throw new InvalidChallengeError({ detail: 'this transaction already funded another session challenge' })
      }
    },
  }
  const content = isContentRequest(context.request)
  const idempotencyKey = content ? validKey(context.request.headers.get('idempotency-key')) : undefined
  const upfront = (units: number): Charge | undefined =>
    units > 0 ? { cost: BigInt(units) * BigInt(request.amount), units, challengeId: echoed.id, idempotencyKey } : undefined

  switch (action.action) {
    case 'open': {
      // The first voucher is checked before the open is broadcast: a bad one must not leave a channel we never recorded.
      const descriptor = described ?? ('descriptor' in action ? action.descriptor : undefined)
      if (!descriptor) throw new MalformedCredentialError({ detail: 'the open payload does not describe its channel' })
      const signer = await offer.method.recoverVoucher({ channelId, cumulativeAmount: BigInt(action.cumulativeAmount), signature: action.signature }, request)
      if (signer !== ChannelAccount.expectedSigner(descriptor)) {
        throw new SignerMismatchError({ channelId, detail: 'the first voucher is not signed by the channel signer' })
      }
      const chain = await offer.method.open(action, funding)
      const opened = expect(await channel.open(chain, { cumulative: BigInt(action.cumulativeAmount), signature: action.signature, signer, terms }, minDelta), channelId)
      // Best effort now; the channel object, which recorded the open, retries the index write from its alarm.
      await stores.channels.indexPayer(descriptor.payer, channelId).catch((error) => {
        console.error(JSON.stringify({ event: 'payer-index-deferred', channelId, error: String(error) }))
      })
      server.emit({ type: 'paid', route, method: offer.method.name, challengeId: echoed.id, reference: channelId })
      if (expired) throw recorded()
      if (!content) return management(opened.account, echoed.id, request, 204)
      return serve(challenge, channel, opened.account, upfront(offer.upfrontUnits), idempotencyKey)
    }
    case 'voucher': {
      const voucher = await recover(BigInt(action.cumulativeAmount), action.signature)
      if (!content) return management(expect(await channel.voucher(voucher, minDelta, undefined, offer.voucherRate), channelId).account, echoed.id, request, 204)
      const charge = upfront(offer.upfrontUnits)
      const accepted = expect(await channel.voucher(voucher, minDelta, charge, offer.voucherRate), channelId)
      if (accepted.value.duplicate && idempotencyKey) return { type: 'replay', challengeId: echoed.id, idempotencyKey, channelId }
      return served(challenge, channel, accepted.account, charge)
    }
    case 'topUp': {
      const account = await channel.state()
      if (!account) throw new ChannelNotFoundError({ channelId, detail: 'this server has no open channel with this id' })
      ChannelAccount.checkTerms(account, terms)
      const chain = await offer.method.topUp(action, account, funding)
      const topped = expect(await channel.topUp(chain), channelId)
      if (expired) throw recorded()
      return management(topped.account, echoed.id, request, 204)
    }
    case 'close': {
      const voucher = await recover(BigInt(action.cumulativeAmount), action.signature)
      const begun = expect(await channel.beginClose(voucher, { paysVoucher: offer.method.closePaysVoucher === true }), channelId)
      if (begun.account.status === 'closed') return management(begun.account, echoed.id, request, 200)
      let closed: { txHash: `0x${string}`; settled: bigint }
      try {
        closed = await offer.method.close(begun.account, begun.value.voucher, begun.value.capture)
      } catch (error) {
        // Not closed on chain: the channel serves again and the payer may retry the close.
        await channel.abortClose().catch(() => {})
        throw error
      }
      const final = expect(await channel.finishClose(closed.settled, closed.txHash), channelId)
      server.emit({ type: 'paid', route, method: offer.method.name, challengeId: echoed.id, reference: closed.txHash })
      return management(final.account, echoed.id, request, 200, closed.txHash)
    }
  }
}

async function serve(
  challenge: Challenge.Challenge,
  channel: Channel,
  account: ChannelAccount.ChannelAccount,
  charge: Charge | undefined,
  idempotencyKey: string | undefined,
): Promise<SessionOutcome> {
  if (!charge) {
    ChannelAccount.assertServing(account)
    return served(challenge, channel, account, undefined)
  }
  const charged = expect(await channel.charge(charge), account.channelId)
  if (charged.value.duplicate && idempotencyKey) return { type: 'replay', challengeId: challenge.id, idempotencyKey, channelId: account.channelId }
  return served(challenge, channel, charged.account, charge)
}

function served(challenge: Challenge.Challenge, channel: Channel, account: ChannelAccount.ChannelAccount, upfront: Charge | undefined): Serve {
  const request = challenge.request as unknown as Session.Request
  const price = BigInt(request.amount)
  let latest = account
  let units = upfront?.units ?? 0
  // The reserve charged by `hold` and not yet settled: left out of receipts.
  let held = { cost: 0n, units: 0 }
  let stream: number | undefined
  const charges: Charge[] = upfront ? [upfront] : []
  const meter: Meter = {
    channelId: account.channelId,
    challengeId: challenge.id,
    price,
    get units() {
      return units
    },
    get account() {
      return latest
    },
    async charge(n = 1) {
      if (!Number.isSafeInteger(n) || n < 0) throw new RangeError('units must be a non-negative whole number')
      if (n === 0) return
      await meter.chargeAmount(BigInt(n) * price, n)
    },
    async chargeAmount(cost, n) {
      if (cost < 0n || !Number.isSafeInteger(n) || n < 0) throw new RangeError('cost and units must be non-negative')
      if (cost === 0n && n === 0) return
      const charge = { cost, units: n, challengeId: challenge.id }
      const result = await channel.charge(charge)
      if (!result.ok) throw ChannelAccount.fromFailure(result.failure, account.channelId)
      latest = result.account
      units += n
      charges.push(charge)
    },
    async refundAmount(cost, n) {
      // Taken off this request's latest charges, so a later full refund gives back only what is left.
      if (cost < 0n || !Number.isSafeInteger(n) || n < 0) throw new RangeError('cost and units must be non-negative')
      let leftCost = cost
      let leftUnits = n
      const back: Charge = { cost: 0n, units: 0, challengeId: challenge.id }
      for (let i = charges.length - 1; i >= 0 && (leftCost > 0n || leftUnits > 0); i--) {
        const charge = charges[i]!
        const c = leftCost < charge.cost ? leftCost : charge.cost
        const u = Math.min(leftUnits, charge.units)
        charges[i] = { ...charge, cost: charge.cost - c, units: charge.units - u }
        back.cost += c
        back.units += u
        leftCost -= c
        leftUnits -= u
      }
      if (back.cost === 0n && back.units === 0) return
      const result = await channel.refund(back)
      if (result.ok) latest = result.account
      units -= back.units
    },
    async hold(cost, n) {
      await meter.chargeAmount(cost, n)
      held = { cost: held.cost + cost, units: held.units + n }
    },
    release() {
      held = { cost: 0n, units: 0 }
    },
    async waitForVoucher(timeoutMs) {
      const before = latest.accepted
      if (stream !== undefined) {
        const waited = await channel.waitForStreamVoucher(before, timeoutMs, stream)
        if (waited.account) latest = waited.account
        return !waited.superseded && latest.accepted > before
      }
      const after = await channel.waitForVoucher(before, timeoutMs)
      if (after) latest = after
      return latest.accepted > before
    },
    async beginStream() {
      stream = await channel.beginStream()
    },
    async refund() {
      held = { cost: 0n, units: 0 }
      while (charges.length > 0) {
        const charge = charges.pop()!
        const result = await channel.refund(charge)
        if (result.ok) latest = result.account
        units -= charge.units
      }
    },
    receipt: () =>
      Session.receipt({ challengeId: challenge.id, channelId: latest.channelId, acceptedCumulative: latest.accepted, spent: latest.spent - held.cost, units: units - held.units }),
    headers: (headers) => {
      const shown = { ...latest, spent: latest.spent - held.cost }
      sessionHeaders(headers, shown, request, shown.spent + price)
    },
  }
  return { type: 'serve', challenge, channelId: account.channelId, meter }
}

/** A management answer: the channel advanced, no content served. */
function management(
  account: ChannelAccount.ChannelAccount,
  challengeId: string,
  request: Session.Request,
  status: 200 | 204,
  txHash?: `0x${string}` | undefined,
): SessionOutcome {
  const receipt = Session.receipt({ challengeId, channelId: account.channelId, acceptedCumulative: account.accepted, spent: account.spent, txHash })
  const headers = new Headers({ 'cache-control': 'private, no-store', 'payment-receipt': Receipt.serialize(receipt) })
  sessionHeaders(headers, account, request, account.spent + BigInt(request.amount))
  if (status === 204) return { type: 'response', response: new Response(null, { status, headers }) }
  headers.set('content-type', 'application/json')
  return { type: 'response', response: new Response(JSON.stringify(receipt), { status, headers }) }
}

/**
 * Sets `Payment-Session` (the channel id) and `Payment-Session-Snapshot` (the channel's state) on a response
 * (draft-tempo-session-00, "Session Snapshot"; the snapshot is v2's, so a v1 channel gets the channel id only).
 * @example
 * SessionServer.sessionHeaders(headers, account, request, account.spent + 25n)
 */
export function sessionHeaders(headers: Headers, account: ChannelAccount.ChannelAccount, request: Session.Request, requiredCumulative: bigint): void {
  headers.set(Session.sessionHeader, account.channelId)
  if (request.methodDetails.sessionProtocol === 'v1') return
  headers.set(Session.snapshotHeader, Session.serializeSnapshot(snapshotOf(account, requiredCumulative)))
}

/**
 * The snapshot of a channel.
 * @example
 * SessionServer.snapshotOf(account, account.spent + 25n)
 */
export function snapshotOf(account: ChannelAccount.ChannelAccount, requiredCumulative: bigint): Session.Snapshot {
  return {
    acceptedCumulative: account.accepted.toString(),
    chainId: account.chainId,
    channelId: account.channelId,
    ...(account.closeRequestedAt !== 0n ? { closeRequestedAt: account.closeRequestedAt.toString() } : {}),
    deposit: account.deposit.toString(),
    descriptor: account.descriptor,
    escrow: account.escrow,
    requiredCumulative: requiredCumulative.toString(),
    settled: account.settled.toString(),
    spent: account.spent.toString(),
    units: account.units,
  }
}

/**
 * Whether a request with a session credential asks for content (runs the handler) or only advances the channel:
 * `HEAD`, and a `POST` with no body, are management requests (mppx's session client posts mid-stream vouchers to
 * the stream's URI, query included, with no body). `topUp` and `close` are always management.
 * @example
 * SessionServer.isContentRequest(new Request(url, { method: 'POST' })) // false
 */
export function isContentRequest(request: Request): boolean {
  if (request.method === 'HEAD') return false
  if (request.method !== 'POST') return true
  const length = request.headers.get('content-length')
  if (length !== null) return length !== '0'
  return request.headers.has('transfer-encoding') || request.headers.has('content-type')
}

/**
 * Builds the challenges of a session offer, resuming `channelId` when given.
 * @example
 * const [challenge] = await SessionServer.challenges(server, request, offer, channelId)
 */
export async function challenges(
  server: Server.Server,
  request: Request,
  offer: SessionOffer,
  channelId?: string | undefined,
  now = new Date(),
  snapshot?: Session.Snapshot | undefined,
): Promise<Challenge.Challenge[]> {
  const details = {
    ...offer.request.methodDetails,
    ...(channelId ? { channelId: channelId as `0x${string}` } : {}),
    // draft-tempo-session-00, "Session Snapshot": v2 only.
    ...(channelId && snapshot && offer.request.methodDetails.sessionProtocol !== 'v1' ? { sessionSnapshot: snapshot } : {}),
  }
  const sessionRequest: Session.Request = { ...offer.request, methodDetails: details }
  if (channelId) delete (sessionRequest as { suggestedDeposit?: string }).suggestedDeposit
  const asOffer: Server.Offer = {
    method: { name: offer.method.name } as Method<any, any>,
    intent: 'session',
    request: sessionRequest as unknown as Record<string, unknown>,
    description: offer.description,
  }
  const list = await Server.challenges({ ...server, ttlSeconds: offer.ttlSeconds }, request, [asOffer], now, headerOf(server, offer))
  if (request.method !== 'HEAD' || !offer.bootstrap) return list
  // draft-tempo-session-00, "Bootstrap Preflight": a HEAD may prove the payer with a zero-amount charge instead (its
  // challenge lives as long as the server's charge challenges do).
  return [...list, ...(await Server.challenges(server, request, [offer.bootstrap], now, headerOf(server, offer)))]
}

function headerOf(server: Server.Server, offer: SessionOffer): Challenge.CredentialHeader {
  return offer.credentialHeader ?? server.credentialHeader
}

async function answer(context: Answering, error: PaymentError, named?: Named | undefined): Promise<SessionOutcome> {
  // Core spec: every 402 carries a fresh challenge; a gone channel (410) gets one too, for a new channel.
  const challenged = (error.challenge || error instanceof SessionError) && !(error instanceof BadRequestError)
  const headers = new Headers({ 'content-type': 'application/problem+json', 'cache-control': 'no-store' })
  if (error.retryAfter !== undefined) headers.set('retry-after', String(error.retryAfter))
  let challengeId: string | undefined
  if (challenged) {
    try {
      const list = await challenges(context.server, context.request, context.offer, named?.channelId, context.now, named?.snapshot)
      for (const challenge of list) {
        headers.append('www-authenticate', Challenge.serialize(challenge))
        context.server.emit({ type: 'challenge', route: context.route, method: challenge.method, challengeId: challenge.id })
      }
      challengeId = list[0]?.id
    } catch (cause) {
      if (!isPaymentError(cause)) throw cause
      return { type: 'response', response: Server.problemResponse(cause), error: cause }
    }
  }
  const body = error.toProblem(challengeId ? { challengeId } : {})
  return { type: 'response', response: new Response(JSON.stringify(body), { status: error.status, headers }), error }
}

/**
 * The answer to a session failure on the protected resource: the problem, with a fresh challenge naming the channel.
 * Pass `account` (the channel of a verified credential, as the meter has it) and an insufficient balance also carries
 * the channel's snapshot with the cumulative amount the next voucher must reach.
 * @example
 * return SessionServer.problem(server, request, offer, new InsufficientBalanceError({ channelId, requiredTopUp: 5n }), meter.account)
 */
export async function problem(server: Server.Server, request: Request, offer: SessionOffer, error: PaymentError, account?: ChannelAccount.ChannelAccount | undefined): Promise<Response> {
  const channelId = error instanceof SessionError ? error.channelId : undefined
  let named: Named | undefined = channelId ? { channelId } : undefined
  if (channelId && account?.channelId === channelId && error instanceof InsufficientBalanceError) {
    const needed = error.requiredCumulative ?? account.accepted + error.requiredTopUp
    named = { channelId, snapshot: snapshotOf(account, needed > account.accepted ? needed : account.accepted) }
  }
  const outcome = await answer({ server, request, offer, route: `${request.method} ${new URL(request.url).pathname}`, now: new Date() }, error, named)
  return (outcome as { response: Response }).response
}

function expect<T>(result: { ok: true; account: ChannelAccount.ChannelAccount; value: T } | { ok: false; failure: ChannelAccount.Failure }, channelId: string) {
  if (!result.ok) throw ChannelAccount.fromFailure(result.failure, channelId)
  return result
}

function echoedRequest(echoed: Challenge.Echoed): Session.Request | undefined {
  try {
    const parsed = v.safeParse(Session.Request, decodeObject(echoed.request))
    return parsed.success ? parsed.output : undefined
  } catch {
    return undefined
  }
}

// Equal apart from the per-payer hints: the resumed channel id, its snapshot, and the new-channel deposit hint.
function sameOffer(echoed: Session.Request, offered: Session.Request): boolean {
  const strip = (r: Session.Request) => {
    const { channelId: _c, sessionSnapshot: _s, ...details } = r.methodDetails
    const { suggestedDeposit: _d, ...rest } = r
    return canonicalJson({ ...rest, methodDetails: details })
  }
  return strip(echoed) === strip(offered)
}

// The path a challenge's opaque scope names. A session challenge pays for any method on its resource (vouchers
// arrive as POST or HEAD on the URI of a GET stream).
function scopedPath(opaque: string | undefined): string | undefined {
  if (!opaque) return undefined
  try {
    const scope = decodeObject(opaque)
    if (typeof scope.route !== 'string' || typeof scope.nonce !== 'string') return undefined
    return scope.route.slice(scope.route.indexOf(' ') + 1)
  } catch {
    return undefined
  }
}

function validKey(key: string | null): string | undefined {
  return key && key.length <= 255 ? key : undefined
}

async function sha256(text: string): Promise<string> {
  return encodeBytes(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text))))
}

async function storeCall<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call()
  } catch (error) {
    if (isPaymentError(error)) throw error
    throw new PaymentUnavailableError({ detail: 'replay protection is unavailable', retryAfter: 1, cause: error })
  }
}
