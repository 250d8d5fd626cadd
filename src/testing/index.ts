/**
 * @module `mpp-edge/testing`, for tests of paid routes (runs in workerd and in Node): the paying test client
 * (`testPayer`), helpers for the local Tempo chain (`chainClient`, `fund`, `fundedAccount`, `balanceOf`, `sendFromRich`,
 * `freshAddress`, `pathUsd`, `chainId`), the local Stripe API's test facts (`testSecretKey`, `spt`, the
 * `outcomes` a token can ask for), and a payment channel payer on the session chain (`signOpen`, `signTopUp`,
 * `voucherFor`, `requestClose`, `withdraw`, `increaseTime`, `privateChain`; for a v1 stream channel `deployStreamChannel`,
 * `signOpenV1`, `signTopUpV1`, `requestCloseV1`), and helpers for the plain EVM chain with the EIP-3009 token stand-in
 * (`fundedEvmPayer`, `evmSettler`, `mintTokens`, `tokenBalance`, `evmToken`, `evmChainId`). Start the services
 * themselves with `mpp-edge/testing/node`.
 */
export { testPayer, type TestPayer, type TestPayerOptions } from './payer.js'
export { balanceOf, chainClient, chainId, fund, fundedAccount, freshAddress, pathUsd, rich, sendFromRich, type ChainClient } from './chain.js'
export { outcomes, processingRetrieves, spt, testSecretKey, type Outcome, type RecordedRequest } from './stripe-fixtures.js'
export {
  type ChannelChain,
  type SignOptions,
  deployStreamChannel,
  increaseTime,
  privateChain,
  requestClose,
  requestCloseV1,
  sendSigned,
  signCalls,
  signEscrowCall,
  signOpen,
  signOpenV1,
  signTopUp,
  signTopUpV1,
  voucherFor,
  withdraw,
} from './session-payer.js'
export { channelReserveRuntime, streamChannelCreation } from './escrow-bytecode.js'
export {
  authorizationUsed,
  ethBalance,
  evmChainId,
  evmMinter,
  evmRpc,
  evmSettler,
  evmToken,
  evmTokenDomain,
  fundedEvmPayer,
  mintTokens,
  otherEvmToken,
  sendFromMinter,
  tokenBalance,
} from './evm-chain.js'
export { authorizationTokenRuntime } from './token-bytecode.js'
