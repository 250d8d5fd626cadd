/**
 * @module The local plain EVM chain: a plain anvil (not Tempo mode, chain id 31337) with the EIP-3009 token stand-in
 * placed at `evmToken` and `otherEvmToken` (`mpp-edge/testing`). Node only.
 */
import { evmChainId, evmRpc, evmToken, otherEvmToken } from '../evm-chain.js'
import { authorizationTokenRuntime } from '../token-bytecode.js'
import { startAnvil } from './anvil.js'

/** What `startEvmChain` returns. */
export type EvmChain = { url: string; chainId: number; stop: () => Promise<void> }

/**
 * Starts a plain anvil on `port` and places the token stand-in; `stop` ends the chain.
 * @example
 * const chain = await startEvmChain({ port: await freePort() })
 * await chain.stop()
 */
export async function startEvmChain(options: { port: number; runtime?: `0x${string}` | undefined }): Promise<EvmChain> {
  const anvil = await startAnvil({ port: options.port, chainId: evmChainId, network: 'evm' })
  try {
    for (const token of [evmToken, otherEvmToken]) await evmRpc(anvil.url, 'anvil_setCode', [token, options.runtime ?? authorizationTokenRuntime])
    return { url: anvil.url, chainId: evmChainId, stop: anvil.stop }
  } catch (error) {
    await anvil.stop()
    throw error
  }
}
