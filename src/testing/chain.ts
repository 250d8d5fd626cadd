/**
 * @module Helpers for the local `anvil --network tempo --hardfork T4` chain, usable inside workerd (viem over
 * fetch) and in Node: a client, payer accounts funded from anvil's dev account (one account pays any number of
 * times on T4), and TIP-20 balances. Funding uses random 2D nonce lanes of the dev account, so test files can
 * fund in parallel.
 */
import { type Address, type Hex, type TransactionReceipt, createClient, http } from 'viem'
import { type PrivateKeyAccount, generatePrivateKey, mnemonicToAccount, privateKeyToAccount } from 'viem/accounts'
import { prepareTransactionRequest, readContract, sendRawTransactionSync, signTransaction } from 'viem/actions'
import { Abis, Actions } from 'viem/tempo'
import { chainFor } from '../methods/tempo/chains.js'

/**
 * The chain id the local chain runs with (Tempo's testnet id).
 * @example
 * tempo({ chainId, recipient, rpcUrl: env.TEMPO_RPC_URL })
 */
export const chainId = 42431
/**
 * pathUSD, the TIP-20 precompile every Tempo chain has (6 decimals).
 * @example
 * await balanceOf(client, recipient, pathUsd) // 10000n after a 0.01 payment
 */
export const pathUsd: Address = '0x20c0000000000000000000000000000000000000'
/**
 * Anvil's dev account 0 (the well-known test mnemonic), which holds a huge pathUSD balance.
 * @example
 * await sendFromRich(client, [Actions.token.mint.call(client, { token, to: rich.address, amount })])
 */
export const rich = mnemonicToAccount('test test test test test test test test test test test junk')

/**
 * A viem client for the local chain.
 * @example
 * const client = chainClient(env.TEMPO_RPC_URL)
 */
export function chainClient(url: string) {
  return createClient({ chain: chainFor(chainId, url), transport: http(url), pollingInterval: 100 })
}
export type ChainClient = ReturnType<typeof chainClient>

const lane = () => BigInt(`0x${[...crypto.getRandomValues(new Uint8Array(12))].map((b) => b.toString(16).padStart(2, '0')).join('')}`) + 1n

/**
 * A fresh random address (a recipient nobody has used).
 * @example
 * tempo({ chainId, recipient: freshAddress(), rpcUrl })
 */
export function freshAddress(): Address {
  return privateKeyToAccount(generatePrivateKey()).address
}

/**
 * Sends calls from the rich dev account on a random nonce lane and returns the receipt; a reverted transaction
 * fails. The gas limit is four times anvil's estimate, which undercounts state creation on T4 (creating a
 * token: estimated 1.02M, used 2.80M) and batched calls; the rich account's fees do not matter.
 * @example
 * await sendFromRich(client, [Actions.token.transfer.call(client, { token: pathUsd, to, amount: 1_000_000n })])
 */
export async function sendFromRich(client: ChainClient, calls: readonly { to: Address; data: Hex }[]): Promise<TransactionReceipt> {
  const prepared = (await prepareTransactionRequest(client, { account: rich, calls, feeToken: pathUsd, nonceKey: lane() } as never)) as Record<string, unknown> & { gas?: bigint }
  prepared.gas = (prepared.gas ?? 0n) * 4n
  const serializedTransaction = await signTransaction(client, prepared as never)
  return (await sendRawTransactionSync(client, { serializedTransaction, throwOnReceiptRevert: true } as never)) as TransactionReceipt
}

/**
 * Sends `amount` base units of pathUSD (and of `token` when given) from the rich dev account.
 * @example
 * await fund(client, account.address, 5_000_000n) // 5 pathUSD
 */
export async function fund(client: ChainClient, to: Address, amount: bigint, token?: Address): Promise<void> {
  const calls = [Actions.token.transfer.call(client, { token: pathUsd, to, amount })]
  if (token) calls.push(Actions.token.transfer.call(client, { token, to, amount }))
  await sendFromRich(client, calls)
}

/**
 * A fresh account holding `amount` base units of pathUSD (and of `token` when given).
 * @example
 * const account = await fundedAccount(client) // 10 pathUSD
 */
export async function fundedAccount(client: ChainClient, amount = 10_000_000n, token?: Address): Promise<PrivateKeyAccount> {
  const account = privateKeyToAccount(generatePrivateKey())
  await fund(client, account.address, amount, token)
  return account
}

/**
 * A TIP-20 balance in base units.
 * @example
 * await balanceOf(client, recipient) // pathUSD by default
 */
export async function balanceOf(client: ChainClient, account: Address, token: Address = pathUsd): Promise<bigint> {
  return (await readContract(client, { address: token, abi: Abis.tip20, functionName: 'balanceOf', args: [account] })) as bigint
}

