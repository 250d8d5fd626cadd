/**
 * @module Checks the open and topUp transactions a payer signs before the server broadcasts (or co-signs)
 * them (draft-tempo-session-00, "Open Verification", "TopUp Verification", "Fee Payment").
 */
import { type Address, type Hex, decodeFunctionData, zeroAddress } from 'viem'
import type { SponsorAccount } from '../sponsor-account.js'
import { TxEnvelopeTempo } from 'ox/tempo'
import { VerificationFailedError } from '../../../core/Errors.js'
import { type SponsorPolicy, checkSponsorPolicy, cosign } from '../fee-payer.js'
import type { Decoded } from '../transaction.js'
import { escrowAbi, isUint96 } from './abi.js'
import { type Descriptor, channelId, descriptorTuple, normalizeDescriptor, sameDescriptor } from './descriptor.js'
import { expiringNonceHash } from './nonce-hash.js'

/** What a funding transaction is checked against (the challenge and its `methodDetails`). */
export type FundingCheck = {
  /** `methodDetails.escrowContract`. */
  escrow: Address
  /** `methodDetails.chainId`. */
  chainId: number
  /** The challenge `recipient` (the channel's payee). */
  recipient: Address
  /** The challenge `currency` (the channel's token). */
  currency: Address
  /** `methodDetails.operator`, when advertised. */
  operator?: Address | undefined
  /** The challenge expiry: the transaction must stop being valid by then. */
  expires: Date
  /** Whether the server sponsors the fee (`methodDetails.feePayer`). */
  feePayer: boolean
}

const refuse = (detail: string): never => {
  throw new VerificationFailedError({ detail })
}

const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase()

/**
 * The envelope-level checks every funding transaction shares (chain, `validBefore` within the challenge, the
 * fee-payer shape); answers its calls, unchecked.
 * @example
 * const calls = fundingCalls(decoded, check, 'open')
 */
export function fundingCalls(decoded: Decoded, check: FundingCheck, action: string): Decoded['envelope']['calls'] {
  const { envelope } = decoded
  if (envelope.chainId !== check.chainId) refuse(`the ${action} transaction is for chain ${envelope.chainId}, the challenge asks for chain ${check.chainId}`)
  if (envelope.validBefore === undefined) refuse(`the ${action} transaction must set validBefore`)
  if (envelope.validBefore! > Math.floor(check.expires.getTime() / 1000)) refuse(`the ${action} transaction stays valid after the challenge expires`)
  const sponsorable = envelope.feePayerSignature === null
  if (check.feePayer) {
    // draft-tempo-session-00, "Client Requirements": placeholder fee-payer signature, no fee token.
    if (!sponsorable) refuse(`the ${action} transaction is not prepared for fee sponsorship`)
    if (envelope.feeToken !== undefined) refuse('a sponsored transaction must not include fee_token')
  } else if (sponsorable || decoded.format === TxEnvelopeTempo.feePayerMagic) {
    refuse(`the ${action} transaction asks for a fee payer, and this challenge offers none`)
  }
  return envelope.calls
}

/** The envelope-level checks open and topUp share; returns the one call's calldata. */
function singleEscrowCall(decoded: Decoded, check: FundingCheck, action: string): Hex {
  const { envelope } = decoded
  fundingCalls(decoded, check, action)
  if (envelope.calls.length !== 1) refuse(`the ${action} transaction must contain exactly one call (it has ${envelope.calls.length})`)
  const call = envelope.calls[0]!
  if (!call.to || !same(call.to, check.escrow)) refuse(`the ${action} transaction does not call the escrow`)
  if (call.value !== undefined && call.value !== 0n) refuse(`the ${action} call must not carry value`)
  if (!call.data) refuse(`the ${action} call has no calldata`)
  return call.data as Hex
}

function decodeCall(data: Hex, expected: 'open' | 'topUp') {
  try {
    const decoded = decodeFunctionData({ abi: escrowAbi, data })
    if (decoded.functionName === expected) return decoded
  } catch {
    // Falls through to the refusal.
  }
  return refuse(`the transaction does not call ${expected} on the escrow`)
}

/**
 * Checks an open transaction against the challenge and derives the channel it creates: one call,
 * `open(payee, operator, token, deposit, salt, authorizedSigner)` on the escrow, payee = recipient, token =
 * currency, operator as advertised (or zero), 0 < deposit ≤ 2^96 − 1, the chain, `validBefore` within the
 * challenge, and the fee-payer shape. Compare the payload's descriptor and channel id with the result.
 * @example
 * const { descriptor, channelId, deposit } = checkOpenTransaction(decodeTransaction(payload.transaction), check)
 */
export function checkOpenTransaction(decoded: Decoded, check: FundingCheck): { descriptor: Descriptor; channelId: Hex; deposit: bigint } {
  const { args } = decodeCall(singleEscrowCall(decoded, check, 'open'), 'open') as { args: readonly [Address, Address, Address, bigint, Hex, Address] }
  const [payee, operator, token, deposit, salt, authorizedSigner] = args
  if (!same(payee, check.recipient)) refuse('the channel pays another payee than the challenge recipient')
  if (!same(token, check.currency)) refuse('the channel holds another token than the challenge currency')
  if (!same(operator, check.operator ?? zeroAddress)) refuse('the channel names another operator than the challenge')
  if (deposit <= 0n || !isUint96(deposit)) refuse('the channel deposit must be between 1 and 2^96 - 1')
  const descriptor = normalizeDescriptor({
    payer: decoded.sender,
    payee,
    operator,
    token,
    salt,
    authorizedSigner,
    expiringNonceHash: expiringNonceHash(decoded),
  })
  return { descriptor, channelId: channelId(descriptor, check), deposit }
}

/**
 * Checks a topUp transaction: one call, `topUp(descriptor, additionalDeposit)` on the escrow for exactly the
 * stored channel, sent by its payer, 0 < additionalDeposit ≤ 2^96 − 1, with the same chain, validity and
 * fee-payer checks as an open.
 * @example
 * const { additionalDeposit } = checkTopUpTransaction(decodeTransaction(payload.transaction), { ...check, descriptor })
 */
export function checkTopUpTransaction(decoded: Decoded, check: FundingCheck & { descriptor: Descriptor }): { additionalDeposit: bigint } {
  const { args } = decodeCall(singleEscrowCall(decoded, check, 'topUp'), 'topUp') as { args: readonly [Descriptor, bigint] }
  const [descriptor, additionalDeposit] = args
  if (!sameDescriptor(descriptorTuple(descriptor), check.descriptor)) refuse('the topUp transaction is for another channel')
  if (!same(decoded.sender, check.descriptor.payer)) refuse('the topUp transaction is not sent by the channel payer')
  if (additionalDeposit <= 0n || !isUint96(additionalDeposit)) refuse('the additional deposit must be between 1 and 2^96 - 1')
  return { additionalDeposit }
}

/**
 * Co-signs a checked open or topUp transaction as fee payer under the sponsor policy (the charge method's
 * policy: expiring nonce, gas and fee caps, short validity). Call after `checkOpenTransaction` /
 * `checkTopUpTransaction`.
 * @example
 * const { serialized, hash } = await sponsorFunding(decoded, { policy: defaultPolicy, now: new Date(), account, feeToken })
 */
export async function sponsorFunding(
  decoded: Decoded,
  options: { policy: SponsorPolicy; now: Date; account: SponsorAccount; feeToken: Hex },
): Promise<{ serialized: Hex; hash: Hex }> {
  checkSponsorPolicy(decoded, options.policy, options.now)
  return cosign(decoded, options)
}
