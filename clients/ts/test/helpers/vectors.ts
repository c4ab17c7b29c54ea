// Loads the golden vectors (../../protocol/vectors relative to the package) and converts their
// serde JSON form to and from this client's message objects, driven by the codec's schema.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

import { CLIENT_SCHEMA, SERVER_SCHEMA, FieldKind, VariantSchema, fromHex } from '../../src/codec.js';

/** The package root (clients/ts), from build/test/helpers. */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
/** protocol/vectors, read by path relative to the package. */
export const VECTORS_DIR = path.resolve(PACKAGE_ROOT, '../../protocol/vectors');

export function loadVectors<T = unknown>(name: string): T {
  return JSON.parse(readFileSync(path.join(VECTORS_DIR, name), 'utf8')) as T;
}

export function hex(h: string): Uint8Array {
  const b = fromHex(h);
  if (b === undefined) throw new Error(`bad hex in vectors: ${h}`);
  return b;
}

type Json = unknown;

function fieldFromJson(kind: FieldKind, v: Json, name: string): unknown {
  switch (kind) {
    case 'u64':
      if (typeof v !== 'string' && typeof v !== 'number') throw new Error(`${name}: expected an integer`);
      return BigInt(v);
    case 'u8':
    case 'u16':
    case 'u32':
    case 'code':
      if (typeof v !== 'number') throw new Error(`${name}: expected a number`);
      return v;
    case 'bool':
    case 'str':
    case 'sync':
      return v;
    case 'bytes':
    case 'secret':
      return Uint8Array.from(v as number[]);
    case 'inputs':
    case 'slots':
      return (v as number[][]).map((b) => Uint8Array.from(b));
  }
}

function fieldToJson(kind: FieldKind, v: unknown): Json {
  switch (kind) {
    case 'u64': {
      const n = v as bigint;
      return n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n.toString();
    }
    case 'bytes':
    case 'secret':
      return Array.from(v as Uint8Array);
    case 'inputs':
    case 'slots':
      return (v as Uint8Array[]).map((b) => Array.from(b));
    default:
      return v;
  }
}

function schemaFor(direction: 'client' | 'server'): readonly VariantSchema[] {
  return direction === 'client' ? CLIENT_SCHEMA : SERVER_SCHEMA;
}

/** `{"Variant": {fields}}` → `{type: "Variant", ...fields}`. */
export function messageFromJson(direction: 'client' | 'server', json: Record<string, Record<string, Json>>): { type: string } {
  const entries = Object.entries(json);
  if (entries.length !== 1) throw new Error('a message is an object with one key');
  const [name, fields] = entries[0] as [string, Record<string, Json>];
  const variant = schemaFor(direction).find((v) => v.name === name);
  if (variant === undefined) throw new Error(`unknown ${direction} variant ${name}`);
  const extra = Object.keys(fields).filter((k) => !variant.fields.some(([f]) => f === k));
  if (extra.length > 0) throw new Error(`${name}: fields the schema does not know: ${extra.join(', ')}`);
  const out: Record<string, unknown> = { type: name };
  for (const [f, kind] of variant.fields) {
    if (!(f in fields)) throw new Error(`${name}: missing field ${f}`);
    out[f] = fieldFromJson(kind, fields[f], `${name}.${f}`);
  }
  return out as { type: string };
}

/** `{type, ...fields}` → serde's JSON form. */
export function messageToJson(direction: 'client' | 'server', msg: { type: string }): Json {
  const variant = schemaFor(direction).find((v) => v.name === msg.type);
  if (variant === undefined) throw new Error(`unknown ${direction} variant ${msg.type}`);
  const fields: Record<string, Json> = {};
  const m = msg as unknown as Record<string, unknown>;
  for (const [f, kind] of variant.fields) fields[f] = fieldToJson(kind, m[f]);
  return { [msg.type]: fields };
}
