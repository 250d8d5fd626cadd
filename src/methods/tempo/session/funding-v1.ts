/**
 * @module Checks the open and topUp transactions of a v1 channel (a `TempoStreamChannel` contract) before the
 * server broadcasts them (draft-tempo-session-00, "Open Verification", "TopUp Verification"). A v1 escrow pulls
 * the deposit with `transferFrom`, so a payer's transaction may approve it first, in the same transaction.
 */
import { type Address, type Hex, decodeFunctionData, parseAbi } from 'viem'
import { VerificationFailedError } from '../../../core/Errors.js'
import type { Decoded } from '../transaction.js'
import { type FundingCheck, fundingCalls } from './funding.js'
import { type ChannelV1, channelIdV1, maxUint128, streamChannelAbi } from './v1.js'

const approveAbi = parseAbi(['function approve(address spender, uint256 amount) returns (bool)'])

const refuse = (detail: string): never => {
  throw new VerificationFailedError({ detail })
}

const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase()

type Call = Decoded['envelope']['calls'][number]

/**
 * The escrow call of a v1 funding transaction: the only call, or the second after an `approve` of exactly `amount`
 * to the escrow on the challenge currency. Answers the escrow call's calldata and the approved amount.
 */
function escrowCall(decoded: Decoded, check: FundingCheck, action: 'open' | 'topUp', amountOf: (data: Hex) => bigint): Hex {
  const calls = fundingCalls(decoded, check, action)
  if (calls.length !== 1 && calls.length !== 2) refuse(`the ${action} transaction must contain the ${action} call, optionally after one approve (it has ${calls.length} calls)`)
  const last = calls[calls.length - 1]!
  const data = dataOf(last, check.escrow, `the ${action} transaction does not call the escrow`)
  if (calls.length === 2) {
    const approve = calls[0]!
    const approveData = dataOf(approve, check.currency, `the first call of the ${action} transaction is not an approve of the challenge currency`)
    let args: readonly [Address, bigint]
    try {
      const decodedApprove = decodeFunctionData({ abi: approveAbi, data: approveData })
      args = decodedApprove.args
    } catch {
      return refuse(`the first call of the ${action} transaction is not an approve of the challenge currency`)
    }
    if (!same(args[0], check.escrow)) refuse(`the ${action} transaction approves another spender than the escrow`)
    if (args[1] !== amountOf(data)) refuse(`the ${action} transaction approves another amount than it deposits`)
  }
  return data
}

function dataOf(call: Call, to: Address, refusal: string): Hex {
  if (!call.to || !same(call.to, to)) refuse(refusal)
  if (call.value !== undefined && call.value !== 0n) refuse('a funding call must not carry value')
  if (!call.data) refuse(refusal)
  return call.data as Hex
}

function decodeCall(data: Hex, expected: 'open' | 'topUp') {
  try {
    const decoded = decodeFunctionData({ abi: streamChannelAbi, data })
    if (decoded.functionName === expected) return decoded
  } catch {
    // Falls through to the refusal.
  }
  return refuse(`the transaction does not call ${expected} on the escrow`)
}

const openArgs = (data: Hex) => decodeCall(data, 'open').args as readonly [Address, Address, bigint, Hex, Address]
const topUpArgs = (data: Hex) => decodeCall(data, 'topUp').args as readonly [Hex, bigint]

/**
 * Checks a v1 open transaction against the challenge and derives the channel it creates: `open(payee, token,
 * deposit, salt, authorizedSigner)` on the escrow (after at most one `approve` of the deposit to it), payee =
 * recipient, token = currency, 0 < deposit ≤ 2^128 − 1, the chain, `validBefore` within the challenge, and the
 * fee-payer shape. The payer is the transaction's sender.
 * @example
 * const { channel, channelId, deposit } = checkOpenTransactionV1(decodeTransaction(payload.transaction), check)
 */
export function checkOpenTransactionV1(decoded: Decoded, check: FundingCheck): { channel: ChannelV1; channelId: Hex; deposit: bigint } {
  const data = escrowCall(decoded, check, 'open', (d) => openArgs(d)[2])
  const deposit = openArgs(data)[2]
  const { channel, channelId } = openedChannelV1(decoded, check)
  if (!same(channel.payee, check.recipient)) refuse('the channel pays another payee than the challenge recipient')
  if (!same(channel.token, check.currency)) refuse('the channel holds another token than the challenge currency')
  if (deposit <= 0n || deposit > maxUint128) refuse('the channel deposit must be between 1 and 2^128 - 1')
  return { channel, channelId, deposit }
}

/**
 * Checks a v1 topUp transaction: `topUp(channelId, additionalDeposit)` on the escrow for exactly this channel
 * (after at most one `approve` of that amount to it), sent by its payer, 0 < additionalDeposit ≤ 2^128 − 1, with
 * the same chain, validity and fee-payer checks as an open.
 * @example
 * const { additionalDeposit } = checkTopUpTransactionV1(decodeTransaction(payload.transaction), { ...check, channelId, payer })
 */
export function checkTopUpTransactionV1(decoded: Decoded, check: FundingCheck & { channelId: Hex; payer: Address }): { additionalDeposit: bigint } {
  const data = escrowCall(decoded, check, 'topUp', (d) => topUpArgs(d)[1])
  const [id, additionalDeposit] = topUpArgs(data)
  if (!same(id, check.channelId)) refuse('the topUp transaction is for another channel')
  if (!same(decoded.sender, check.payer)) refuse('the topUp transaction is not sent by the channel payer')
  if (additionalDeposit <= 0n || additionalDeposit > maxUint128) refuse('the additional deposit must be between 1 and 2^128 - 1')
  return { additionalDeposit }
}

/**
 * The channel a v1 open transaction would create, from its last call's calldata and its sender, without the
 * challenge checks (`checkOpenTransactionV1` makes them before broadcast). Throws VerificationFailedError when the
 * transaction does not end with an `open` on the escrow.
 * @example
 * const { channel, channelId } = openedChannelV1(decodeTransaction(payload.transaction), { escrow, chainId })
 */
export function openedChannelV1(decoded: Decoded, at: { escrow: Address; chainId: number }): { channel: ChannelV1; channelId: Hex } {
  const last = decoded.envelope.calls[decoded.envelope.calls.length - 1]
  if (!last) return refuse('the open transaction has no calls')
  const [payee, token, , salt, authorizedSigner] = openArgs(dataOf(last, at.escrow, 'the open transaction does not call the escrow'))
  const channel: ChannelV1 = {
    payer: decoded.sender.toLowerCase() as Address,
    payee: payee.toLowerCase() as Address,
    token: token.toLowerCase() as Address,
    salt: salt.toLowerCase() as Hex,
    authorizedSigner: authorizedSigner.toLowerCase() as Address,
  }
  return { channel, channelId: channelIdV1(channel, at) }
}
