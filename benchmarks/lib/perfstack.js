/**
 * Loads perfstack modules by name for the scenario servers. The packages may not be
 * built or may not export a name yet: then the scenario reports UNAVAILABLE (exit 3)
 * instead of crashing the run.
 */
import { unavailable } from './fixture.js';

/**
 * Imports `specifier` and returns it when every name in `names` is exported as a function.
 * @param {string} specifier e.g. 'perfstack', '@perfstack/cache'
 * @param {string[]} names exports the scenario needs
 */
export async function requireExports(specifier, names) {
  let mod;
  try {
    mod = await import(specifier);
  } catch (error) {
    const code = error?.code === 'ERR_MODULE_NOT_FOUND' ? 'not built or not found' : error?.message;
    unavailable(`${specifier}: ${code} (run pnpm build)`);
  }
  const missing = names.filter((name) => typeof mod[name] !== 'function');
  if (missing.length > 0) unavailable(`${specifier} has no export ${missing.join(', ')}`);
  return mod;
}
