export * from './frames.ts';
export * from './errors.ts';
export * from './limits.ts';
export * from './codec.ts';
export * from './schema.ts';
