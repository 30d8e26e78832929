"""Realistic chat exports built from the chitchat data set, for tests, benchmarks and the demo.

Tooling beside the importer, not part of it: `mimical.corpus` never imports this package.

- `plan`: what a sample holds (`build_sample`, `DEMO_PERSONA`, `DEMO_PERSONA_NAME`);
- `writers` (Messenger, Telegram) and `whatsapp`: render a plan in each export format;
- `export`: `write_sample_export(format, out_dir)`, and `cli` its `mimical sample-export`;
- `gaps`: where the default conversation gap comes from (`python -m mimical.samples.gaps`).
"""
