/**
 * @module Decodes a signed Tempo transaction (type 0x76, or the 0x78 sponsorship hand-off) and checks its
 * calls against the challenge before anything is broadcast (draft-tempo-charge-00, "Transaction Verification").
 */
import { type Address, type Hex, decodeFunctionData, keccak256 } from 'viem'
import * as SignatureEnvelope from 'ox/tempo/SignatureEnvelope'
import * as TxEnvelopeTempo from 'ox/tempo/TxEnvelopeTempo'
import { VerificationFailedError } from '../../core/Errors.js'
import { tip20 } from './abi.js'
import { type Attribution, type Binding, type Effect, type Terms, expectedTransfers, matchTransfers } from './transfers.js'

/** A decoded signed transaction and its recovered sender. */
export type Decoded = {
  envelope: TxEnvelopeTempo.TxEnvelopeTempo
  /** The account whose signature authorizes the calls. */
  sender: Address
  /** The serialization prefix the client used: 0x76, or 0x78 for a sponsorship hand-off. */
  format: '0x76' | '0x78'
}

/**
 * Decodes a client-signed Tempo transaction; throws VerificationFailedError when it is not one or is unsigned.
 * @example
 * const decoded = decodeTransaction(credential.payload.signature)
 */
export function decodeTransaction(serialized: string): Decoded {
  const format = serialized.slice(0, 4).toLowerCase()
  if (format !== TxEnvelopeTempo.serializedType && format !== TxEnvelopeTempo.feePayerMagic) {
    throw new VerificationFailedError({ detail: 'the credential does not hold a Tempo (type 0x76) transaction' })
  }
  let envelope: TxEnvelopeTempo.TxEnvelopeTempo
  try {
    envelope = TxEnvelopeTempo.deserialize(serialized as TxEnvelopeTempo.Serialized)
  } catch {
    throw new VerificationFailedError({ detail: 'the Tempo transaction cannot be decoded' })
  }
  if (!envelope.signature) throw new VerificationFailedError({ detail: 'the Tempo transaction is not signed by its sender' })
  let sender: Address
  try {
    sender = SignatureEnvelope.extractAddress({
      payload: TxEnvelopeTempo.getSignPayload(envelope),
      signature: envelope.signature,
      root: true,
    })
  } catch {
    throw new VerificationFailedError({ detail: 'the sender signature of the Tempo transaction is invalid' })
  }
  // A 0x78 hand-off names its sender; it must be the account that signed.
  if (envelope.from && envelope.from.toLowerCase() !== sender.toLowerCase()) {
    throw new VerificationFailedError({ detail: 'the transaction names a sender other than its signer' })
  }
  return { envelope, sender, format: format as Decoded['format'] }
}

const transferSelectors = new Set(['0xa9059cbb', '0x95777d59'])

/**
 * The TIP-20 transfers a transaction's calls make; calls that are not `transfer`/`transferWithMemo` give none.
 * @example
 * callEffects(decoded.envelope.calls)
 */
export function callEffects(calls: TxEnvelopeTempo.TxEnvelopeTempo['calls']): Effect[] {
  const effects: Effect[] = []
  for (const call of calls) {
    if (!call.to || !call.data || !transferSelectors.has(call.data.slice(0, 10).toLowerCase())) continue
    try {
      const { functionName, args } = decodeFunctionData({ abi: tip20, data: call.data })
      if (functionName === 'transfer') {
        const [to, amount] = args as readonly [Address, bigint]
        effects.push({ token: call.to as Address, to, amount })
      } else if (functionName === 'transferWithMemo') {
        const [to, amount, memo] = args as readonly [Address, bigint, Hex]
        effects.push({ token: call.to as Address, to, amount, memo })
      }
    } catch {
      // Undecodable calldata pays nobody.
    }
  }
  return effects
}

/** What a transaction is checked against. */
export type TransactionCheck = {
  terms: Terms
  binding: Binding
  /** Chain id of the challenge. */
  chainId: number
  /** Challenge expiry: the transaction must stop being valid by then. */
  expires: Date
  /** Whether the server sponsors the fee for this challenge. */
  feePayer: boolean
  attribution?: Attribution | undefined
}

/**
 * Checks a decoded transaction against the challenge: chain, validity window, fee-payer shape, no calls
 * beyond the required transfers, and every transfer (token, recipient, amount, memo, splits).
 * Mpp-edge's local policy (the draft allows one) is that the calls are exactly the required transfers.
 * @example
 * checkTransaction(decodeTransaction(payload.signature), { terms: request, binding, chainId: 42431, expires, feePayer: false })
 */
export function checkTransaction(decoded: Decoded, check: TransactionCheck): void {
  const { envelope } = decoded
  if (envelope.chainId !== check.chainId) {
    throw new VerificationFailedError({ detail: `the transaction is for chain ${envelope.chainId}, the challenge asks for chain ${check.chainId}` })
  }
  // draft-tempo-charge-00, "Request Schema": validBefore no later than the challenge expiry.
  if (envelope.validBefore === undefined) throw new VerificationFailedError({ detail: 'the transaction must set validBefore' })
  if (envelope.validBefore > Math.floor(check.expires.getTime() / 1000)) {
    throw new VerificationFailedError({ detail: 'the transaction stays valid after the challenge expires' })
  }
  const sponsorable = envelope.feePayerSignature === null
  if (check.feePayer) {
    // draft-tempo-charge-00, "Client Requirements": placeholder fee-payer signature, no fee token.
    if (!sponsorable) throw new VerificationFailedError({ detail: 'the transaction is not prepared for fee sponsorship' })
    if (envelope.feeToken !== undefined) throw new VerificationFailedError({ detail: 'a sponsored transaction must not include fee_token' })
  } else {
    if (sponsorable || decoded.format === TxEnvelopeTempo.feePayerMagic) {
      throw new VerificationFailedError({ detail: 'the transaction asks for a fee payer, and this challenge offers none' })
    }
  }
  const expected = expectedTransfers(check.terms, check.binding, check.attribution)
  if (envelope.calls.length > expected.length) {
    throw new VerificationFailedError({ detail: `the transaction contains unauthorized extra calls (${envelope.calls.length} calls, ${expected.length} transfers due)` })
  }
  if (envelope.calls.some((call) => call.value !== undefined && call.value !== 0n)) {
    throw new VerificationFailedError({ detail: 'the transaction calls must not carry value' })
  }
  matchTransfers(callEffects(envelope.calls), expected, { currency: check.terms.currency, noun: 'payment call' })
}

/**
 * The canonical serialization the chain hashes and the transaction hash (normalizing how the client encoded it).
 * @example
 * const { serialized, hash } = finalTransaction(decoded.envelope)
 */
export function finalTransaction(envelope: TxEnvelopeTempo.TxEnvelopeTempo): { serialized: Hex; hash: Hex } {
  const serialized = TxEnvelopeTempo.serialize(envelope)
  return { serialized, hash: keccak256(serialized) }
}
