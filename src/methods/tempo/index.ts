/** @module The `tempo` payment method: TIP-20 charges on Tempo, verified on-chain. */
export { tempo, type TempoConfig, type TempoPayload, type TempoRequest } from './method.js'
export { type Token, chainFor, defaultTokens } from './chains.js'
export { type Gate, type SponsorPolicy, defaultPolicy } from './fee-payer.js'
export { attributionMemo, isBoundMemo } from './memo.js'
export { typedData as proofTypedData, acceptedVersions as acceptedProofVersions } from './proof.js'
export { checkReceipt } from './receipt.js'
export { checkTransaction, decodeTransaction } from './transaction.js'
export { type TempoSessionConfig, tempoSession } from './session-method.js'
