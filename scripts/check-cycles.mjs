#!/usr/bin/env node
// Fails when agent/src has a circular import (grpc-js keeps the same check): cycles make module
// initialisation order fragile and usually mean two concepts share a file.
import { findCycles } from './import-graph.mjs';

const cycles = findCycles();
if (cycles.length === 0) {
  process.stdout.write('no circular imports in agent/src\n');
} else {
  for (const c of cycles) process.stderr.write(`circular import: ${c.join(' -> ')}\n`);
  process.exit(1);
}
