/**
 * @module The few TIP-20 ABI items the method reads and decodes, written out here so the worker does not
 * bundle viem's whole Tempo ABI set (`viem/tempo` Abis is about 195 KiB minified). Same definitions as
 * `Abis.tip20` in viem.
 */

/**
 * TIP-20 `transfer`, `transferWithMemo` and `balanceOf`, and the `Transfer` and `TransferWithMemo` events.
 * @example
 * decodeFunctionData({ abi: tip20, data })
 */
export const tip20 = [
  {
    name: 'transfer',
    type: 'function',
    stateMutability: 'nonpayable',
    inputs: [
      { type: 'address', name: 'to' },
      { type: 'uint256', name: 'amount' },
    ],
    outputs: [{ type: 'bool' }],
  },
  {
    name: 'transferWithMemo',
    type: 'function',
    stateMutability: 'nonpayable',
    inputs: [
      { type: 'address', name: 'to' },
      { type: 'uint256', name: 'amount' },
      { type: 'bytes32', name: 'memo' },
    ],
    outputs: [],
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
      { type: 'uint256', name: 'amount' },
    ],
  },
  {
    name: 'TransferWithMemo',
    type: 'event',
    inputs: [
      { type: 'address', name: 'from', indexed: true },
      { type: 'address', name: 'to', indexed: true },
      { type: 'uint256', name: 'amount' },
      { type: 'bytes32', name: 'memo', indexed: true },
    ],
  },
] as const

/**
 * pathUSD, the TIP-20 stablecoin every Tempo chain has (viem's `Addresses.pathUsd`).
 * @example
 * defaultTokens(42431)[0].address === pathUsd // true
 */
export const pathUsd = '0x20c0000000000000000000000000000000000000'
