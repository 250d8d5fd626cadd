/**
 * @module The `tempo` method's `session` intent on protocol v1 (draft-tempo-session-00, "Protocol Versions"):
 * channels on a `TempoStreamChannel` escrow contract, for chains where the channel precompile is not active. The
 * same checks as v2 (open and topUp transactions checked before broadcast, chain state read on open, topUp and
 * close, the channel id recomputed, vouchers recovered without RPC, low-s enforced here since the reference
 * contract does not), with v1's channel id, "Tempo Stream Channel" voucher domain and `uint128` amounts. v1's
 * `close` pays out the voucher's whole cumulative amount, so the channel closes with the highest voucher not above
 * what was consumed. Built by `tempoSession({ sessionProtocol: 'v1', escrow, … })`.
 */
import { type Address, type Hex, zeroAddress, zeroHash } from 'viem'
import type { ChannelAccount } from '../../core/ChannelAccount.js'
import type { ChainState } from '../../core/ChannelStore.js'
import { VerificationFailedError } from '../../core/Errors.js'
import type * as Session from '../../core/Session.js'
import type { FundingContext, SessionMethod, SessionPrice } from '../../core/SessionMethod.js'
import type { Rpc, RpcReceipt } from './rpc.js'
import type { SessionSettings } from './session-method.js'
import type { SessionChainOptions } from './session/chain.js'
import { type ChannelStateV1, sessionChainV1 } from './session/chain-v1.js'
import { channelOpenedIn, topUpIn } from './session/events.js'
import type { FundingCheck } from './session/funding.js'
import { checkOpenTransactionV1, checkTopUpTransactionV1, openedChannelV1 } from './session/funding-v1.js'
import type { ChannelV1 } from './session/v1.js'
import { recoverVoucherSigner } from './session/voucher.js'
import { type Decoded, decodeTransaction } from './transaction.js'

/** What the v1 method shares with `tempoSession`: checked settings, the challenge request, and funding submission. */
export type SessionKit = {
  settings: SessionSettings
  chainOptions: SessionChainOptions
  receiptTimeoutMs: number
  request: (price: SessionPrice) => Session.Request
  /** Throws unless the request names this server's chain and escrow. */
  assertOurs: (request: Session.Request) => void
  funding: (request: Session.Request, context: FundingContext) => FundingCheck
  /** Binds the transaction to the challenge, broadcasts it (co-signed when sponsored) and waits for its receipt. */
  submit: (decoded: Decoded, request: Session.Request, context: FundingContext, node: Rpc) => Promise<RpcReceipt>
}

const refuse = (detail: string): never => {
  throw new VerificationFailedError({ detail })
}

/**
 * A v1 channel as the session flow keeps it: its fields in descriptor form, with no operator and no expiring-nonce
 * hash (v1 has neither). The signer rule is v2's: `authorizedSigner`, or `payer` when it is zero.
 * @example
 * descriptorOfV1({ payer, payee, token, salt, authorizedSigner })
 */
export function descriptorOfV1(channel: ChannelV1): Session.Descriptor {
  return { ...channel, operator: zeroAddress, expiringNonceHash: zeroHash }
}

/**
 * The v1 session method over a configured `TempoStreamChannel` escrow.
 * @example
 * const method = tempoSession({ sessionProtocol: 'v1', escrow: '0x…', chainId: 4217, recipient, privateKey })
 */
export function tempoSessionV1(kit: SessionKit): SessionMethod {
  const { settings } = kit
  const chain = sessionChainV1(kit.chainOptions)
  const at = (request: Session.Request) => ({ escrow: request.methodDetails.escrowContract, chainId: request.methodDetails.chainId, protocol: 'v1' as const })
  const deadline = () => ({ deadline: Date.now() + kit.receiptTimeoutMs })

  // draft-tempo-session-00, "Open Verification": the escrow's channel is the one the transaction opened, for this payee and token.
  function confirmed(channelId: Hex, opened: ChannelV1, state: ChannelStateV1, request: Session.Request): ChainState {
    if (state.payer !== opened.payer || state.payee !== opened.payee || state.token !== opened.token || state.authorizedSigner !== opened.authorizedSigner) {
      refuse('the escrow holds another channel than the open transaction created')
    }
    if (state.payee !== request.recipient.toLowerCase() || state.token !== request.currency.toLowerCase()) refuse('the channel does not pay this recipient in this currency')
    return chainState(channelId, descriptorOfV1(opened), state)
  }

  function chainState(channelId: Hex, descriptor: Session.Descriptor, state: ChannelStateV1): ChainState {
    return {
      channelId: channelId.toLowerCase() as Hex,
      chainId: kit.chainOptions.chainId,
      escrow: settings.escrow,
      descriptor,
      deposit: state.deposit,
      settled: state.settled,
      closeRequestedAt: BigInt(state.closeRequestedAt),
    }
  }

  return {
    name: 'tempo',
    request: kit.request,
    closePaysVoucher: true,

    checkDescriptor(payload, request) {
      kit.assertOurs(request)
      // Only an open establishes a v1 channel; every later action names it by id, and the stored channel is the reference.
      if (payload.action !== 'open') return undefined
      const { channel, channelId } = openedChannelV1(decodeTransaction(payload.transaction), at(request))
      if (channelId.toLowerCase() !== payload.channelId) refuse('the open transaction creates another channel than the payload names')
      if (payload.authorizedSigner !== undefined && payload.authorizedSigner !== channel.authorizedSigner && !(channel.authorizedSigner === zeroAddress && payload.authorizedSigner === channel.payer)) {
        refuse('the payload names another authorized signer than the open transaction')
      }
      return descriptorOfV1(channel)
    },

    async recoverVoucher(voucher, request) {
      return (await recoverVoucherSigner(voucher, at(request))).toLowerCase() as Address
    },

    async open(payload, context): Promise<ChainState> {
      const { request } = context
      const decoded = decodeTransaction(payload.transaction)
      const opened = checkOpenTransactionV1(decoded, kit.funding(request, context))
      if (opened.channelId.toLowerCase() !== payload.channelId) refuse('the open transaction creates another channel than the payload names')
      const receipt = await kit.submit(decoded, request, context, chain.rpc)
      channelOpenedIn(receipt, { escrow: settings.escrow, channelId: payload.channelId, protocol: 'v1' })
      return confirmed(payload.channelId, opened.channel, await chain.requireChannel(payload.channelId), request)
    },

    async topUp(payload, account: ChannelAccount, context): Promise<ChainState> {
      const { request } = context
      const decoded = decodeTransaction(payload.transaction)
      checkTopUpTransactionV1(decoded, { ...kit.funding(request, context), channelId: account.channelId, payer: account.descriptor.payer })
      const receipt = await kit.submit(decoded, request, context, chain.rpc)
      topUpIn(receipt, { escrow: settings.escrow, channelId: account.channelId, protocol: 'v1' })
      return chainState(account.channelId, account.descriptor, await chain.requireChannel(account.channelId))
    },

    async close(account, voucher, capture) {
      // v1 has no capture amount: the voucher given is the one whose whole cumulative amount may be paid out.
      if (voucher.cumulative !== capture) refuse('a v1 close pays out the whole voucher: it must be the capture amount')
      const closed = await chain.close(settings.account, account.channelId, account.descriptor.token, { channelId: account.channelId, cumulativeAmount: voucher.cumulative, signature: voucher.signature }, deadline())
      return { txHash: closed.txHash.toLowerCase() as Hex, settled: closed.settledToPayee }
    },

    async settle(account, voucher) {
      const settled = await chain.settle(settings.account, account.channelId, account.descriptor.token, { channelId: account.channelId, cumulativeAmount: voucher.cumulative, signature: voucher.signature }, deadline())
      return { txHash: settled.txHash.toLowerCase() as Hex, settled: settled.newSettled }
    },

    async read(account) {
      const state = await chain.getChannel(account.channelId)
      // A finalized (or vanished) channel reads as deposit 0: closed, nothing more to serve or settle.
      if (state.finalized || state.payer === zeroAddress) return { deposit: 0n, settled: account.settled, closeRequestedAt: 0n }
      return { deposit: state.deposit, settled: state.settled, closeRequestedAt: BigInt(state.closeRequestedAt) }
    },
  }
}
