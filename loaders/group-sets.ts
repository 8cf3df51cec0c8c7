/** Adds each pair to a map of sets: `addPairs(map, rows, r => [r.stream, r.window_id])`. Returns the map. */
export function addPairs<T>(
  into: Map<string, Set<string>>,
  rows: Iterable<T>,
  pair: (row: T) => readonly [string, string],
): Map<string, Set<string>> {
  for (const row of rows) {
    const [key, value] = pair(row);
    let set = into.get(key);
    if (!set) into.set(key, (set = new Set()));
    set.add(value);
  }
  return into;
}
