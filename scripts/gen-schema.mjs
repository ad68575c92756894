// Writes appfence.schema.json from the config's zod schema (src/config/json-schema.ts).
// Run with `npm run schema` (builds first); test/unit/config-schema.test.ts fails when the file is stale.
import { writeFileSync } from 'node:fs';
import { configJsonSchema } from '../dist/config/json-schema.js';

const file = new URL('../appfence.schema.json', import.meta.url);
writeFileSync(file, `${JSON.stringify(configJsonSchema(), null, 2)}\n`);
console.log(`wrote ${file.pathname}`);
