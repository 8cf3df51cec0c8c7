import { WharfError } from '../../../core/errors.js';

/**
 * Decimal text (`-12.3400`, `5`, `.5`) → the unscaled integer at `scale` (`-123400n`), by string
 * manipulation only, never through a float. More fraction digits than `scale` is an error.
 */
export function unscaledDecimal(text: string, scale: number): bigint {
  const dot = text.indexOf('.');
  let whole = dot < 0 ? text : text.slice(0, dot);
  let fraction = dot < 0 ? '' : text.slice(dot + 1);
  if (fraction.length > scale) {
    const extra = fraction.slice(scale);
    if (!/^0*$/.test(extra)) {
      throw new WharfError(`numeric value ${text} has more than ${scale} decimal places`, {
        kind: 'terminal',
      });
    }
    fraction = fraction.slice(0, scale);
  }
  if (whole === '' || whole === '-' || whole === '+') whole += '0';
  if (!/^[-+]?\d+$/.test(whole) || !/^\d*$/.test(fraction)) {
    throw new WharfError(`numeric value ${text} cannot be written as a Parquet DECIMAL`, {
      kind: 'terminal',
      hint: 'NaN and infinity have no DECIMAL representation; use the csv or json format for this data',
    });
  }
  return BigInt(whole + fraction.padEnd(scale, '0'));
}

/** `0190b3e4-…` → its 16 bytes. */
export function uuidBytes(text: string): Buffer {
  return Buffer.from(
    text.length === 36
      ? text.slice(0, 8) + text.slice(9, 13) + text.slice(14, 18) + text.slice(19, 23) + text.slice(24)
      : text.replaceAll('-', ''),
    'hex',
  );
}
