/**
 * @module Helpers for the local plain EVM chain (a plain anvil, chain id 31337, started by `mpp-edge/testing/node`
 * with the EIP-3009 token stand-in placed at `evmToken` and `otherEvmToken`), usable inside workerd (fetch only) and
 * in Node: payers holding the token (they need no ETH: they only sign), a settler key holding ETH for gas, and
 * balances. Anvil fills in the minter's nonces itself, so test files can mint in parallel.
 */
import { type Address, type Hex, decodeFunctionResult, encodeFunctionData } from 'viem'
import { generatePrivateKey, type PrivateKeyAccount, privateKeyToAccount } from 'viem/accounts'
import { eip3009 } from '../methods/evm/abi.js'

/**
 * The chain id the local EVM chain runs with (anvil's default).
 * @example
 * evm({ chainId: evmChainId, recipient, token: { address: evmToken, ...evmTokenDomain, decimals: 6 }, rpcUrl })
 */
export const evmChainId = 31337
/**
 * Where the token stand-in sits on the local EVM chain.
 * @example
 * await tokenBalance(url, recipient) // of evmToken by default
 */
export const evmToken: Address = '0x3009000000000000000000000000000000000000'
/**
 * A second copy of the token stand-in (its EIP-712 domain differs by its address only): a token the seller did not ask for.
 * @example
 * await mintTokens(url, payer.address, 1_000_000n, otherEvmToken)
 */
export const otherEvmToken: Address = '0x3009000000000000000000000000000000000001'
/**
 * The token stand-in's EIP-712 domain name and version (USDC's) and its decimals.
 * @example
 * const token = { address: evmToken, ...evmTokenDomain }
 */
export const evmTokenDomain = { name: 'USD Coin', version: '2', decimals: 6 } as const
/**
 * The dev account that may mint the token stand-in (anvil's account 0, which anvil signs for).
 * @example
 * await evmRpc(url, 'eth_sendTransaction', [{ from: evmMinter, to: evmToken, data }])
 */
export const evmMinter: Address = '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266'

/**
 * One JSON-RPC call to the local EVM chain.
 * @example
 * const block = await evmRpc<Hex>(url, 'eth_blockNumber')
 */
export async function evmRpc<T = unknown>(url: string, method: string, params: unknown[] = []): Promise<T> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) })
  const body = (await response.json()) as { result?: T; error?: { message: string } }
  if (body.error) throw new Error(`${method}: ${body.error.message}`)
  return body.result as T
}

/**
 * Sends a transaction from the minter (anvil signs and mines it) and resolves once it is mined; a revert fails.
 * @example
 * await sendFromMinter(url, { to: evmToken, data })
 */
export async function sendFromMinter(url: string, call: { to: Address; data: Hex }): Promise<Hex> {
  const hash = await evmRpc<Hex>(url, 'eth_sendTransaction', [{ from: evmMinter, ...call }])
  for (let i = 0; i < 100; i++) {
    const receipt = await evmRpc<{ status: Hex } | null>(url, 'eth_getTransactionReceipt', [hash])
    if (receipt) {
      if (receipt.status !== '0x1') throw new Error(`transaction ${hash} reverted`)
      return hash
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`transaction ${hash} was not mined`)
}

/**
 * Mints `amount` base units of the token stand-in (default `evmToken`) to an address.
 * @example
 * await mintTokens(url, payer.address, 5_000_000n) // 5 USDC
 */
export async function mintTokens(url: string, to: Address, amount: bigint, token: Address = evmToken): Promise<void> {
  await sendFromMinter(url, { to: token, data: encodeFunctionData({ abi: mintAbi, functionName: 'mint', args: [to, amount] }) })
}

/**
 * A fresh payer holding `amount` base units of the token stand-in (default 10 USDC) and no ETH.
 * @example
 * const payer = await fundedEvmPayer(url)
 */
export async function fundedEvmPayer(url: string, amount = 10_000_000n, token: Address = evmToken): Promise<PrivateKeyAccount> {
  const account = privateKeyToAccount(generatePrivateKey())
  await mintTokens(url, account.address, amount, token)
  return account
}

/**
 * A fresh settler key holding `wei` of ETH (default 1 ETH) for the gas of settlements.
 * @example
 * const settler = await evmSettler(url)
 * evm({ …, settle: { privateKey: settler.privateKey } })
 */
export async function evmSettler(url: string, wei = 10n ** 18n): Promise<{ privateKey: Hex; address: Address }> {
  const privateKey = generatePrivateKey()
  const { address } = privateKeyToAccount(privateKey)
  await evmRpc(url, 'anvil_setBalance', [address, `0x${wei.toString(16)}`])
  return { privateKey, address }
}

/**
 * A balance of the token stand-in (default `evmToken`) in base units.
 * @example
 * expect(await tokenBalance(url, recipient)).toBe(250_000n)
 */
export async function tokenBalance(url: string, account: Address, token: Address = evmToken): Promise<bigint> {
  const data = encodeFunctionData({ abi: eip3009, functionName: 'balanceOf', args: [account] })
  return decodeFunctionResult({ abi: eip3009, functionName: 'balanceOf', data: await evmRpc<Hex>(url, 'eth_call', [{ to: token, data }, 'latest']) })
}

/**
 * An ETH balance in wei.
 * @example
 * const spent = before - (await ethBalance(url, settler.address))
 */
export async function ethBalance(url: string, account: Address): Promise<bigint> {
  return BigInt(await evmRpc<Hex>(url, 'eth_getBalance', [account, 'latest']))
}

/**
 * Whether an EIP-3009 authorization nonce of `authorizer` is used (or canceled) on the token.
 * @example
 * expect(await authorizationUsed(url, payer.address, nonce)).toBe(true)
 */
export async function authorizationUsed(url: string, authorizer: Address, nonce: Hex, token: Address = evmToken): Promise<boolean> {
  const data = encodeFunctionData({ abi: eip3009, functionName: 'authorizationState', args: [authorizer, nonce] })
  return decodeFunctionResult({ abi: eip3009, functionName: 'authorizationState', data: await evmRpc<Hex>(url, 'eth_call', [{ to: token, data }, 'latest']) })
}

const mintAbi = [
  {
    name: 'mint',
    type: 'function',
    stateMutability: 'nonpayable',
    inputs: [
      { type: 'address', name: 'to' },
      { type: 'uint256', name: 'value' },
    ],
    outputs: [],
  },
] as const
