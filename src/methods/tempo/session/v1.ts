/**
 * @module Session protocol v1: the `TempoStreamChannel` escrow contract's ABI items mpp-edge uses and its channel
 * id (draft-tempo-session-00, "Contract-Backed Channel State", "Legacy Contract Reference Implementation"). v1
 * vouchers use `voucherTypedData(…, { protocol: 'v1' })` ("Tempo Stream Channel", uint128).
 */
import { type Address, type Hex, encodeAbiParameters, keccak256 } from 'viem'
import { indexedParties, sharedEscrowItems } from './abi.js'

/**
 * The largest v1 channel amount (`uint128`).
 * @example
 * if (deposit > maxUint128) throw new VerificationFailedError()
 */
export const maxUint128 = 2n ** 128n - 1n

/** A v1 channel's identifying fields (its id also binds the escrow and the chain). */
export type ChannelV1 = { payer: Address; payee: Address; token: Address; salt: Hex; authorizedSigner: Address }

const idParameters = [
  { type: 'address' },
  { type: 'address' },
  { type: 'address' },
  { type: 'bytes32' },
  { type: 'address' },
  { type: 'address' },
  { type: 'uint256' },
] as const

/**
 * The v1 channel id: keccak256(abi.encode(payer, payee, token, salt, authorizedSigner, escrow, chainId)).
 * @example
 * channelIdV1({ payer, payee, token, salt, authorizedSigner: zeroAddress }, { escrow, chainId: 42431 })
 */
export function channelIdV1(c: ChannelV1, at: { escrow: Address; chainId: number }): Hex {
  return keccak256(encodeAbiParameters(idParameters, [c.payer, c.payee, c.token, c.salt, c.authorizedSigner, at.escrow, BigInt(at.chainId)]))
}

/**
 * The v1 escrow functions, events and errors (as the deployed `TempoStreamChannel` has them); the items it shares
 * with the channel reserve come from `sharedEscrowItems`.
 * @example
 * encodeFunctionData({ abi: streamChannelAbi, functionName: 'settle', args: [channelId, 1000n, signature] })
 */
export const streamChannelAbi = [
  {
    type: 'function',
    name: 'open',
    stateMutability: 'nonpayable',
    inputs: [
      { name: 'payee', type: 'address' },
      { name: 'token', type: 'address' },
      { name: 'deposit', type: 'uint128' },
      { name: 'salt', type: 'bytes32' },
      { name: 'authorizedSigner', type: 'address' },
    ],
    outputs: [{ name: 'channelId', type: 'bytes32' }],
  },
  {
    type: 'function',
    name: 'settle',
    stateMutability: 'nonpayable',
    inputs: [
      { name: 'channelId', type: 'bytes32' },
      { name: 'cumulativeAmount', type: 'uint128' },
      { name: 'signature', type: 'bytes' },
    ],
    outputs: [],
  },
  {
    type: 'function',
    name: 'topUp',
    stateMutability: 'nonpayable',
    inputs: [
      { name: 'channelId', type: 'bytes32' },
      { name: 'additionalDeposit', type: 'uint256' },
    ],
    outputs: [],
  },
  {
    type: 'function',
    name: 'close',
    stateMutability: 'nonpayable',
    inputs: [
      { name: 'channelId', type: 'bytes32' },
      { name: 'cumulativeAmount', type: 'uint128' },
      { name: 'signature', type: 'bytes' },
    ],
    outputs: [],
  },
  { type: 'function', name: 'requestClose', stateMutability: 'nonpayable', inputs: [{ name: 'channelId', type: 'bytes32' }], outputs: [] },
  { type: 'function', name: 'withdraw', stateMutability: 'nonpayable', inputs: [{ name: 'channelId', type: 'bytes32' }], outputs: [] },
  {
    type: 'function',
    name: 'getChannel',
    stateMutability: 'view',
    inputs: [{ name: 'channelId', type: 'bytes32' }],
    outputs: [
      {
        name: 'channel',
        type: 'tuple',
        components: [
          { name: 'finalized', type: 'bool' },
          { name: 'closeRequestedAt', type: 'uint64' },
          { name: 'payer', type: 'address' },
          { name: 'payee', type: 'address' },
          { name: 'token', type: 'address' },
          { name: 'authorizedSigner', type: 'address' },
          { name: 'deposit', type: 'uint128' },
          { name: 'settled', type: 'uint128' },
        ],
      },
    ],
  },
  {
    type: 'event',
    name: 'ChannelOpened',
    inputs: [
      ...indexedParties,
      { name: 'token', type: 'address', indexed: false },
      { name: 'authorizedSigner', type: 'address', indexed: false },
      { name: 'salt', type: 'bytes32', indexed: false },
      { name: 'deposit', type: 'uint256', indexed: false },
    ],
  },
  {
    type: 'event',
    name: 'Settled',
    inputs: [
      ...indexedParties,
      { name: 'cumulativeAmount', type: 'uint256', indexed: false },
      { name: 'deltaPaid', type: 'uint256', indexed: false },
      { name: 'newSettled', type: 'uint256', indexed: false },
    ],
  },
  {
    type: 'event',
    name: 'TopUp',
    inputs: [...indexedParties, { name: 'additionalDeposit', type: 'uint256', indexed: false }, { name: 'newDeposit', type: 'uint256', indexed: false }],
  },
  {
    type: 'event',
    name: 'ChannelClosed',
    inputs: [...indexedParties, { name: 'settledToPayee', type: 'uint256', indexed: false }, { name: 'refundedToPayer', type: 'uint256', indexed: false }],
  },
  ...sharedEscrowItems,
  { type: 'error', name: 'ChannelFinalized', inputs: [] },
  { type: 'error', name: 'NotPayee', inputs: [] },
  { type: 'error', name: 'TransferFailed', inputs: [] },
] as const
