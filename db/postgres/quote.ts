/** Quotes a PostgreSQL identifier: wraps in double quotes and doubles any double quote inside. */
export function quotePg(identifier: string): string {
  if (identifier.includes('\u0000')) throw new Error('identifier contains a NUL character');
  return `"${identifier.replace(/"/g, '""')}"`;
}

/** Quotes a PostgreSQL string literal (for the few statements that take no parameters, e.g. COPY). */
export function literalPg(value: string): string {
  if (value.includes('\u0000')) throw new Error('literal contains a NUL character');
  return `'${value.replace(/'/g, "''")}'`;
}
