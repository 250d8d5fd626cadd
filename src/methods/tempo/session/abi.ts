/**
 * @module The TIP-20 channel reserve (TIP-1034, `sessionProtocol: "v2"`): its address and the ABI items
 * mpp-edge calls or reads (draft-tempo-session-00, "Precompile-Backed Channel State"). Our own, minimal
 * fragment, so the bundle does not carry viem/tempo's full ABIs.
 */
import type { Address } from 'viem'

/**
 * Address of the TIP-20 channel reserve precompile.
 * @example
 * channelId(descriptor, { escrow: tip20ChannelReserve, chainId: 4217 })
 */
export const tip20ChannelReserve: Address = '0x4d50500000000000000000000000000000000000'

/**
 * Seconds between a payer's `requestClose` and the earliest `withdraw` (`CLOSE_GRACE_PERIOD`, 15 minutes).
 * @example
 * const graceEnds = state.closeRequestedAt + Number(closeGracePeriodSeconds)
 */
export const closeGracePeriodSeconds = 900n

/**
 * The largest v2 channel amount (`uint96`).
 * @example
 * if (deposit > maxUint96) throw new VerificationFailedError()
 */
export const maxUint96 = 2n ** 96n - 1n

/**
 * Whether an amount fits a v2 channel amount (0 ≤ value ≤ 2^96 − 1).
 * @example
 * isUint96(2n ** 96n) // false
 */
export function isUint96(value: bigint): boolean {
  return value >= 0n && value <= maxUint96
}

const descriptorComponents = [
  { name: 'payer', type: 'address' },
  { name: 'payee', type: 'address' },
  { name: 'operator', type: 'address' },
  { name: 'token', type: 'address' },
  { name: 'salt', type: 'bytes32' },
  { name: 'authorizedSigner', type: 'address' },
  { name: 'expiringNonceHash', type: 'bytes32' },
] as const

const descriptor = { name: 'descriptor', type: 'tuple', components: descriptorComponents } as const

const stateComponents = [
  { name: 'settled', type: 'uint96' },
  { name: 'deposit', type: 'uint96' },
  { name: 'closeRequestedAt', type: 'uint32' },
] as const

/**
 * The indexed fields every escrow event starts with, in v1 and v2 alike.
 * @example
 * const event = { type: 'event', name: 'CloseRequestCancelled', inputs: [...indexedParties] } as const
 */
export const indexedParties = [
  { name: 'channelId', type: 'bytes32', indexed: true },
  { name: 'payer', type: 'address', indexed: true },
  { name: 'payee', type: 'address', indexed: true },
] as const

/**
 * The ABI items the v1 stream channel and the v2 channel reserve share exactly: the close-request events and the
 * errors of the same name (no arguments, so the same selectors).
 * @example
 * const abi = [...ownItems, ...sharedEscrowItems] as const
 */
export const sharedEscrowItems = [
  { type: 'event', name: 'CloseRequested', inputs: [...indexedParties, { name: 'closeGraceEnd', type: 'uint256', indexed: false }] },
  { type: 'event', name: 'CloseRequestCancelled', inputs: [...indexedParties] },
  { type: 'error', name: 'ChannelAlreadyExists', inputs: [] },
  { type: 'error', name: 'ChannelNotFound', inputs: [] },
  { type: 'error', name: 'NotPayer', inputs: [] },
  { type: 'error', name: 'InvalidPayee', inputs: [] },
  { type: 'error', name: 'InvalidSignature', inputs: [] },
  { type: 'error', name: 'AmountExceedsDeposit', inputs: [] },
  { type: 'error', name: 'AmountNotIncreasing', inputs: [] },
  { type: 'error', name: 'CloseNotReady', inputs: [] },
  { type: 'error', name: 'DepositOverflow', inputs: [] },
] as const

/**
 * The channel reserve functions, events and errors mpp-edge uses.
 * @example
 * encodeFunctionData({ abi: escrowAbi, functionName: 'settle', args: [descriptorTuple(d), 1000n, signature] })
 */
export const escrowAbi = [
  {
    type: 'function',
    name: 'open',
    stateMutability: 'nonpayable',
    inputs: [
      { name: 'payee', type: 'address' },
      { name: 'operator', type: 'address' },
      { name: 'token', type: 'address' },
      { name: 'deposit', type: 'uint96' },
      { name: 'salt', type: 'bytes32' },
      { name: 'authorizedSigner', type: 'address' },
    ],
    outputs: [{ name: 'channelId', type: 'bytes32' }],
  },
  {
    type: 'function',
    name: 'settle',
    stateMutability: 'nonpayable',
    inputs: [descriptor, { name: 'cumulativeAmount', type: 'uint96' }, { name: 'signature', type: 'bytes' }],
    outputs: [],
  },
  {
    type: 'function',
    name: 'topUp',
    stateMutability: 'nonpayable',
    inputs: [descriptor, { name: 'additionalDeposit', type: 'uint96' }],
    outputs: [],
  },
  {
    type: 'function',
    name: 'close',
    stateMutability: 'nonpayable',
    inputs: [
      descriptor,
      { name: 'cumulativeAmount', type: 'uint96' },
      { name: 'captureAmount', type: 'uint96' },
      { name: 'signature', type: 'bytes' },
    ],
    outputs: [],
  },
  { type: 'function', name: 'requestClose', stateMutability: 'nonpayable', inputs: [descriptor], outputs: [] },
  { type: 'function', name: 'withdraw', stateMutability: 'nonpayable', inputs: [descriptor], outputs: [] },
  {
    type: 'function',
    name: 'getChannel',
    stateMutability: 'view',
    inputs: [descriptor],
    outputs: [
      {
        name: 'channel',
        type: 'tuple',
        components: [descriptor, { name: 'state', type: 'tuple', components: stateComponents }],
      },
    ],
  },
  {
    type: 'function',
    name: 'getChannelState',
    stateMutability: 'view',
    inputs: [{ name: 'channelId', type: 'bytes32' }],
    outputs: [{ name: 'state', type: 'tuple', components: stateComponents }],
  },
  {
    type: 'event',
    name: 'ChannelOpened',
    inputs: [
      ...indexedParties,
      { name: 'operator', type: 'address', indexed: false },
      { name: 'token', type: 'address', indexed: false },
      { name: 'authorizedSigner', type: 'address', indexed: false },
      { name: 'salt', type: 'bytes32', indexed: false },
      { name: 'expiringNonceHash', type: 'bytes32', indexed: false },
      { name: 'deposit', type: 'uint96', indexed: false },
    ],
  },
  {
    type: 'event',
    name: 'Settled',
    inputs: [
      ...indexedParties,
      { name: 'cumulativeAmount', type: 'uint96', indexed: false },
      { name: 'deltaPaid', type: 'uint96', indexed: false },
      { name: 'newSettled', type: 'uint96', indexed: false },
    ],
  },
  {
    type: 'event',
    name: 'TopUp',
    inputs: [
      ...indexedParties,
      { name: 'additionalDeposit', type: 'uint96', indexed: false },
      { name: 'newDeposit', type: 'uint96', indexed: false },
    ],
  },
  {
    type: 'event',
    name: 'ChannelClosed',
    inputs: [
      ...indexedParties,
      { name: 'settledToPayee', type: 'uint96', indexed: false },
      { name: 'refundedToPayer', type: 'uint96', indexed: false },
    ],
  },
  ...sharedEscrowItems,
  { type: 'error', name: 'NotPayeeOrOperator', inputs: [] },
  { type: 'error', name: 'InvalidToken', inputs: [] },
  { type: 'error', name: 'ZeroDeposit', inputs: [] },
  { type: 'error', name: 'ExpiringNonceHashNotSet', inputs: [] },
  { type: 'error', name: 'CaptureAmountInvalid', inputs: [] },
] as const
