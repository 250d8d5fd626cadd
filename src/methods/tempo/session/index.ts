/** @module The Tempo `session` intent's on-chain side: the channel reserve ABI, descriptors, vouchers, funding transaction checks and chain calls. */
export { closeGracePeriodSeconds, escrowAbi, isUint96, maxUint96, tip20ChannelReserve } from './abi.js'
export { type SessionChain, type ChannelState, EscrowRevertError, sessionChain } from './chain.js'
export {
  type Descriptor,
  type DescriptorCheck,
  channelId,
  channelIdSchema,
  checkDescriptor,
  descriptorSchema,
  descriptorTuple,
  expectedSigner,
  normalizeDescriptor,
  sameDescriptor,
} from './descriptor.js'
export { channelClosedIn, channelOpenedIn, closeRequestedIn, settledIn, topUpIn } from './events.js'
export { type FundingCheck, checkOpenTransaction, checkTopUpTransaction, sponsorFunding } from './funding.js'
export { expiringNonceHash } from './nonce-hash.js'
export {
  type Voucher,
  type VoucherContext,
  canonicalSignature,
  maxVoucherAmount,
  parseVoucherSignature,
  recoverVoucherSigner,
  signVoucher,
  verifyVoucher,
  voucherDigest,
  voucherTypedData,
} from './voucher.js'
export { type ChannelV1, channelIdV1, streamChannelAbi } from './v1.js'
