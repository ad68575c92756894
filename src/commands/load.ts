/** The config a command runs on: FILE when given, else the embedded default. */
import { loadConfig } from '../config/load.js';
import { defaultConfig } from '../config/default.js';
import type { Config } from '../config/types.js';

export function configFrom(file: string | undefined): Promise<Config> {
  return file === undefined ? Promise.resolve(defaultConfig()) : loadConfig(file);
}
