/**
 * Helpers for this repository's tests against the local `anvil --network tempo --hardfork T4` chain, usable
 * inside workerd (viem over fetch): a second TIP-20 token, payer-side signing (pull) and broadcasting (push), and
 * a controllable proxy between the method and the chain for outage cases. The client, funding and balances come
 * from the testing kit (src/testing/chain.ts) and are re-exported here.
 *
 * Anvil quirks handled here: gas estimates are padded, since anvil's leave out the signature check and undercount batches, and no
 * gas limit is hard-coded (state creation on T4 costs about ten times T0's).
 */
import { type Address, type Hex, encodeFunctionData, maxUint256 } from 'viem'
import { SignatureEnvelope, TxEnvelopeTempo } from 'ox/tempo'
import type { PrivateKeyAccount } from 'viem/accounts'
import { prepareTransactionRequest, sendRawTransactionSync, signTransaction } from 'viem/actions'
import { Abis, Actions } from 'viem/tempo'
import { type ChainClient, pathUsd, rich, sendFromRich } from '../../src/testing/chain.js'

export { balanceOf, chainClient, chainId, freshAddress, fund, fundedAccount, pathUsd, rich, sendFromRich, type ChainClient } from '../../src/testing/chain.js'

/** Creates a second USD TIP-20 token through the factory precompile and mints `supply` to the rich account. */
export async function createToken(client: ChainClient, supply = 1_000_000_000_000n): Promise<Address> {
  const created = await sendFromRich(client, [Actions.token.create.call(client, { admin: rich.address, name: 'Other USD', symbol: 'OUSD', currency: 'USD' })])
  const { token } = Actions.token.create.extractEvent(created.logs).args
  await sendFromRich(client, [Actions.token.grantRoles.call(client, { token, role: 'issuer', to: rich.address } as never)])
  await sendFromRich(client, [Actions.token.mint.call(client, { token, to: rich.address, amount: supply })])
  return token
}

/** A `transfer`/`transferWithMemo` call. */
export function transferCall(token: Address, to: Address, amount: bigint, memo?: Hex) {
  return {
    to: token,
    data: memo
      ? encodeFunctionData({ abi: Abis.tip20, functionName: 'transferWithMemo', args: [to, amount, memo] })
      : encodeFunctionData({ abi: Abis.tip20, functionName: 'transfer', args: [to, amount] }),
  }
}

/**
 * Signs a payment transaction the way a paying client does for pull mode: expiring nonce, `validBefore`
 * within the challenge, and, when sponsored, no fee token (the 0x78 hand-off for the server to co-sign).
 */
export async function signPayment(
  client: ChainClient,
  account: PrivateKeyAccount,
  options: { calls: { to: Address; data: Hex }[]; validBefore: number; sponsored?: boolean; gas?: bigint },
): Promise<Hex> {
  const prepared = (await prepareTransactionRequest(client, {
    account,
    calls: options.calls,
    nonceKey: 'expiring',
    validBefore: options.validBefore,
    ...(options.sponsored ? {} : { feeToken: pathUsd }),
    ...(options.gas ? { gas: options.gas } : {}),
  } as never)) as Record<string, unknown> & { gas?: bigint }
  // Anvil's estimate leaves out the signature check (mppx adds 5,000 for it) and prices each extra call of a
  // batch as a transfer to an existing holder (a new holder's balance costs ~267k gas on T4), as the client does.
  if (!options.gas) prepared.gas = (prepared.gas ?? 0n) + 5_000n + 275_000n * BigInt(options.calls.length - 1)
  if (options.sponsored) {
    delete prepared.feeToken
    delete prepared.feePayerSignature
    prepared.feePayer = true
  }
  return signTransaction(client, prepared as never)
}

/**
 * Broadcasts a payment itself (push mode) and returns its hash once mined, reverted or not. Signed like a
 * pull payment, with the same gas headroom: anvil's estimate leaves none for the signature check.
 */
export async function pushPayment(client: ChainClient, account: PrivateKeyAccount, calls: { to: Address; data: Hex }[], gas?: bigint): Promise<Hex> {
  const serializedTransaction = await signPayment(client, account, { calls, validBefore: Math.floor(Date.now() / 1000) + 25, gas })
  const receipt = await sendRawTransactionSync(client, { serializedTransaction, throwOnReceiptRevert: false } as never)
  return (receipt as { transactionHash: Hex }).transactionHash
}

/** What the proxy does with requests. */
export type ProxyMode = 'up' | 'refused' | 'error-503' | 'hang'

/**
 * A fetch that stands between the method and the chain. `mode` decides the fate of each request:
 * forwarded, refused (a closed port), answered 503, or held until the caller's timeout. `after`
 * switches to a failure mode once a given RPC method has gone through (an outage mid-verification).
 */
export function rpcProxy(target: string) {
  const state = {
    mode: 'up' as ProxyMode,
    /** Once a request for this JSON-RPC method has been forwarded, switch to `then`. */
    after: undefined as { method: string; then: ProxyMode } | undefined,
    /** JSON-RPC methods seen, in order. */
    seen: [] as string[],
  }
  const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const body = typeof init?.body === 'string' ? init.body : ''
    const methods = ([] as { method?: string }[]).concat(body ? JSON.parse(body) : []).map((m) => m.method ?? '?')
    state.seen.push(...methods)
    const mode = state.mode
    if (mode === 'refused') {
      // A real connection attempt to a closed port, surfaced as fetch surfaces network failures.
      const refused = await fetch('http://127.0.0.1:1/', { method: 'POST', body }).then(
        () => undefined,
        (error: unknown) => error,
      )
      throw new TypeError(`fetch failed: ${String(refused)}`)
    }
    if (mode === 'error-503') return new Response('upstream unavailable', { status: 503 })
    if (mode === 'hang') {
      return new Promise<Response>((_, reject) => {
        const signal = init?.signal
        if (signal) signal.addEventListener('abort', () => reject(signal.reason ?? new Error('aborted')))
      })
    }
    const response = await fetch(target, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: init?.signal ?? null })
    if (state.after && methods.includes(state.after.method)) {
      state.mode = state.after.then
      state.after = undefined
    }
    void input
    return response
  }) as typeof fetch
  return { fetch: fetcher, state }
}

/** Signs a minimal Tempo transaction for any chain id, without asking a node (a transaction for another chain). */
export async function signForChain(account: PrivateKeyAccount, options: { chainId: number; calls: { to: Address; data: Hex }[]; validBefore: number }): Promise<Hex> {
  const envelope = TxEnvelopeTempo.from({
    chainId: options.chainId,
    calls: options.calls,
    gas: 200_000n,
    maxFeePerGas: 30_000_000_000n,
    maxPriorityFeePerGas: 1n,
    nonceKey: maxUint256,
    nonce: 0n,
    validBefore: options.validBefore,
    feeToken: pathUsd,
  })
  const signature = await account.sign({ hash: TxEnvelopeTempo.getSignPayload(envelope) })
  return TxEnvelopeTempo.serialize(envelope, { signature: SignatureEnvelope.from(signature) })
}
