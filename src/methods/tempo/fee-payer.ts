/**
 * @module Fee sponsorship: the sponsor policy a client envelope must meet before the server co-signs it as
 * fee payer (signature domain 0x78), the co-signature itself, and a cap on sponsored transactions in flight
 * (draft-tempo-charge-00, "Fee Payment"; conformance vector tempo-fee-payer-cosign).
 */
import { type Hex, maxUint256 } from 'viem'
import * as Signature from 'ox/Signature'
import * as TxEnvelopeTempo from 'ox/tempo/TxEnvelopeTempo'
import { type PaymentError, PaymentUnavailableError, VerificationFailedError } from '../../core/Errors.js'
import type { SponsorAccount } from './sponsor-account.js'
import { type Decoded, type TransactionCheck, checkTransaction, finalTransaction } from './transaction.js'

/** Limits on what the sponsor pays for. */
export type SponsorPolicy = {
  /** Highest gas limit sponsored (default 4,000,000). */
  maxGas: bigint
  /** Longest validity window sponsored, from now to `validBefore`, in seconds (default 30, the chain's own bound for expiring nonces). */
  maxValidityWindowSeconds: number
  /** Highest fee one transaction may cost the sponsor, in fee-token base units (default 100,000 = 0.10 of a 6-decimal USD token). */
  maxFeePerTransaction: bigint
  /** Most sponsored transactions this isolate has between co-signing and their receipt (default 16). */
  maxInFlight: number
  /** Most sponsored transactions one sender has between co-signing and their receipt (default 1). */
  maxInFlightPerSender: number
  /** Latest `validAfter` sponsored, in seconds from now (default 30): a held-back transaction could be emptied first. */
  maxValidAfterSeconds: number
  /** Reverted sponsored transactions of one sender within `revertWindowSeconds` after which it is refused sponsorship (default 3). */
  maxRevertsPerSender: number
  /** How long reverts count, and how long a refusal lasts, in seconds (default 86,400: 24 hours). */
  revertWindowSeconds: number
}

/**
 * The default sponsor policy. Measured on Tempo's T4 rules, where creating state costs about ten times T0's: a
 * `transferWithMemo` uses ~51k gas to an account that holds the token and ~299k to a new one, each split adds ~22k
 * or ~267k, so a charge with the largest split list (10) to new recipients uses ~2.97M (our client declares
 * ~3.5M), and a session channel open ~0.8–1.3M. 4M admits all of them; the fee cap admits 4M gas at up to
 * 25·10^9 attodollars per gas (local chains run at 2–20·10^9). Expiring-nonce transactions are valid for at most
 * 30 s past the block time on chain, so a longer window could never be mined.
 * @example
 * const policy = { ...defaultPolicy, maxGas: 1_000_000n }
 */
export const defaultPolicy: SponsorPolicy = {
  maxGas: 4_000_000n,
  maxValidityWindowSeconds: 30,
  maxFeePerTransaction: 100_000n,
  maxInFlight: 16,
  maxInFlightPerSender: 1,
  maxValidAfterSeconds: 30,
  maxRevertsPerSender: 3,
  revertWindowSeconds: 86_400,
}

/**
 * Fee-token base units a transaction can cost at most. Tempo prices gas in 18-decimal USD units and charges
 * TIP-20 fee tokens, which have 6 decimals: the cap is `gas × maxFeePerGas / 10^12`, rounded up.
 * @example
 * maxFee({ gas: 100_000n, maxFeePerGas: 10_000_000_000n }) // 1000n
 */
export function maxFee(envelope: { gas?: bigint | undefined; maxFeePerGas?: bigint | undefined }): bigint {
  const wei = (envelope.gas ?? 0n) * (envelope.maxFeePerGas ?? 0n)
  return (wei + 10n ** 12n - 1n) / 10n ** 12n
}

/**
 * The expiring nonce key Tempo reserves for transactions that carry their own expiry (2^256 - 1).
 * @example
 * if (envelope.nonceKey !== expiringNonceKey) throw new VerificationFailedError({ detail: 'nonce key' })
 */
export const expiringNonceKey = maxUint256

/**
 * Checks an envelope against the sponsor policy: no client fee token, the expiring nonce key, no access list
 * or authorizations, declared gas and fees within the caps, a short validity window.
 * @example
 * checkSponsorPolicy(decoded, defaultPolicy, new Date())
 */
export function checkSponsorPolicy(decoded: Decoded, policy: SponsorPolicy, now: Date): void {
  const { envelope } = decoded
  const refuse = (detail: string) => {
    throw new VerificationFailedError({ detail: `fee sponsorship refused: ${detail}` })
  }
  if (envelope.feePayerSignature !== null) refuse('the transaction is not prepared for fee sponsorship')
  // The server picks the fee token; the sender does not sign over it.
  if (envelope.feeToken !== undefined) refuse('a sponsored transaction must not include fee_token')
  if (envelope.nonceKey !== expiringNonceKey) refuse('the transaction must use expiring nonce key')
  if (envelope.accessList && envelope.accessList.length > 0) refuse('an access list is not allowed')
  if (envelope.authorizationList && envelope.authorizationList.length > 0) refuse('an authorization list is not allowed')
  if (envelope.keyAuthorization) refuse('a key authorization is not allowed')
  const signatureType = envelope.signature?.type
  if (signatureType !== 'secp256k1' && signatureType !== 'p256' && signatureType !== 'webAuthn') refuse('only sender-key signatures are sponsored')
  if (envelope.gas === undefined || envelope.gas <= 0n) refuse('the transaction must declare its gas limit')
  if (envelope.gas! > policy.maxGas) refuse(`gas limit exceeds sponsor policy (${envelope.gas} > ${policy.maxGas})`)
  if (envelope.maxFeePerGas === undefined || envelope.maxFeePerGas <= 0n) refuse('the transaction must declare maxFeePerGas')
  if (maxFee(envelope) > policy.maxFeePerTransaction) refuse('the fee budget exceeds sponsor policy')
  if (envelope.validBefore === undefined) refuse('the transaction must declare validBefore')
  if (envelope.validBefore! - Math.floor(now.getTime() / 1000) > policy.maxValidityWindowSeconds) refuse('validity window exceeds sponsor policy')
  // A transaction that waits for its validAfter leaves the payer time to empty the account first.
  if (envelope.validAfter !== undefined && envelope.validAfter - Math.floor(now.getTime() / 1000) > policy.maxValidAfterSeconds) {
    refuse(`validAfter is more than ${policy.maxValidAfterSeconds} s from now`)
  }
}

/**
 * Adds the fee payer's signature over the sender-signed envelope with the server's fee token and returns
 * the final type-0x76 transaction.
 * @example
 * const { serialized, hash } = await cosign(decoded, { account: sponsor, feeToken: pathUsd })
 */
export async function cosign(decoded: Decoded, options: { account: SponsorAccount; feeToken: Hex }): Promise<{ serialized: Hex; hash: Hex }> {
  const { from: _handoffSender, ...rest } = decoded.envelope
  const unsigned = TxEnvelopeTempo.from({ ...rest, feeToken: options.feeToken, feePayerSignature: undefined })
  const payload = TxEnvelopeTempo.getFeePayerSignPayload(unsigned, { sender: decoded.sender })
  if (!options.account.sign) throw new Error('the fee payer account cannot sign hashes')
  // Deterministic (RFC 6979): a retry of the same credential yields the same transaction and hash.
  const feePayerSignature = Signature.from(await options.account.sign({ hash: payload }))
  return finalTransaction(TxEnvelopeTempo.from(unsigned, { feePayerSignature }))
}

/**
 * Checks a sponsorship hand-off against the challenge and the policy, then co-signs it. The policy is checked
 * first so an envelope that breaks it is refused whatever its calls.
 * @example
 * const final = await sponsor(decodeTransaction(payload.signature), { ...check, policy, now, account, feeToken })
 */
export async function sponsor(
  decoded: Decoded,
  options: TransactionCheck & { policy: SponsorPolicy; now: Date; account: SponsorAccount; feeToken: Hex },
): Promise<{ serialized: Hex; hash: Hex }> {
  checkSponsorPolicy(decoded, options.policy, options.now)
  checkTransaction(decoded, { ...options, feePayer: true })
  return cosign(decoded, options)
}

/** Counts sponsored transactions between co-signing and their receipt, per isolate. */
export type InFlight = { acquire: () => () => void; readonly count: number }

/** A cap on sponsored transactions in flight shared by every isolate (see `sponsorGate` in storage). */
export type Gate = { acquire: () => Promise<() => Promise<void> | void> }

/**
 * A per-isolate cap on sponsored transactions in flight; past it, payers are told to retry (503).
 * @example
 * const release = limiter.acquire()
 * try { await broadcast() } finally { release() }
 */
export function inFlight(max: number): InFlight {
  let count = 0
  return {
    acquire() {
      if (count >= max) throw new PaymentUnavailableError({ detail: 'fee sponsorship is at capacity', retryAfter: 2 })
      count++
      let released = false
      return () => {
        if (!released) count--
        released = true
      }
    },
    get count() {
      return count
    },
  }
}

/** How a sponsored transaction ended, as far as its sender's limits are concerned. */
export type SponsoredOutcome = 'success' | 'reverted' | 'not-sent'

/**
 * Per-sender sponsorship limits: `begin` takes the sender's slot for a transaction until `until` (ms since
 * epoch; it cannot be mined after its `validBefore`) or throws (503 while another is in flight, 402 while the
 * sender is refused); `end` frees it once the outcome is known and counts a revert.
 * @example
 * await senders.begin(sender, hash, validBefore * 1000)
 */
export type SenderGate = {
  begin: (sender: string, hash: string, until: number) => Promise<void>
  end: (sender: string, hash: string, outcome: SponsoredOutcome) => Promise<void>
}

/**
 * The answer to a sender over its limits: 503 with Retry-After while it has a transaction in flight, 402
 * saying until when while it is refused after too many reverts.
 * @example
 * throw senderLimitError('refused', Date.now() + 86_400_000, defaultPolicy)
 */
export function senderLimitError(reason: 'in-flight' | 'refused', until: number, policy: Pick<SponsorPolicy, 'maxRevertsPerSender' | 'revertWindowSeconds'>): PaymentError {
  if (reason === 'in-flight') {
    return new PaymentUnavailableError({ detail: 'this sender already has a sponsored transaction in flight; retry once it is mined', retryAfter: 2 })
  }
  const window = policy.revertWindowSeconds % 3600 === 0 ? `${policy.revertWindowSeconds / 3600} hours` : `${policy.revertWindowSeconds} s`
  return new VerificationFailedError({
    detail: `fee sponsorship refused: ${policy.maxRevertsPerSender} sponsored transactions from this sender reverted within ${window}; sponsorship resumes at ${new Date(until).toISOString()}`,
  })
}

/**
 * Per-sender limits counted in this isolate only (the default without the SenderLimit Durable Object).
 * @example
 * const senders = localSenders(defaultPolicy)
 */
export function localSenders(policy: SponsorPolicy): SenderGate {
  const state = new Map<string, { flights: Map<string, number>; reverts: Map<string, number>; refusedUntil: number }>()
  const of = (sender: string) => {
    const key = sender.toLowerCase()
    let entry = state.get(key)
    if (!entry) state.set(key, (entry = { flights: new Map(), reverts: new Map(), refusedUntil: 0 }))
    const now = Date.now()
    for (const [hash, until] of entry.flights) if (until <= now) entry.flights.delete(hash)
    for (const [hash, until] of entry.reverts) if (until <= now) entry.reverts.delete(hash)
    return entry
  }
  return {
    async begin(sender, hash, until) {
      const entry = of(sender)
      if (entry.refusedUntil > Date.now()) throw senderLimitError('refused', entry.refusedUntil, policy)
      if (!entry.flights.has(hash) && entry.flights.size >= policy.maxInFlightPerSender) throw senderLimitError('in-flight', until, policy)
      entry.flights.set(hash, Math.max(until, entry.flights.get(hash) ?? 0))
    },
    async end(sender, hash, outcome) {
      const entry = of(sender)
      entry.flights.delete(hash)
      const now = Date.now()
      if (outcome === 'reverted') {
        if (!entry.reverts.has(hash)) entry.reverts.set(hash, now + policy.revertWindowSeconds * 1000)
        if (entry.reverts.size >= policy.maxRevertsPerSender) entry.refusedUntil = now + policy.revertWindowSeconds * 1000
      }
      if (entry.flights.size === 0 && entry.reverts.size === 0 && entry.refusedUntil <= now) state.delete(sender.toLowerCase())
    },
  }
}
