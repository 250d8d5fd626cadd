/**
 * @module The `session` intent on the wire (draft-tempo-session-00): request fields, credential payloads, receipts,
 * the `Payment-Session` / `Payment-Session-Snapshot` headers and the SSE events of a metered stream.
 */
import * as v from 'valibot'
import { EncodingError, decodeJson, encodeJson } from './Encoding.js'
import * as Receipt from './Receipt.js'

/** Largest v2 channel amount: every v2 amount is a `uint96` (draft-tempo-session-00, "Precompile-Backed Channel State"). */
export const maxAmount = (1n << 96n) - 1n

/**
 * A 20-byte hex address, normalised to lowercase (draft-tempo-session-00, "Hexadecimal Values").
 * @example
 * v.parse(Address, '0xAbC…') // '0xabc…'
 */
export const Address = v.pipe(
  v.string(),
  v.regex(/^0x[0-9a-fA-F]{40}$/, 'expected a 20-byte hex address'),
  v.transform((value) => value.toLowerCase() as `0x${string}`),
)

/**
 * A `bytes32` hex value (channel ids, salts, hashes), normalised to lowercase.
 * @example
 * v.parse(Bytes32, channelId)
 */
export const Bytes32 = v.pipe(
  v.string(),
  v.regex(/^0x[0-9a-fA-F]{64}$/, 'expected 32 bytes of 0x-prefixed hex'),
  v.transform((value) => value.toLowerCase() as `0x${string}`),
)

/**
 * A v2 amount: a decimal string of at most 2^96 − 1, no sign, no padding (draft-tempo-session-00, "Numeric Values").
 * @example
 * v.parse(Amount, '250000')
 */
export const Amount = v.pipe(
  v.string(),
  v.regex(/^(0|[1-9][0-9]{0,28})$/, 'expected a base-10 integer string'),
  v.check((value) => BigInt(value) <= maxAmount, 'amount exceeds 2^96 - 1'),
)

/** Largest v1 channel amount: v1 amounts are `uint128` (draft-tempo-session-00, "Contract-Backed Channel State"). */
export const maxAmountV1 = (1n << 128n) - 1n

/**
 * A v1 amount: a decimal string of at most 2^128 − 1, no sign, no padding.
 * @example
 * v.parse(AmountV1, '340282366920938463463374607431768211455')
 */
export const AmountV1 = v.pipe(
  v.string(),
  v.regex(/^(0|[1-9][0-9]{0,38})$/, 'expected a base-10 integer string'),
  v.check((value) => BigInt(value) <= maxAmountV1, 'amount exceeds 2^128 - 1'),
)

/**
 * A voucher signature: 65-byte r‖s‖v or 64-byte EIP-2098 compact (draft-tempo-session-00, "Encoding Conventions").
 * @example
 * v.parse(Signature, signature)
 */
export const Signature = v.pipe(
  v.string(),
  v.regex(/^0x([0-9a-fA-F]{128}|[0-9a-fA-F]{130})$/, 'expected a 64- or 65-byte hex signature'),
  v.transform((value) => value.toLowerCase() as `0x${string}`),
)

/** A signed transaction (RLP hex), bounded. */
const Transaction = v.pipe(
  v.string(),
  v.regex(/^0x([0-9a-fA-F]{2})+$/, 'expected 0x-prefixed hex bytes'),
  v.maxLength(32_768),
  v.transform((value) => value as `0x${string}`),
)

/**
 * The v2 channel descriptor carried in every v2 payload (draft-tempo-session-00, "Channel Descriptor").
 * @example
 * v.parse(Descriptor, payload.descriptor)
 */
export const Descriptor = v.object({
  /** Wallet that funds the channel. */
  payer: Address,
  /** Wallet that receives settlement: the challenge's `recipient`. */
  payee: Address,
  /** Payee-side operator, zero when unset. */
  operator: Address,
  /** TIP-20 token escrowed: the challenge's `currency`. */
  token: Address,
  /** Payer-chosen entropy. */
  salt: Bytes32,
  /** Voucher signer; zero delegates to `payer`. */
  authorizedSigner: Address,
  /** Hash of the expiring-nonce open transaction. */
  expiringNonceHash: Bytes32,
})
export type Descriptor = v.InferOutput<typeof Descriptor>

/**
 * `methodDetails` of a session request (draft-tempo-session-00, "Method Details"); mpp-edge speaks v2, and v1 where configured.
 * @example
 * v.parse(MethodDetails, request.methodDetails)
 */
export const MethodDetails = v.object({
  /** Channel escrow: the TIP-1034 precompile or a compatible deployment. */
  escrowContract: Address,
  /** Tempo chain id (required with v2). */
  chainId: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(Number.MAX_SAFE_INTEGER)),
  /** The channel to resume, when the server suggests one. */
  channelId: v.optional(Bytes32),
  /** Smallest increase between two vouchers. */
  minVoucherDelta: v.optional(Amount),
  /** Payee-side operator clients put into new descriptors. */
  operator: v.optional(Address),
  /** True when the server pays the open/topUp transaction fees. */
  feePayer: v.optional(v.boolean()),
  /** Session protocol version (draft-tempo-session-00, "Protocol Versions"): `v2` the channel precompile, `v1` a `TempoStreamChannel` contract. */
  sessionProtocol: v.optional(v.picklist(['v1', 'v2'])),
  /** A snapshot of the resumed channel. */
  sessionSnapshot: v.optional(v.looseObject({})),
})
export type MethodDetails = v.InferOutput<typeof MethodDetails>

/**
 * The `request` of a session challenge (draft-tempo-session-00, "Request Schema"); `amount` is the price per unit.
 * @example
 * v.parse(Request, challenge.request)
 */
export const Request = v.object({
  /** Price per unit in base units. */
  amount: Amount,
  /** The unit priced ("llm_token", "request"). */
  unitType: v.optional(v.pipe(v.string(), v.maxLength(64))),
  /** Deposit the server suggests for a new channel, in base units. */
  suggestedDeposit: v.optional(Amount),
  /** TIP-20 token address. */
  currency: Address,
  /** Payee address. */
  recipient: Address,
  /** Display text for the payer. */
  description: v.optional(v.string()),
  methodDetails: MethodDetails,
})
export type Request = v.InferOutput<typeof Request>

/**
 * `action="open"`: the signed open transaction for the server to broadcast, and the first voucher.
 * @example
 * v.parse(OpenPayload, payload)
 */
export const OpenPayload = v.object({
  action: v.literal('open'),
  type: v.literal('transaction'),
  channelId: Bytes32,
  transaction: Transaction,
  authorizedSigner: v.optional(Address),
  descriptor: Descriptor,
  cumulativeAmount: Amount,
  signature: Signature,
})

/**
 * `action="topUp"`: a signed `topUp` transaction adding `additionalDeposit`.
 * @example
 * v.parse(TopUpPayload, payload)
 */
export const TopUpPayload = v.object({
  action: v.literal('topUp'),
  type: v.literal('transaction'),
  channelId: Bytes32,
  transaction: Transaction,
  descriptor: Descriptor,
  additionalDeposit: Amount,
})

/**
 * `action="voucher"`: a cumulative voucher.
 * @example
 * v.parse(VoucherPayload, payload)
 */
export const VoucherPayload = v.object({
  action: v.literal('voucher'),
  channelId: Bytes32,
  descriptor: Descriptor,
  cumulativeAmount: Amount,
  signature: Signature,
})

/**
 * `action="close"`: the final voucher for a cooperative close.
 * @example
 * v.parse(ClosePayload, payload)
 */
export const ClosePayload = v.object({
  action: v.literal('close'),
  channelId: Bytes32,
  descriptor: Descriptor,
  cumulativeAmount: Amount,
  signature: Signature,
})

/**
 * A session credential payload: a union on `action`; an unknown action is refused (draft-tempo-session-00, "Payload Actions").
 * @example
 * const payload = v.parse(Payload, credential.payload)
 */
export const Payload = v.variant('action', [OpenPayload, TopUpPayload, VoucherPayload, ClosePayload])
export type Payload = v.InferOutput<typeof Payload>
export type OpenPayload = v.InferOutput<typeof OpenPayload>
export type TopUpPayload = v.InferOutput<typeof TopUpPayload>
export type VoucherPayload = v.InferOutput<typeof VoucherPayload>
export type ClosePayload = v.InferOutput<typeof ClosePayload>

/**
 * v1 `action="open"`: no descriptor; the server derives the channel from the transaction (draft-tempo-session-00, "Open Payload").
 * @example
 * v.parse(OpenPayloadV1, payload)
 */
export const OpenPayloadV1 = v.object({
  action: v.literal('open'),
  type: v.literal('transaction'),
  channelId: Bytes32,
  transaction: Transaction,
  authorizedSigner: v.optional(Address),
  cumulativeAmount: AmountV1,
  signature: Signature,
})

/**
 * v1 `action="topUp"`.
 * @example
 * v.parse(TopUpPayloadV1, payload)
 */
export const TopUpPayloadV1 = v.object({
  action: v.literal('topUp'),
  type: v.literal('transaction'),
  channelId: Bytes32,
  transaction: Transaction,
  additionalDeposit: AmountV1,
})

/**
 * v1 `action="voucher"`.
 * @example
 * v.parse(VoucherPayloadV1, payload)
 */
export const VoucherPayloadV1 = v.object({ action: v.literal('voucher'), channelId: Bytes32, cumulativeAmount: AmountV1, signature: Signature })

/**
 * v1 `action="close"`.
 * @example
 * v.parse(ClosePayloadV1, payload)
 */
export const ClosePayloadV1 = v.object({ action: v.literal('close'), channelId: Bytes32, cumulativeAmount: AmountV1, signature: Signature })

/**
 * A v1 session credential payload: the channel is named by its id alone (v1 payloads carry no descriptor; a
 * descriptor sent anyway is ignored), amounts are `uint128`.
 * @example
 * const payload = v.parse(Session.PayloadV1, credential.payload)
 */
export const PayloadV1 = v.variant('action', [OpenPayloadV1, TopUpPayloadV1, VoucherPayloadV1, ClosePayloadV1])
export type PayloadV1 = v.InferOutput<typeof PayloadV1>
export type OpenPayloadV1 = v.InferOutput<typeof OpenPayloadV1>
export type TopUpPayloadV1 = v.InferOutput<typeof TopUpPayloadV1>

/** A session receipt (draft-tempo-session-00, "Receipt Generation"). */
export type SessionReceipt = Receipt.Receipt & {
  intent: 'session'
  challengeId: string
  channelId: string
  acceptedCumulative: string
  spent: string
  units?: number | undefined
  txHash?: string | undefined
}

/**
 * Builds a session receipt: `reference` is the channel id; `units` are this request's.
 * @example
 * Session.receipt({ challengeId, channelId, acceptedCumulative: 250000n, spent: 237500n, units: 500 })
 */
export function receipt(parameters: {
  challengeId: string
  channelId: string
  acceptedCumulative: bigint
  spent: bigint
  units?: number | undefined
  txHash?: string | undefined
  now?: Date | undefined
}): SessionReceipt {
  return {
    method: 'tempo',
    intent: 'session',
    status: 'success',
    timestamp: (parameters.now ?? new Date()).toISOString(),
    reference: parameters.channelId,
    challengeId: parameters.challengeId,
    channelId: parameters.channelId,
    acceptedCumulative: parameters.acceptedCumulative.toString(),
    spent: parameters.spent.toString(),
    ...(parameters.units !== undefined ? { units: parameters.units } : {}),
    ...(parameters.txHash !== undefined ? { txHash: parameters.txHash } : {}),
  }
}

/** Header naming the reusable channel id (draft-tempo-session-00, "Session Snapshot"). */
export const sessionHeader = 'payment-session'
/** Header carrying the base64url JSON snapshot of the channel. */
export const snapshotHeader = 'payment-session-snapshot'

/**
 * A channel snapshot (draft-tempo-session-00, "Session Snapshot").
 * @example
 * v.parse(Snapshot, Session.deserializeSnapshot(header))
 */
export const Snapshot = v.object({
  acceptedCumulative: Amount,
  chainId: v.pipe(v.number(), v.integer(), v.minValue(1)),
  channelId: Bytes32,
  closeRequestedAt: v.optional(v.pipe(v.string(), v.regex(/^\d{1,20}$/))),
  deposit: Amount,
  descriptor: Descriptor,
  escrow: Address,
  requiredCumulative: v.pipe(v.string(), v.regex(/^\d{1,40}$/)),
  settled: Amount,
  spent: Amount,
  units: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))),
  /**
   * The accepted voucher itself, in a bootstrap answer to the proven payer only: a client without local state resumes
   * the channel from it (mppx checks it against `acceptedCumulative`).
   */
  highestVoucher: v.optional(v.object({ channelId: Bytes32, cumulativeAmount: Amount, signature: v.pipe(v.string(), v.regex(/^0x[0-9a-fA-F]{128,130}$/)) })),
})
export type Snapshot = v.InferOutput<typeof Snapshot>

/**
 * Encodes a snapshot for the `Payment-Session-Snapshot` header (base64url JSON, no padding).
 * @example
 * headers.set(Session.snapshotHeader, Session.serializeSnapshot(snapshot))
 */
export function serializeSnapshot(snapshot: Snapshot): string {
  return encodeJson(snapshot)
}

/**
 * Decodes and validates a `Payment-Session-Snapshot` header; throws on anything else.
 * @example
 * const snapshot = Session.deserializeSnapshot(response.headers.get(Session.snapshotHeader)!)
 */
export function deserializeSnapshot(header: string): Snapshot {
  if (header.length > 8 * 1024) throw new EncodingError('snapshot too large')
  return v.parse(Snapshot, decodeJson(header.trim()))
}

/** What a paused stream asks for (draft-tempo-session-00, "Insufficient Balance During Streaming"). */
export type NeedVoucher = {
  channelId: string
  requiredCumulative: string
  acceptedCumulative: string
  deposit: string
}

/**
 * The SSE event a metered stream sends when its balance runs out.
 * @example
 * controller.enqueue(encoder.encode(Session.needVoucherEvent({ channelId, requiredCumulative, acceptedCumulative, deposit })))
 */
export function needVoucherEvent(data: NeedVoucher): string {
  return `event: payment-need-voucher\ndata: ${JSON.stringify(data)}\n\n`
}

/**
 * The SSE event that ends a metered stream with its receipt.
 * @example
 * Session.receiptEvent(receipt) // 'event: payment-receipt\ndata: {…}\n\n'
 */
export function receiptEvent(receipt: SessionReceipt): string {
  return `event: payment-receipt\ndata: ${JSON.stringify(receipt)}\n\n`
}

/**
 * An SSE `message` event, one `data:` line per line of text.
 * @example
 * Session.messageEvent('hello') // 'event: message\ndata: hello\n\n'
 */
export function messageEvent(text: string): string {
  const data = text
    .split(/\r\n|\r|\n/)
    .map((line) => `data: ${line}`)
    .join('\n')
  return `event: message\n${data}\n\n`
}
