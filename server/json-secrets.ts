import { z } from 'zod';
import { Secret } from '../core/secret.js';

/** A secret as JSON carries it: a non-empty string, made a `Secret` at once; documented as write-only. */
export const secretString = () =>
  z
    .string()
    .min(1)
    .transform((value) => new Secret(value))
    .meta({ writeOnly: true, description: 'a secret: stored encrypted, never returned' });

/** True for a field whose schema takes a `Secret` and not a string (`z.instanceof(Secret)`). */
function takesSecret(schema: z.ZodType): boolean {
  const inner = schema instanceof z.ZodOptional ? (schema.unwrap() as z.ZodType) : schema;
  return inner.safeParse(new Secret('x')).success && !inner.safeParse('x').success;
}

/**
 * A pipeline input schema as the HTTP API takes it: each `Secret` field becomes a string turned into a
 * `Secret` when parsed, the other fields unchanged (refinements kept). The API and the CLI thus validate with one
 * schema. (The type keeps the pipeline's shape: secret fields read as `Secret`, which is what parsing gives.)
 */
export function withJsonSecrets<T extends z.ZodRawShape>(schema: z.ZodObject<T>) {
  const shape: Record<string, z.ZodType> = {};
  for (const [key, field] of Object.entries(schema.shape) as [string, z.ZodType][]) {
    if (!takesSecret(field)) continue;
    shape[key] = field instanceof z.ZodOptional ? secretString().optional() : secretString();
  }
  return schema.safeExtend(shape as never) as z.ZodObject<T>;
}
