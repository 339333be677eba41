// Prints one JSON object for a Dockerfile: the diagnostics of dockerfile-utils' validator (the
// Dockerfile language server's) and every instruction as dockerfile-ast parsed it. Run through
// scripts/dockerfile-lint.sh, which sets NODE_PATH to the installed package.
'use strict';
const fs = require('fs');
const { validate } = require('dockerfile-utils');
const { DockerfileParser } = require('dockerfile-ast');

const file = process.argv[2];
const content = fs.readFileSync(file, 'utf8');
const severity = { 1: 'error', 2: 'warning', 3: 'information', 4: 'hint' };

const diagnostics = validate(content).map((d) => ({
  severity: severity[d.severity] || String(d.severity),
  code: d.code,
  line: d.range.start.line + 1,
  message: d.message,
}));

const dockerfile = DockerfileParser.parse(content);
const instructions = dockerfile.getInstructions().map((ins) => {
  const out = {
    keyword: ins.getKeyword(),
    line: ins.getRange().start.line + 1,
    arguments: ins.getArguments().map((a) => a.getValue()),
    expanded: ins.getExpandedArguments().map((a) => a.getValue()),
  };
  if (typeof ins.getFlags === 'function') {
    out.flags = ins.getFlags().map((f) => ({ name: f.getName(), value: f.getValue() }));
  }
  if (out.keyword === 'FROM') {
    out.image = ins.getImage();
    out.stage = ins.getBuildStage();
  }
  return out;
});

process.stdout.write(JSON.stringify({ file, diagnostics, instructions }, null, 1) + '\n');
