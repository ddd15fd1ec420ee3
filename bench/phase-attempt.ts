// Runs one named benchmark phase: its figures, or its failure, go into the results under its
// name, so one failed phase never loses the others' figures.

export async function attempt<T extends object>(phases: Record<string, unknown>, name: string, run: () => Promise<T>): Promise<T | undefined> {
  console.error(`bench: ${name} ...`);
  try {
    const figures = await run();
    phases[name] = figures;
    return figures;
  } catch (err) {
    console.error(`bench: ${name} failed:`, err);
    phases[name] = { error: err instanceof Error ? err.message : String(err) };
    return undefined;
  }
}
