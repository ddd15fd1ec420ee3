// Structural limits every decoder enforces before a frame reaches any handler.
// Each is a named setting of the server (see gateway/config.ts) with this default.

export interface FrameLimits {
  /** Largest WebSocket message in bytes (uWS maxPayloadLength). */
  readonly maxFrameBytes: number;
  /** Deepest nesting of arrays/maps; the frame itself is depth 1. */
  readonly maxDepth: number;
  /** Longest string, in UTF-16 code units. */
  readonly maxStringLength: number;
  /** Longest array. */
  readonly maxArrayLength: number;
  /** Most keys in one map. */
  readonly maxMapKeys: number;
  /** Longest binary (bin) value, in bytes. */
  readonly maxBinaryBytes: number;
}

export const DEFAULT_FRAME_LIMITS: FrameLimits = Object.freeze({
  maxFrameBytes: 64 * 1024,
  maxDepth: 8,
  maxStringLength: 16 * 1024,
  maxArrayLength: 1024,
  maxMapKeys: 4096,
  maxBinaryBytes: 32 * 1024,
});

/** Keys rejected anywhere in a frame: they reach Object.prototype in naive JS consumers. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', '__proto_', 'constructor', 'prototype']);
