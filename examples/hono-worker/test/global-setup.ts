// Starts the local Tempo chain and the local Stripe API for the run, and stops them afterwards.
import { startTestServices } from 'mpp-edge/testing/node'

export default () => startTestServices()
