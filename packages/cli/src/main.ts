#!/usr/bin/env node
import { PadlockError } from '@padlock/core';
import { ConfigError, ServiceWriteError } from '@padlock/server';
import { run, UsageError } from './commands.js';

run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`padlock: ${error.message}\n${error.help === '' ? '' : `\n${error.help}\n`}`);
      process.exitCode = 2;
    } else if (error instanceof ConfigError || error instanceof PadlockError || error instanceof ServiceWriteError) {
      process.stderr.write(`padlock: ${error.message}\n`);
      process.exitCode = 1;
    } else {
      process.stderr.write(`padlock: unexpected error: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = 1;
    }
  },
);
