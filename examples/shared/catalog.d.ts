/** Types of catalog.js, for the TypeScript example (examples/nestjs-api). */
export interface Product {
  id: string;
  name: string;
  price: number;
}
export interface Catalog {
  list(): Promise<Product[]>;
  get(id: string): Promise<Product | undefined>;
  create(input: { name: unknown; price: unknown }): Promise<Product>;
  flakyQuote(): Promise<{ currency: string; rate: number }>;
}
export function createCatalog(options?: { latencyMs?: number; failureRate?: number }): Catalog;
export function invalidProduct(body: unknown): string | undefined;
export function handleShutdown(
  server: import('node:http').Server,
  stack: { close(): Promise<void> },
  options?: { graceMs?: number },
): void;
export function exampleStackOptions<T extends object>(
  redis: string | undefined,
  overrides?: T,
): Record<string, unknown> & T;
export function readJson(req: import('node:http').IncomingMessage, limit?: number): Promise<unknown>;
