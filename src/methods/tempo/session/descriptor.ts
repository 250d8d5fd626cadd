/**
 * @module The v2 channel descriptor carried in every session payload, its valibot schema, and the channel id
 * derived from it (draft-tempo-session-00, "Channel Descriptor").
 */
import { type Address, type Hex, encodeAbiParameters, keccak256, zeroAddress } from 'viem'
import * as v from 'valibot'
import { VerificationFailedError } from '../../../core/Errors.js'

/** A v2 channel descriptor; every field lowercase hex. */
export type Descriptor = {
  /** The wallet that funds the channel (the sender of the open transaction). */
  payer: Address
  /** The wallet settlement pays (the challenge `recipient`). */
  payee: Address
  /** A payee-side operator allowed to settle and close; zero when unset. */
  operator: Address
  /** The TIP-20 token held in escrow (the challenge `currency`). */
  token: Address
  /** Payer-chosen entropy. */
  salt: Hex
  /** The voucher signer; zero delegates to `payer`. */
  authorizedSigner: Address
  /** Hash of the sender-signed open transaction (see `expiringNonceHash`). */
  expiringNonceHash: Hex
}

const address = v.pipe(
  v.string(),
  v.regex(/^0x[0-9a-fA-F]{40}$/, 'expected a 20-byte hex address'),
  v.transform((value) => value.toLowerCase() as Address),
)
const bytes32 = v.pipe(
  v.string(),
  v.regex(/^0x[0-9a-fA-F]{64}$/, 'expected 32 bytes of 0x-prefixed hex'),
  v.transform((value) => value.toLowerCase() as Hex),
)

/**
 * A v2 descriptor as a payload carries it: hex accepted in any case, normalised to lowercase (draft-tempo-session-00, "Hexadecimal Values").
 * @example
 * const descriptor = v.parse(descriptorSchema, payload.descriptor)
 */
export const descriptorSchema = v.object({
  payer: address,
  payee: address,
  operator: address,
  token: address,
  salt: bytes32,
  authorizedSigner: address,
  expiringNonceHash: bytes32,
})

/**
 * A `bytes32` channel id in any case, normalised to lowercase.
 * @example
 * v.parse(channelIdSchema, payload.channelId)
 */
export const channelIdSchema = bytes32

/**
 * The descriptor with every address and hash lowercased (for values not read through the schema).
 * @example
 * normalizeDescriptor({ ...d, payer: account.address })
 */
export function normalizeDescriptor(d: Descriptor): Descriptor {
  return {
    payer: d.payer.toLowerCase() as Address,
    payee: d.payee.toLowerCase() as Address,
    operator: d.operator.toLowerCase() as Address,
    token: d.token.toLowerCase() as Address,
    salt: d.salt.toLowerCase() as Hex,
    authorizedSigner: d.authorizedSigner.toLowerCase() as Address,
    expiringNonceHash: d.expiringNonceHash.toLowerCase() as Hex,
  }
}

const idParameters = [
  { type: 'address' },
  { type: 'address' },
  { type: 'address' },
  { type: 'address' },
  { type: 'bytes32' },
  { type: 'address' },
  { type: 'bytes32' },
  { type: 'address' },
  { type: 'uint256' },
] as const

/**
 * The v2 channel id: keccak256(abi.encode(payer, payee, operator, token, salt, authorizedSigner, expiringNonceHash, escrow, chainId)).
 * @example
 * channelId(descriptor, { escrow: tip20ChannelReserve, chainId: 42431 })
 */
export function channelId(d: Descriptor, at: { escrow: Address; chainId: number }): Hex {
  return keccak256(
    encodeAbiParameters(idParameters, [
      d.payer,
      d.payee,
      d.operator,
      d.token,
      d.salt,
      d.authorizedSigner,
      d.expiringNonceHash,
      at.escrow,
      BigInt(at.chainId),
    ]),
  )
}

/**
 * The account whose signature a voucher needs: `authorizedSigner`, or `payer` when it is zero
 * (draft-tempo-session-00, "Signature Verification"). Read it from a descriptor the chain has confirmed.
 * @example
 * verifyVoucher(voucher, { escrow, chainId, signer: expectedSigner(descriptor) })
 */
export function expectedSigner(d: Descriptor): Address {
  return (BigInt(d.authorizedSigner) === 0n ? d.payer : d.authorizedSigner).toLowerCase() as Address
}

/**
 * Whether two descriptors name the same channel (every field equal, case-insensitively).
 * @example
 * if (!sameDescriptor(payload.descriptor, stored)) throw new VerificationFailedError()
 */
export function sameDescriptor(a: Descriptor, b: Descriptor): boolean {
  return (Object.keys(a) as (keyof Descriptor)[]).every((key) => a[key].toLowerCase() === b[key].toLowerCase())
}

/** What a payload's descriptor is checked against. */
export type DescriptorCheck = {
  /** The `channelId` the payload names. */
  channelId: Hex
  /** `methodDetails.escrowContract`. */
  escrow: Address
  /** `methodDetails.chainId`. */
  chainId: number
  /** The challenge `recipient`. */
  recipient: Address
  /** The challenge `currency`. */
  currency: Address
  /** `methodDetails.operator`, when the challenge advertises one. */
  operator?: Address | undefined
}

/**
 * Checks a payload's descriptor against the challenge: the recomputed channel id (which binds escrow and
 * chain), payee = recipient, token = currency, operator = the advertised one or zero (draft-tempo-session-00,
 * "Channel Descriptor").
 * @example
 * checkDescriptor(descriptor, { channelId: payload.channelId, escrow, chainId, recipient, currency })
 */
export function checkDescriptor(d: Descriptor, check: DescriptorCheck): void {
  const refuse = (detail: string) => {
    throw new VerificationFailedError({ detail })
  }
  if (channelId(d, check).toLowerCase() !== check.channelId.toLowerCase()) {
    refuse('the channel id does not match the descriptor for this escrow and chain')
  }
  if (d.payee.toLowerCase() !== check.recipient.toLowerCase()) refuse('the channel pays another payee than the challenge recipient')
  if (d.token.toLowerCase() !== check.currency.toLowerCase()) refuse('the channel holds another token than the challenge currency')
  if (d.operator.toLowerCase() !== (check.operator ?? zeroAddress).toLowerCase()) refuse('the channel names another operator than the challenge')
}

/**
 * The descriptor as the escrow's ABI tuple argument.
 * @example
 * encodeFunctionData({ abi: escrowAbi, functionName: 'requestClose', args: [descriptorTuple(d)] })
 */
export function descriptorTuple(d: Descriptor) {
  return {
    payer: d.payer,
    payee: d.payee,
    operator: d.operator,
    token: d.token,
    salt: d.salt,
    authorizedSigner: d.authorizedSigner,
    expiringNonceHash: d.expiringNonceHash,
  }
}
