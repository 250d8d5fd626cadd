// mppx imports an optional MCP peer on a code path this worker never takes; esbuild needs something to resolve.
export class McpError extends Error {}
