/**
 * @module The chain work of a v1 channel (a `TempoStreamChannel` contract): reading its state by channel id, and
 * the payee's `settle` and `close` (draft-tempo-session-00, "Contract Functions"). v1's `close` has no capture
 * amount: it pays out the voucher's whole cumulative amount and refunds the rest of the deposit.
 */
import { type Address, type Hex, decodeFunctionResult, encodeFunctionData, zeroAddress } from 'viem'
import type { SponsorAccount } from '../sponsor-account.js'
import { ChannelFinalizedError, ChannelNotFoundError, VerificationFailedError } from '../../../core/Errors.js'
import { type SendOptions, type SessionChainOptions, escrowTransport } from './chain.js'
import { channelClosedIn, settledIn } from './events.js'
import { maxUint128, streamChannelAbi } from './v1.js'
import { type Voucher, canonicalSignature } from './voucher.js'

/** A v1 channel as the escrow holds it. A closed channel stays as a tombstone: `finalized`, everything else zero. */
export type ChannelStateV1 = {
  finalized: boolean
  /** Unix seconds of the payer's `requestClose`; 0 when none is pending. */
  closeRequestedAt: number
  payer: Address
  payee: Address
  token: Address
  /** The voucher signer; zero delegates to `payer`. */
  authorizedSigner: Address
  deposit: bigint
  settled: bigint
}

/**
 * Builds the chain client of a v1 escrow contract on one chain.
 * @example
 * const chain = sessionChainV1({ url: env.TEMPO_RPC_URL, chainId: 42431, escrow })
 * const state = await chain.requireChannel(channelId)
 */
export function sessionChainV1(options: SessionChainOptions) {
  const { node, call, send } = escrowTransport(options, streamChannelAbi)
  const scope = (channelId: Hex) => ({ escrow: options.escrow, channelId, protocol: 'v1' as const })

  async function getChannel(channelId: Hex): Promise<ChannelStateV1> {
    const data = encodeFunctionData({ abi: streamChannelAbi, functionName: 'getChannel', args: [channelId] })
    const c = decodeFunctionResult({ abi: streamChannelAbi, functionName: 'getChannel', data: await call('getChannel', undefined, data) })
    const lower = (a: Address) => a.toLowerCase() as Address
    return {
      finalized: c.finalized,
      closeRequestedAt: Number(c.closeRequestedAt),
      payer: lower(c.payer),
      payee: lower(c.payee),
      token: lower(c.token),
      authorizedSigner: lower(c.authorizedSigner),
      deposit: c.deposit,
      settled: c.settled,
    }
  }

  const checkAmount = (action: string, amount: bigint) => {
    if (amount < 0n || amount > maxUint128) throw new VerificationFailedError({ detail: `${action} amounts must be between 0 and 2^128 - 1` })
  }

  return {
    /** The underlying RPC client (broadcast, receipts, balances). */
    rpc: node,

    /** The channel's state on the escrow (a tombstone once closed, all zero when never opened). */
    getChannel,

    /** The channel's state; ChannelFinalizedError once closed, ChannelNotFoundError when it never existed. */
    async requireChannel(channelId: Hex): Promise<ChannelStateV1> {
      const state = await getChannel(channelId)
      if (state.finalized) throw new ChannelFinalizedError({ channelId, detail: 'the escrow has closed this channel' })
      if (state.payer === zeroAddress) throw new ChannelNotFoundError({ channelId, detail: 'the escrow has no channel with this id' })
      return state
    },

    /** Settles a voucher as the payee: the escrow pays `cumulativeAmount − settled` to the payee. */
    async settle(account: SponsorAccount, channelId: Hex, token: Address, voucher: Voucher, opts: SendOptions = {}): Promise<{ txHash: Hex; newSettled: bigint; deltaPaid: bigint }> {
      checkAmount('settle', voucher.cumulativeAmount)
      const data = encodeFunctionData({ abi: streamChannelAbi, functionName: 'settle', args: [channelId, voucher.cumulativeAmount, canonicalSignature(voucher.signature)] })
      const receipt = await send(account, 'settle', data, opts.feeToken ?? token, opts.deadline ?? Date.now() + 30_000)
      const event = settledIn(receipt, scope(channelId))
      if (event.cumulativeAmount !== voucher.cumulativeAmount) throw new VerificationFailedError({ detail: 'the Settled event does not match the voucher' })
      return { txHash: receipt.transactionHash as Hex, newSettled: event.newSettled, deltaPaid: event.deltaPaid }
    },

    /**
     * Closes the channel as the payee: the escrow pays out the voucher's whole cumulative amount (minus what is
     * settled) and refunds the rest of the deposit to the payer; checks the `ChannelClosed` amounts. Pass the
     * voucher that covers exactly what may be captured.
     */
    async close(account: SponsorAccount, channelId: Hex, token: Address, voucher: Voucher, opts: SendOptions = {}): Promise<{ txHash: Hex; settledToPayee: bigint; refundedToPayer: bigint }> {
      checkAmount('close', voucher.cumulativeAmount)
      const data = encodeFunctionData({ abi: streamChannelAbi, functionName: 'close', args: [channelId, voucher.cumulativeAmount, canonicalSignature(voucher.signature)] })
      const receipt = await send(account, 'close', data, opts.feeToken ?? token, opts.deadline ?? Date.now() + 30_000)
      const event = channelClosedIn(receipt, scope(channelId))
      if (event.settledToPayee !== voucher.cumulativeAmount) {
        throw new VerificationFailedError({ detail: `the channel closed paying ${event.settledToPayee}, not the voucher's ${voucher.cumulativeAmount}` })
      }
      return { txHash: receipt.transactionHash as Hex, ...event }
    },
  }
}

/** The v1 session chain client. */
export type SessionChainV1 = ReturnType<typeof sessionChainV1>
