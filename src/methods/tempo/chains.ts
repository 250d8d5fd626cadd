/** @module Tempo chains mpp-edge knows (from viem's chain definitions) and their default tokens. */
import type { Address, Chain } from 'viem'
import { tempo as tempoMainnet, tempoModerato } from 'viem/chains'
import { Addresses } from 'viem/tempo'

/** A TIP-20 token the server accepts. */
export type Token = {
  address: Address
  /** Base-unit decimals (6 for TIP-20 tokens). */
  decimals: number
  /** Short name a price may use instead of the address (`currency: 'pathUSD'`). */
  symbol?: string | undefined
}

/**
 * USDC.e on Tempo mainnet.
 * @example
 * defaultTokens(4217)[0].address === usdcE // true
 */
export const usdcE: Address = '0x20C000000000000000000000b9537d11c60E8b50'

const known: Record<number, { chain: Chain; tokens: Token[] }> = {
  [tempoMainnet.id]: {
    chain: tempoMainnet,
    tokens: [
      { address: usdcE, decimals: 6, symbol: 'USDC.e' },
      { address: Addresses.pathUsd, decimals: 6, symbol: 'pathUSD' },
    ],
  },
  [tempoModerato.id]: { chain: tempoModerato, tokens: [{ address: Addresses.pathUsd, decimals: 6, symbol: 'pathUSD' }] },
}

/**
 * The viem chain for a Tempo chain id: the known definition, or Moderato's Tempo formatters under that id
 * for a local chain; `rpcUrl` replaces the default endpoint.
 * @example
 * chainFor(42431, 'http://127.0.0.1:8545').id // 42431
 */
export function chainFor(chainId: number, rpcUrl?: string | undefined): Chain {
  const base = known[chainId]?.chain ?? { ...tempoModerato, id: chainId, name: `Tempo ${chainId}`, testnet: true }
  const http = rpcUrl ? [rpcUrl] : base.rpcUrls.default.http
  return { ...base, rpcUrls: { default: { http } } } as Chain
}

/**
 * The default RPC URL of a known chain.
 * @example
 * defaultRpcUrl(4217) // 'https://rpc.tempo.xyz'
 */
export function defaultRpcUrl(chainId: number): string | undefined {
  return known[chainId]?.chain.rpcUrls.default.http[0]
}

/**
 * Tokens accepted by default on a chain (pathUSD everywhere; USDC.e first on mainnet).
 * @example
 * defaultTokens(42431)[0].symbol // 'pathUSD'
 */
export function defaultTokens(chainId: number): Token[] {
  return known[chainId]?.tokens ?? [{ address: Addresses.pathUsd, decimals: 6, symbol: 'pathUSD' }]
}
