#!/usr/bin/env node
import { resolve } from 'node:path';
// Runs a TypeScript file of this repository (bench/, scripts) through tsx.
import { pathToFileURL } from 'node:url';
import { register } from 'tsx/esm/api';

register();
const [file, ...rest] = process.argv.slice(2);
process.argv = [process.argv[0], file, ...rest];
await import(pathToFileURL(resolve(file)).href);
