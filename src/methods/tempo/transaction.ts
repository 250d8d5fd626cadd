/**
 * @module Decodes a signed Tempo transaction (type 0x76, or the 0x78 sponsorship hand-off) and checks its
 * calls against the challenge before anything is broadcast (draft-tempo-charge-00, "Transaction Verification").
 */
import { type Address, type Hex, keccak256 } from 'viem'
import * as Rlp from 'ox/Rlp'
import * as SignatureEnvelope from 'ox/tempo/SignatureEnvelope'
import * as TxEnvelopeTempo from 'ox/tempo/TxEnvelopeTempo'
import { VerificationFailedError } from '../../core/Errors.js'
import { type Attribution, type Binding, type Effect, type Terms, expectedTransfers, matchTransfers } from './transfers.js'

/** A decoded signed transaction, its sender not recovered (the chain checks the sender's signature itself). */
export type Envelope = {
  envelope: TxEnvelopeTempo.TxEnvelopeTempo
  /** The serialization prefix the client used: 0x76, or 0x78 for a sponsorship hand-off. */
  format: '0x76' | '0x78'
}

/** A decoded signed transaction and its recovered sender. */
export type Decoded = Envelope & {
  /** The account whose signature authorizes the calls. */
  sender: Address
}

/**
 * Decodes a client-signed Tempo transaction without recovering its sender; throws VerificationFailedError when it
 * is not one or is unsigned. What a server broadcasts for a payer who pays its own fee needs no sender: the chain
 * verifies the signature (draft-tempo-charge-00, "Transaction Verification", asks for the calls only), and a
 * secp256k1 recovery in JavaScript costs milliseconds.
 * @example
 * const { envelope } = decodeEnvelope(credential.payload.signature)
 */
export function decodeEnvelope(serialized: string): Envelope {
  const format = serialized.slice(0, 4).toLowerCase()
  if (format !== TxEnvelopeTempo.serializedType && format !== TxEnvelopeTempo.feePayerMagic) {
    throw new VerificationFailedError({ detail: 'the credential does not hold a Tempo (type 0x76) transaction' })
  }
  let envelope: TxEnvelopeTempo.TxEnvelopeTempo
  try {
    envelope = deserializeUnrecovered(serialized as Hex)
  } catch {
    throw new VerificationFailedError({ detail: 'the Tempo transaction cannot be decoded' })
  }
  if (!envelope.signature) throw new VerificationFailedError({ detail: 'the Tempo transaction is not signed by its sender' })
  return { envelope, format: format as Envelope['format'] }
}

/**
 * Decodes a client-signed Tempo transaction and recovers its sender (once); throws VerificationFailedError when it
 * is not one, is unsigned, its signature is invalid, or a 0x78 hand-off names another sender.
 * @example
 * const decoded = decodeTransaction(credential.payload.signature)
 */
export function decodeTransaction(serialized: string): Decoded {
  const { envelope, format } = decodeEnvelope(serialized)
  let sender: Address
  try {
    sender = SignatureEnvelope.extractAddress({
      payload: TxEnvelopeTempo.getSignPayload(envelope),
      signature: envelope.signature!,
      root: true,
    })
  } catch {
    throw new VerificationFailedError({ detail: 'the sender signature of the Tempo transaction is invalid' })
  }
  // A 0x78 hand-off names its sender; it must be the account that signed.
  if (envelope.from && envelope.from.toLowerCase() !== sender.toLowerCase()) {
    throw new VerificationFailedError({ detail: 'the transaction names a sender other than its signer' })
  }
  return { envelope: envelope.from ? envelope : { ...envelope, from: sender }, sender, format }
}

// ox's deserialize recovers the sender from the signature whenever the envelope does not name one. The sender's
// signature is the last field of a signed envelope (after an optional key authorization list): decode the fields
// without it, then attach it, so that a sender is recovered only where one is needed, and only once.
function deserializeUnrecovered(serialized: Hex): TxEnvelopeTempo.TxEnvelopeTempo {
  const fields = Rlp.toHex(`0x${serialized.slice(4)}`)
  const last = Array.isArray(fields) ? fields[fields.length - 1] : undefined
  if (!Array.isArray(fields) || fields.length < 14 || typeof last !== 'string') return TxEnvelopeTempo.deserialize(serialized as TxEnvelopeTempo.Serialized)
  const unsigned = `${serialized.slice(0, 4)}${withoutLastItem(serialized.slice(4), (last.length - 2) / 2, last.slice(2, 4))}` as TxEnvelopeTempo.Serialized
  return { ...TxEnvelopeTempo.deserialize(unsigned), signature: SignatureEnvelope.deserialize(last as Hex) }
}

// An RLP list (hex, no 0x; already decoded once, so well formed) without its last item, a string of `size` bytes
// starting with the byte `first`: the payload shortened by that item's encoding, under a new list header.
function withoutLastItem(list: string, size: number, first: string): string {
  const header = Number.parseInt(list.slice(0, 2), 16)
  const start = header <= 0xf7 ? 1 : 1 + header - 0xf7
  const item = size === 1 && Number.parseInt(first, 16) < 0x80 ? 1 : size <= 55 ? 1 + size : 1 + byteLength(size) + size
  const payload = list.slice(start * 2, list.length - item * 2)
  const length = payload.length / 2
  if (length <= 55) return `${(0xc0 + length).toString(16)}${payload}`
  const be = length.toString(16).padStart(byteLength(length) * 2, '0')
  return `${(0xf7 + byteLength(length)).toString(16)}${be}${payload}`
}

const byteLength = (n: number) => Math.ceil(n.toString(16).length / 2)

// The TIP-20 `transfer(address,uint256)` and `transferWithMemo(address,uint256,bytes32)` selectors (./abi.ts).
const transferSelector = '0xa9059cbb'
const transferWithMemoSelector = '0x95777d59'
const transferCall = /^0x[0-9a-f]{8}0{24}([0-9a-f]{40})([0-9a-f]{64})([0-9a-f]{64})?$/

/**
 * The TIP-20 transfers a transaction's calls make (recipients and memos in lowercase hex); calls that are not
 * `transfer`/`transferWithMemo`, exactly ABI-encoded, give none.
 * @example
 * callEffects(decoded.envelope.calls)
 */
export function callEffects(calls: TxEnvelopeTempo.TxEnvelopeTempo['calls']): Effect[] {
  const effects: Effect[] = []
  for (const call of calls) {
    if (!call.to || !call.data) continue
    // Decoded by hand: the arguments are fixed-size words, and viem's decodeFunctionData hashes every ABI item's
    // signature on each call to find the selector.
    const data = call.data.toLowerCase()
    const selector = data.slice(0, 10)
    const memo = selector === transferWithMemoSelector
    if (!memo && selector !== transferSelector) continue
    const words = transferCall.exec(data)
    if (!words || (words[3] !== undefined) !== memo) continue
    effects.push({
      token: call.to as Address,
      to: `0x${words[1]}` as Address,
      amount: BigInt(`0x${words[2]}`),
      ...(memo ? { memo: `0x${words[3]}` as Hex } : {}),
    })
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
export function checkTransaction(decoded: Envelope, check: TransactionCheck): void {
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
