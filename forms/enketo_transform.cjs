// Enketo's form-build step: turn built XForms into the HTML form + XML model that enketo-core renders.
// Usage: node forms/enketo_transform.cjs <form.xml> [<form.xml> …]  — writes enketo.json beside each.
// Loaded with require(): enketo-transformer 4.2.0's ESM entry is broken on Node 20 (shared/DESIGN.md).
'use strict';
const fs = require('fs');
const path = require('path');
const { transform } = require('enketo-transformer');

(async () => {
  for (const xmlPath of process.argv.slice(2)) {
    const xform = fs.readFileSync(xmlPath, 'utf8');
    const out = await transform({ xform, markdown: true, openclinica: false });
    const doc = {
      form: out.form,
      model: out.model,
      languageMap: out.languageMap,
      transformerVersion: out.transformerVersion,
    };
    const target = path.join(path.dirname(xmlPath), 'enketo.json');
    fs.writeFileSync(target + '.tmp', JSON.stringify(doc));
    fs.renameSync(target + '.tmp', target);
  }
})().catch((e) => {
  console.error(String((e && e.message) || e).split('\n')[0]);
  process.exit(1);
});
