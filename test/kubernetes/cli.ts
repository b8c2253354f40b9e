// The `infergate` command from source (under tsx), so these tests exercise this tree, not a dist/ build.
import { main } from '../../src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
