/**
 * A fixed CPU-bound loop, timed: the same work took 350 ms on a quiet moment of the development
 * machine and 450 ms on a busy one. Printed beside benchmark figures so runs on a shared, noisy
 * machine can be compared (figures scale roughly inversely with it).
 */
export function yardstickMs(): number {
  const times: number[] = [];
  for (let r = 0; r < 3; r++) {
    const t = performance.now();
    let x = 0;
    for (let i = 0; i < 3e8; i++) x += i % 7;
    if (x < 0) throw new Error('unreachable');
    times.push(performance.now() - t);
  }
  return Math.round(times.sort((a, b) => a - b)[1]!);
}
