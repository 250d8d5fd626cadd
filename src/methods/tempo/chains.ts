/**
 * @module Tempo chains mpp-edge knows and their default tokens and endpoints. The server side needs only
 * these constants; viem's chain definitions (with Tempo's transaction formatters) are for signing clients,
 * through `chainFor`, and stay out of a worker that does not call it.
 */
import type { Address, Chain } from 'viem'
import { tempo as tempoMainnet, tempoModerato } from 'viem/chains'
import * as Amount from '../../core/Amount.js'
import { pathUsd } from './abi.js'

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

// Chain ids and endpoints as in viem's `tempo` and `tempoModerato` definitions.
const known: Record<number, { rpcUrl: string; tokens: Token[] }> = {
  4217: {
    rpcUrl: 'https://rpc.tempo.xyz',
    tokens: [
      { address: usdcE, decimals: 6, symbol: 'USDC.e' },
      { address: pathUsd, decimals: 6, symbol: 'pathUSD' },
    ],
  },
  42431: { rpcUrl: 'https://rpc.moderato.tempo.xyz', tokens: [{ address: pathUsd, decimals: 6, symbol: 'pathUSD' }] },
}

/**
 * The viem chain for a Tempo chain id: the known definition, or Moderato's Tempo formatters under that id
 * for a local chain; `rpcUrl` replaces the default endpoint.
 * @example
 * chainFor(42431, 'http://127.0.0.1:8545').id // 42431
 */
export function chainFor(chainId: number, rpcUrl?: string | undefined): Chain {
  const base = [tempoMainnet, tempoModerato].find((chain) => chain.id === chainId) ?? { ...tempoModerato, id: chainId, name: `Tempo ${chainId}`, testnet: true }
  const http = rpcUrl ? [rpcUrl] : base.rpcUrls.default.http
  return { ...base, rpcUrls: { default: { http } } } as Chain
}

/**
 * The default RPC URL of a known chain.
 * @example
 * defaultRpcUrl(4217) // 'https://rpc.tempo.xyz'
 */
export function defaultRpcUrl(chainId: number): string | undefined {
  return known[chainId]?.rpcUrl
}

/**
 * Tokens accepted by default on a chain (pathUSD everywhere; USDC.e first on mainnet).
 * @example
 * defaultTokens(42431)[0].symbol // 'pathUSD'
 */
export function defaultTokens(chainId: number): Token[] {
  return known[chainId]?.tokens ?? [{ address: pathUsd, decimals: 6, symbol: 'pathUSD' }]
}

/**
 * How a request's amount reads for a person: in display units of its token, named by the token's symbol.
 * @example
 * tokenDisplay(defaultTokens(42431))({ amount: '250000', currency: pathUsd }) // { amount: '0.25', currency: 'pathUSD' }
 */
export function tokenDisplay(tokens: readonly Token[]): (request: { amount: string; currency: string }) => { amount: string; currency: string } {
  return ({ amount, currency }) => {
    const token = tokens.find((t) => t.address.toLowerCase() === currency.toLowerCase())
    return { amount: Amount.display(amount, token?.decimals ?? 6), currency: token?.symbol ?? currency }
  }
}
