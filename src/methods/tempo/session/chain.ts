/**
 * @module The session method's chain work through viem over `fetch`: reading a channel's state from the
 * escrow, and the payee's own `settle` and `close` transactions (draft-tempo-session-00, "Settlement
 * Procedure", "Server-Initiated Operations"). RPC faults become PaymentUnavailableError (503 + Retry-After).
 */
import { type Abi, type Address, type Hex, BaseError, decodeErrorResult, decodeFunctionResult, encodeFunctionData, keccak256 } from 'viem'
import type { SponsorAccount } from '../sponsor-account.js'
import {
  AmountExceedsDepositError,
  ChannelFinalizedError,
  ChannelNotFoundError,
  InvalidSignatureError,
  PaymentUnavailableError,
  VerificationFailedError,
} from '../../../core/Errors.js'
import { type RpcOptions, isTransient, rpc } from '../rpc.js'
import { escrowAbi, isUint96 } from './abi.js'
import { type Descriptor, channelId, descriptorTuple } from './descriptor.js'
import { channelClosedIn, settledIn } from './events.js'
import { signPayeeCall } from './payee-transaction.js'
import { type Voucher, canonicalSignature } from './voucher.js'

/** A channel's on-chain accounting. A v2 escrow deletes a closed channel, so deposit 0 means none (closed or never opened). */
export type ChannelState = {
  deposit: bigint
  settled: bigint
  /** Unix seconds of the payer's `requestClose`; 0 when none is pending. */
  closeRequestedAt: number
}

/**
 * The escrow refused a transaction; `reason` is its error name (`AmountNotIncreasing`, `CloseNotReady`, …)
 * or `unknown`.
 * @example
 * if (error instanceof EscrowRevertError && error.reason === 'AmountNotIncreasing') return
 */
export class EscrowRevertError extends VerificationFailedError {
  readonly reason: string
  constructor(options: { reason: string; detail: string; cause?: unknown }) {
    super({ detail: options.detail, cause: options.cause })
    this.reason = options.reason
  }
}

/** Options of a server transaction. */
export type SendOptions = {
  /** Give up waiting for the receipt at this time (ms since epoch; default 30 s from now): a 503 then. */
  deadline?: number | undefined
  /** The TIP-20 token the fees are paid in (default: the channel's token). */
  feeToken?: Address | undefined
}

/** Settings of the session chain client. */
export type SessionChainOptions = RpcOptions & {
  /** `methodDetails.escrowContract`. */
  escrow: Address
}

/** A revert's escrow error name, when the node reports its data. */
function revertReason(error: unknown, abi: Abi): string {
  if (!(error instanceof BaseError)) return 'unknown'
  let data: Hex | undefined
  error.walk((e) => {
    const candidate = (e as { data?: unknown }).data
    if (typeof candidate === 'string' && candidate.startsWith('0x')) data = candidate as Hex
    else if (candidate && typeof candidate === 'object' && typeof (candidate as { data?: unknown }).data === 'string') data = (candidate as { data: Hex }).data
    return false
  })
  if (!data) return 'unknown'
  try {
    return decodeErrorResult({ abi, data }).errorName
  } catch {
    return 'unknown'
  }
}

/** A revert as the session's problem type where one fits. */
function refusal(action: string, reason: string, cause: unknown): Error {
  const detail = `the escrow refused ${action}: ${reason}`
  if (reason === 'ChannelNotFound') return new ChannelNotFoundError({ detail, cause })
  if (reason === 'ChannelFinalized') return new ChannelFinalizedError({ detail, cause })
  if (reason === 'InvalidSignature') return new InvalidSignatureError({ detail, cause })
  if (reason === 'AmountExceedsDeposit') return new AmountExceedsDepositError({ detail, cause })
  return new EscrowRevertError({ reason, detail, cause })
}

/**
 * What the v1 and v2 chain clients share: eth_call to the escrow (reverts decoded with `abi` into session
 * errors), and the payee's own escrow transactions, simulated first.
 * @example
 * const { node, call, send } = escrowTransport(options, streamChannelAbi)
 */
export function escrowTransport(options: SessionChainOptions, abi: Abi) {
  const node = rpc(options)
  const { client } = node

  async function call(what: string, from: Address | undefined, data: Hex): Promise<Hex> {
    try {
      return (await client.request({ method: 'eth_call', params: [{ ...(from ? { from } : {}), to: options.escrow, data }, 'latest'] } as never)) as Hex
    } catch (error) {
      if (isTransient(error)) throw new PaymentUnavailableError({ detail: `the Tempo RPC endpoint is unavailable (${what})`, cause: error })
      throw refusal(what, revertReason(error, abi), error)
    }
  }

  /** Simulates, signs (expiring nonce), broadcasts and waits for one escrow call from `account`. */
  async function send(account: SponsorAccount, action: string, data: Hex, feeToken: Address, deadline: number) {
    await call(action, account.address, data)
    const head = (await node.client.request({ method: 'eth_getBlockByNumber', params: ['latest', false] } as never).catch((error: unknown) => {
      throw new PaymentUnavailableError({ detail: 'the Tempo RPC endpoint is unavailable (block)', cause: error })
    })) as { timestamp: Hex; baseFeePerGas?: Hex }
    // Chain time can run ahead of the clock (a test chain's time travel): the window starts at the later one.
    const now = Math.max(Math.floor(Date.now() / 1000), Number(head.timestamp))
    let serialized: Hex
    try {
      const request = <T>(method: string, params: unknown[]) => client.request({ method, params } as never) as Promise<T>
      serialized = await signPayeeCall(request, account, { chainId: options.chainId, to: options.escrow, data, feeToken, validBefore: now + 25, baseFeePerGas: BigInt(head.baseFeePerGas ?? '0x0') })
    } catch (error) {
      if (isTransient(error)) throw new PaymentUnavailableError({ detail: `the Tempo RPC endpoint is unavailable (${action})`, cause: error })
      throw refusal(action, revertReason(error, abi), error)
    }
    const hash = keccak256(serialized)
    await node.broadcast(serialized, hash)
    const receipt = await node.waitForReceipt(hash, deadline)
    if (receipt.status !== 'success' && receipt.status !== '0x1') {
      throw new EscrowRevertError({ reason: 'unknown', detail: `the ${action} transaction ${hash} reverted` })
    }
    return receipt
  }

  return { node, call, send }
}

/**
 * Builds the session chain client for one escrow on one chain.
 * @example
 * const chain = sessionChain({ url: env.TEMPO_RPC_URL, chainId: 42431, escrow: tip20ChannelReserve })
 * const state = await chain.requireChannel(descriptor)
 */
export function sessionChain(options: SessionChainOptions) {
  const { node, call, send } = escrowTransport(options, escrowAbi)
  const scope = (d: Descriptor) => ({ escrow: options.escrow, channelId: channelId(d, options) })

  async function getChannel(d: Descriptor): Promise<ChannelState> {
    const data = encodeFunctionData({ abi: escrowAbi, functionName: 'getChannel', args: [descriptorTuple(d)] })
    const result = decodeFunctionResult({ abi: escrowAbi, functionName: 'getChannel', data: await call('getChannel', undefined, data) })
    return { deposit: result.state.deposit, settled: result.state.settled, closeRequestedAt: result.state.closeRequestedAt }
  }

  const checkAmounts = (action: string, amounts: bigint[]) => {
    if (amounts.some((amount) => !isUint96(amount))) throw new VerificationFailedError({ detail: `${action} amounts must be between 0 and 2^96 - 1` })
  }

  return {
    /** The underlying RPC client (broadcast, receipts, balances). */
    rpc: node,

    /** The channel's state on the escrow; all zero when it does not exist (any more). */
    getChannel,

    /** The channel's state; ChannelNotFoundError when it does not exist or has been closed. */
    async requireChannel(d: Descriptor): Promise<ChannelState> {
      const state = await getChannel(d)
      if (state.deposit === 0n) throw new ChannelNotFoundError({ detail: 'the escrow has no open channel with this descriptor' })
      return state
    },

    /**
     * Settles a voucher as the payee (or operator): the escrow pays `cumulativeAmount − settled` to the payee.
     * A revert (for example `AmountNotIncreasing` after a settle already covered it) is an EscrowRevertError.
     */
    async settle(account: SponsorAccount, d: Descriptor, voucher: Voucher, opts: SendOptions = {}): Promise<{ txHash: Hex; newSettled: bigint; deltaPaid: bigint }> {
      checkAmounts('settle', [voucher.cumulativeAmount])
      const data = encodeFunctionData({
        abi: escrowAbi,
        functionName: 'settle',
        args: [descriptorTuple(d), voucher.cumulativeAmount, canonicalSignature(voucher.signature)],
      })
      const receipt = await send(account, 'settle', data, opts.feeToken ?? d.token, opts.deadline ?? Date.now() + 30_000)
      const event = settledIn(receipt, scope(d))
      if (event.cumulativeAmount !== voucher.cumulativeAmount) throw new VerificationFailedError({ detail: 'the Settled event does not match the voucher' })
      return { txHash: receipt.transactionHash as Hex, newSettled: event.newSettled, deltaPaid: event.deltaPaid }
    },

    /**
     * Closes the channel as the payee (or operator): captures `captureAmount` (settled ≤ capture ≤ cumulative,
     * ≤ deposit) and refunds the rest of the deposit to the payer; checks the `ChannelClosed` amounts.
     */
    async close(
      account: SponsorAccount,
      d: Descriptor,
      voucher: Voucher,
      captureAmount: bigint,
      opts: SendOptions = {},
    ): Promise<{ txHash: Hex; settledToPayee: bigint; refundedToPayer: bigint }> {
      checkAmounts('close', [voucher.cumulativeAmount, captureAmount])
      if (captureAmount > voucher.cumulativeAmount) throw new VerificationFailedError({ detail: 'the capture amount exceeds the voucher' })
      const data = encodeFunctionData({
        abi: escrowAbi,
        functionName: 'close',
        args: [descriptorTuple(d), voucher.cumulativeAmount, captureAmount, canonicalSignature(voucher.signature)],
      })
      const receipt = await send(account, 'close', data, opts.feeToken ?? d.token, opts.deadline ?? Date.now() + 30_000)
      const event = channelClosedIn(receipt, scope(d))
      if (event.settledToPayee !== captureAmount) {
        throw new VerificationFailedError({ detail: `the channel closed paying ${event.settledToPayee}, not the capture amount ${captureAmount}` })
      }
      return { txHash: receipt.transactionHash as Hex, ...event }
    },
  }
}

/** The session chain client. */
export type SessionChain = ReturnType<typeof sessionChain>
