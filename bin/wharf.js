#!/usr/bin/env node
// Entry point of the `wharf` command: loads the TypeScript sources through tsx.
import { register } from 'tsx/esm/api';

// the AWS SDK warns about Node 20 on every run; Wharf supports Node 20
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
register();
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
