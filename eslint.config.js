import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import globals from 'globals';

export default tseslint.config(
  // Everything the scripts unpack or start locally (all in .gitignore, which ESLint does not read): a Debian package
  // unpacked in .padlock holds dangling symlinks that made `eslint .` fail after `npm test`.
  {
    ignores: ['**/dist/**', '**/node_modules/**', '.cassandra/**', '.memcached/**', '.padlock/**', 'bench/results/**'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ['*.js', '*.mjs', 'scripts/*.mjs', 'scripts/testing/*.d.mts'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    plugins: { 'import-x': importX },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', name: ['describe', 'it', 'test', 'suite'], package: 'node:test' },
          ],
        },
      ],
      'import-x/no-cycle': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  ...[
    [
      'packages/core/src/**',
      ['@padlock/server', '@padlock/client', '@padlock/cli', 'better-sqlite3', 'cassandra-driver'],
    ],
    ['packages/client/src/**', ['@padlock/server', '@padlock/cli', 'better-sqlite3', 'cassandra-driver']],
    ['packages/server/src/**', ['@padlock/client', '@padlock/cli']],
  ].map(([files, banned]) => ({
    files: [files],
    ignores: ['**/*.test.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        { paths: banned.map((name) => ({ name, message: 'layers point one way: core <- server, client <- cli' })) },
      ],
    },
  })),
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { ...tseslint.configs.disableTypeChecked.languageOptions, globals: globals.node },
  },
);
