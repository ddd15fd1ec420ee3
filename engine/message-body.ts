// Validation of client message bodies per kind. Unknown fields are dropped so stored bodies
// contain only what the protocol defines.
import { LanternError } from '../protocol/errors.ts';
import type { ClientMessageKind, MessageBody } from '../protocol/frames.ts';
import type { EngineSettings } from './api.ts';

const MAX_URL = 2048;
const MAX_NAME = 256;

function str(body: Record<string, unknown>, key: string, max: number, required = true): string | undefined {
  const v = body[key];
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'string' || (required && v.length === 0)) {
    throw new LanternError('invalid_field', `body.${key} must be a non-empty string`, { field: `body.${key}` });
  }
  if (v.length > max) throw new LanternError('too_large', `body.${key} is longer than ${max} characters`, { field: `body.${key}` });
  return v;
}

function int(body: Record<string, unknown>, key: string): number {
  const v = body[key];
  if (!Number.isSafeInteger(v) || (v as number) < 0) {
    throw new LanternError('invalid_field', `body.${key} must be a non-negative integer`, { field: `body.${key}` });
  }
  return v as number;
}

function coord(body: Record<string, unknown>, key: string, bound: number): number {
  const v = body[key];
  if (typeof v !== 'number' || !Number.isFinite(v) || Math.abs(v) > bound) {
    throw new LanternError('invalid_field', `body.${key} must be a number within ±${bound}`, { field: `body.${key}` });
  }
  return v;
}

export function validateBody(kind: ClientMessageKind, body: Record<string, unknown>, settings: EngineSettings): MessageBody {
  switch (kind) {
    case 'text':
      return { text: str(body, 'text', settings.maxTextLength)! };
    case 'sticker':
      return { pack: str(body, 'pack', MAX_NAME)!, sticker: str(body, 'sticker', MAX_NAME)! };
    case 'image': {
      const thumb = str(body, 'thumb', MAX_URL, false);
      return {
        url: str(body, 'url', MAX_URL)!, mime: str(body, 'mime', MAX_NAME)!, size: int(body, 'size'),
        width: int(body, 'width'), height: int(body, 'height'), ...(thumb === undefined ? {} : { thumb }),
      };
    }
    case 'file':
      return { url: str(body, 'url', MAX_URL)!, mime: str(body, 'mime', MAX_NAME)!, size: int(body, 'size'), name: str(body, 'name', MAX_NAME)! };
    case 'location': {
      const name = str(body, 'name', MAX_NAME, false);
      return { lat: coord(body, 'lat', 90), lng: coord(body, 'lng', 180), ...(name === undefined ? {} : { name }) };
    }
  }
}
