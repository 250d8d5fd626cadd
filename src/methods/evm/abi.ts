/**
 * @module The EIP-3009 and ERC-20 ABI items the `evm` method calls and decodes (EIP-3009 "Specification"; the same
 * signatures as USDC's FiatToken v2).
 */

/**
 * `transferWithAuthorization` (v/r/s form), `authorizationState`, `balanceOf`, and the `Transfer` and
 * `AuthorizationUsed` events.
 * @example
 * encodeFunctionData({ abi: eip3009, functionName: 'authorizationState', args: [from, nonce] })
 */
export const eip3009 = [
  {
    name: 'transferWithAuthorization',
    type: 'function',
    stateMutability: 'nonpayable',
    inputs: [
      { type: 'address', name: 'from' },
      { type: 'address', name: 'to' },
      { type: 'uint256', name: 'value' },
      { type: 'uint256', name: 'validAfter' },
      { type: 'uint256', name: 'validBefore' },
      { type: 'bytes32', name: 'nonce' },
      { type: 'uint8', name: 'v' },
      { type: 'bytes32', name: 'r' },
      { type: 'bytes32', name: 's' },
    ],
    outputs: [],
  },
  {
    name: 'authorizationState',
    type: 'function',
    stateMutability: 'view',
    inputs: [
      { type: 'address', name: 'authorizer' },
      { type: 'bytes32', name: 'nonce' },
    ],
    outputs: [{ type: 'bool' }],
  },
  {
    name: 'balanceOf',
    type: 'function',
    stateMutability: 'view',
    inputs: [{ type: 'address', name: 'account' }],
    outputs: [{ type: 'uint256' }],
  },
  {
    name: 'Transfer',
    type: 'event',
    inputs: [
      { type: 'address', name: 'from', indexed: true },
      { type: 'address', name: 'to', indexed: true },
      { type: 'uint256', name: 'value' },
    ],
  },
  {
    name: 'AuthorizationUsed',
    type: 'event',
    inputs: [
      { type: 'address', name: 'authorizer', indexed: true },
      { type: 'bytes32', name: 'nonce', indexed: true },
    ],
  },
] as const

/**
 * The EIP-712 types of an EIP-3009 transfer authorization (EIP-3009, "transferWithAuthorization").
 * @example
 * await account.signTypedData({ domain, types: authorizationTypes, primaryType: 'TransferWithAuthorization', message })
 */
export const authorizationTypes = {
  TransferWithAuthorization: [
    { name: 'from', type: 'address' },
    { name: 'to', type: 'address' },
    { name: 'value', type: 'uint256' },
    { name: 'validAfter', type: 'uint256' },
    { name: 'validBefore', type: 'uint256' },
    { name: 'nonce', type: 'bytes32' },
  ],
} as const
