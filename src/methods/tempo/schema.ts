/** @module Valibot schemas of the Tempo charge request and credential payloads (draft-tempo-charge-00, "Request Schema", "Credential Schema"). */
import { isAddress } from 'viem'
import * as v from 'valibot'

/**
 * A 20-byte hex address; compared by value, never by string form (draft-tempo-charge-00, "Split Entry Schema").
 * @example
 * v.parse(Address, input)
 */
export const Address = v.pipe(
  v.string(),
  v.check((value) => isAddress(value, { strict: false }), 'expected a 20-byte hex address'),
  v.transform((value) => value as `0x${string}`),
)

/**
 * A `bytes32` hex value (memos, transaction hashes).
 * @example
 * v.parse(Bytes32, input)
 */
export const Bytes32 = v.pipe(
  v.string(),
  v.regex(/^0x[0-9a-fA-F]{64}$/, 'expected 32 bytes of 0x-prefixed hex'),
  v.transform((value) => value as `0x${string}`),
)

/**
 * A base-10 integer string with no sign, decimal point, exponent or padding (draft-tempo-charge-00, "Split Entry Schema").
 * @example
 * v.parse(BaseUnits, input)
 */
export const BaseUnits = v.pipe(v.string(), v.regex(/^(0|[1-9][0-9]*)$/, 'expected a base-10 integer string'), v.maxLength(78))

/** Non-zero base units. */
const PositiveBaseUnits = v.pipe(BaseUnits, v.check((value) => value !== '0', 'expected a positive amount'))

/**
 * Submission modes for non-zero charges.
 * @example
 * v.parse(Mode, input)
 */
export const Mode = v.picklist(['pull', 'push'])
export type Mode = v.InferOutput<typeof Mode>

/**
 * One extra recipient of a charge (draft-tempo-charge-00, "Split Payments").
 * @example
 * v.parse(Split, input)
 */
export const Split = v.object({
  /** Base units this recipient receives. */
  amount: PositiveBaseUnits,
  /** Memo the split transfer must carry (`transferWithMemo`). */
  memo: v.optional(Bytes32),
  /** Recipient address. */
  recipient: Address,
})
export type Split = v.InferOutput<typeof Split>

/**
 * Most splits a request may carry: on Tempo's T4 rules a split costs ~22k gas to an existing holder and ~267k to a
 * new one, so ten keep a sponsored charge (~3M gas at worst) within the sponsor's default gas cap (4M).
 * @example
 * v.parse(v.pipe(v.array(Split), v.maxLength(maxSplits)), splits)
 */
export const maxSplits = 10

/**
 * `methodDetails` of a Tempo charge request.
 * @example
 * v.parse(MethodDetails, input)
 */
export const MethodDetails = v.object({
  /** Tempo chain id; mpp-edge always sends it. */
  chainId: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(Number.MAX_SAFE_INTEGER)),
  /** True when the server pays the transaction fee. */
  feePayer: v.optional(v.boolean()),
  /** Server-chosen memo the primary transfer must carry. */
  memo: v.optional(Bytes32),
  /** Additional recipients paid out of `amount`. */
  splits: v.optional(v.pipe(v.array(Split), v.minLength(1), v.maxLength(maxSplits))),
  /** Non-zero submission modes the server accepts. */
  supportedModes: v.optional(v.pipe(v.array(Mode), v.minLength(1), v.maxLength(2))),
})
export type MethodDetails = v.InferOutput<typeof MethodDetails>

/**
 * The `request` of a Tempo charge challenge.
 * @example
 * v.parse(Request, input)
 */
export const Request = v.pipe(
  v.object({
    /** Total amount in base units of `currency`. */
    amount: BaseUnits,
    /** TIP-20 token address. */
    currency: Address,
    /** Primary recipient. */
    recipient: Address,
    /** Display text for the payer. */
    description: v.optional(v.string()),
    /** Merchant reference, echoed in the receipt. */
    externalId: v.optional(v.string()),
    methodDetails: MethodDetails,
  }),
  // draft-tempo-charge-00, "Split Payments / Constraints": the primary recipient keeps a non-zero remainder.
  v.check(
    (request) => request.methodDetails.splits === undefined || splitTotal(request.methodDetails.splits) < BigInt(request.amount),
    'splits must sum to less than amount',
  ),
)
export type Request = v.InferOutput<typeof Request>

const Hex = v.pipe(v.string(), v.regex(/^0x([0-9a-fA-F]{2})+$/, 'expected 0x-prefixed hex bytes'))

/**
 * `type="transaction"`: a signed Tempo transaction for the server to broadcast (pull).
 * @example
 * v.parse(TransactionPayload, input)
 */
export const TransactionPayload = v.object({
  type: v.literal('transaction'),
  /** RLP of the signed type-0x76 transaction (0x78 for a sponsorship hand-off), hex. */
  signature: v.pipe(Hex, v.maxLength(32_768)),
})

/**
 * `type="hash"`: the hash of a transaction the client broadcast itself (push).
 * @example
 * v.parse(HashPayload, input)
 */
export const HashPayload = v.object({
  type: v.literal('hash'),
  hash: Bytes32,
})

/**
 * `type="proof"`: an EIP-712 signature for a zero-amount charge.
 * @example
 * v.parse(ProofPayload, input)
 */
export const ProofPayload = v.object({
  type: v.literal('proof'),
  signature: v.pipe(Hex, v.maxLength(4_096)),
})

/**
 * The credential payload of a Tempo charge.
 * @example
 * v.parse(Payload, input)
 */
export const Payload = v.variant('type', [TransactionPayload, HashPayload, ProofPayload])
export type Payload = v.InferOutput<typeof Payload>

/**
 * Sum of split amounts in base units.
 * @example
 * splitTotal([{ amount: '50000', recipient }]) // 50000n
 */
export function splitTotal(splits: readonly { amount: string }[] | undefined): bigint {
  return (splits ?? []).reduce((sum, split) => sum + BigInt(split.amount), 0n)
}
