// @tickroom/client: the TypeScript client of tickroom (browser and Node 20).
export * from './errors.js';
export * from './codec.js';
export * from './crypto.js';
export * from './session.js';
export * from './gateway.js';
export * from './client.js';
export * from './arena.js';
